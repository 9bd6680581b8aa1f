"""Sanity checks: does the map depend on what the model learned?

Model parameter randomization (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018):
re-initialize the model's layers, from the head down (cascading: each step keeps the layers above
randomized) or one at a time (independent), and compare each map of the randomized model with the
map of the trained one. A method whose maps stay similar when the weights they should explain are
noise is showing the input, not the model. The model is never touched: the work is done on a copy.

As in the paper, the cascade starts with the logits layer (the head) alone: the weights that make one
class differ from another. :meth:`Randomization.flagged` reads that first step.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..metric_names import SANITY_THRESHOLD, SEED

Explain = Callable[[nn.Module, torch.Tensor], torch.Tensor]


class Randomization(NamedTuple):
    """Similarities (S, N) of the maps of S randomized models with the original ones, step by step.

    A constant map has no ranking: where the original or the randomized map is constant, both
    Spearman values are NaN (undefined, as scipy's and so Quantus's), never a perfect 0.
    """

    blocks: list[str]  # the block re-initialized at each step (cascading: with all before it)
    spearman: torch.Tensor  # rank correlation of the maps
    spearman_abs: torch.Tensor  # rank correlation of their absolute values
    ssim: torch.Tensor  # structural similarity, as scikit-image computes it
    constant: torch.Tensor  # (S, N) True where the randomized model's map is constant
    cascading: bool

    def flagged(self, threshold: float = SANITY_THRESHOLD) -> bool:
        """True when the method fails the check: with the first block (the head: the weights that make
        one class differ from another) randomized, the mean rank correlation of the absolute maps with
        the trained model's (undefined ones left out) is still above `threshold`. Guided
        Backpropagation's usually is; no defined value is not a failure."""
        return bool(self.spearman_abs[0].nanmean() > threshold)


def randomizable_blocks(model: nn.Module, groups: int | None = None) -> list[list[str]]:
    """The modules with their own ``reset_parameters`` from the head down (Quantus's order, the
    reverse of registration), each its own block. With `groups`, the head (the last such module
    registered: a torchvision or timm classifier's logits layer) stays a block of its own, as the first
    step of Adebayo et al.'s cascade, and the modules below it are grouped into at most `groups`
    blocks of about equal size, so a deep network is checked in ``groups + 1`` steps."""
    if groups is not None and groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    names = [name for name, module in model.named_modules() if hasattr(module, "reset_parameters")][::-1]
    if groups is None or len(names) <= groups + 1:
        return [[name] for name in names]
    head, rest = names[:1], names[1:]
    edges = torch.linspace(0, len(rest), groups + 1).round().long().tolist()
    return [head, *(rest[a:b] for a, b in itertools.pairwise(edges) if b > a)]


def parameter_randomization(
    model: nn.Module,
    inputs: torch.Tensor,
    explain: Explain,
    *,
    cascading: bool = True,
    blocks: Sequence[str | Sequence[str]] | None = None,
    seed: int = SEED,
) -> Randomization:
    """The maps ``explain(model, inputs)`` (N, H, W) of the trained model compared with those of copies
    re-initialized block by block (`blocks` as :func:`randomizable_blocks` gives by default).

    `explain` should fix the explained classes (the trained model's), so that only the weights change.
    Each block is re-initialized by its modules' own ``reset_parameters`` after
    ``torch.manual_seed(seed + 1)``, as Quantus's MPRT does (its default seed is 42, ours
    :data:`mieruka.metric_names.SEED`), inside ``torch.random.fork_rng`` so the caller's random state
    is untouched: the same seed gives the same randomized models, run after run.

    >>> check = parameter_randomization(model, images, lambda m, x: GradCAM(m)(x, targets=labels).maps)  # doctest: +SKIP
    >>> check.spearman.mean(1)  # doctest: +SKIP
    """
    chosen = [[b] if isinstance(b, str) else list(b) for b in (blocks or randomizable_blocks(model))]
    original = explain(model, inputs).detach().float()
    randomized = copy.deepcopy(model)
    state = copy.deepcopy(randomized.state_dict()) if not cascading else None
    modules = dict(randomized.named_modules())
    similarities = []
    for block in chosen:
        if state is not None:
            randomized.load_state_dict(state)
        devices = [torch.device("cuda", torch.cuda.current_device())] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + 1)
            for name in block:
                if name not in modules:
                    raise ValueError(f"no module named {name!r} in the model")
                _reset_on_cpu(modules[name])
        maps = explain(randomized, inputs).detach().float().to(original.device)
        flat = maps.flatten(1)
        similarities.append(
            (
                spearman(original, maps),
                spearman(original.abs(), maps.abs()),
                ssim(original, maps),
                (flat == flat[:, :1]).all(1),
            )
        )
    spearmans, absolute, structural, constant = (torch.stack(s) for s in zip(*similarities))
    return Randomization(
        [",".join(b) for b in chosen], spearmans, absolute, structural, constant.cpu(), cascading
    )


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each pair of maps (N, ...) -> (N,), ties given their mean rank
    (as scipy.stats.spearmanr). A constant map has no ranking: the pair gives NaN, as scipy does
    (Quantus's MPRT calls scipy and lets the NaN through to its mean; mieruka's table leaves it out
    and counts it), not 0, which would read as a map that decorrelated perfectly."""
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _mean_ranks(a.flatten(1)), _mean_ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    scale = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return torch.where(scale > 0, (ra * rb).sum(1) / torch.where(scale > 0, scale, 1.0), torch.nan)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity (Wang et al., IEEE TIP 2004) of each pair of maps (N, H, W) -> (N,),
    computed as ``skimage.metrics.structural_similarity`` does by default (which Quantus calls): a
    uniform `window` x `window` window, sample covariances, K1 = 0.01, K2 = 0.03, the data range of the
    pair together, the mean over the windows that fit inside the map.

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
    C1 = (0.01 R)^2, C2 = (0.03 R)^2. Two identical constant maps give 1.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"expected two (N, H, W) stacks of maps, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double()[:, None], b.double()[:, None]
    both = torch.cat([a, b], 1).flatten(1)
    span = (both.amax(1) - both.amin(1)).view(-1, 1, 1, 1)
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, window, stride=1)

    unbiased = window**2 / (window**2 - 1)
    mu_a, mu_b = mean(a), mean(b)
    var_a = unbiased * (mean(a * a) - mu_a**2)
    var_b = unbiased * (mean(b * b) - mu_b**2)
    cov = unbiased * (mean(a * b) - mu_a * mu_b)
    top = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    bottom = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    value = (top / torch.where(bottom > 0, bottom, 1.0)).flatten(1).mean(1)
    return torch.where(span.flatten() > 0, value, 1.0).float()


def _mean_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks (N, L) from 1, tied values sharing the mean of their ranks: batched, no per-row loop."""
    rows, length = values.shape
    ordered, order = values.sort(dim=1, stable=True)
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = new.long().cumsum(1) - 1 + torch.arange(rows, device=values.device)[:, None] * length
    position = (
        torch.arange(length, device=values.device, dtype=torch.float64).expand(rows, length).reshape(-1)
    )
    first = torch.full((rows * length,), float(length), device=values.device, dtype=torch.float64)
    last = torch.zeros(rows * length, device=values.device, dtype=torch.float64)
    first = first.scatter_reduce(0, group.reshape(-1), position, "amin")
    last = last.scatter_reduce(0, group.reshape(-1), position, "amax")
    mean_rank = ((first + last) / 2 + 1)[group]
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def _reset_on_cpu(module: nn.Module) -> None:
    """``module.reset_parameters()`` drawn from the CPU's random stream wherever the module lives, so
    one seed gives the same randomized model on a CPU and on a GPU (whose generator differs)."""
    if all(t.device.type == "cpu" for t in itertools.chain(module.parameters(), module.buffers())):
        module.reset_parameters()
        return
    fresh = copy.deepcopy(module).cpu()
    fresh.reset_parameters()
    module.load_state_dict(fresh.state_dict())
