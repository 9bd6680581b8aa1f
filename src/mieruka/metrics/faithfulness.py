"""Faithfulness: does the model's confidence follow the map when pixels are taken away or kept?

Every function takes the model, a preprocessed batch (N, C, H, W), maps (N, h, w) (upsampled to the
input's size when smaller) and the explained classes (N,) (None: the model's top class), and returns
tensors on the model's device. The perturbed inputs are built there, many per forward pass, under
``torch.inference_mode()``; the model runs in eval mode and is given back in its own mode.

The score of a perturbed input is the probability of the explained class: the softmax of the model's
output unless `probabilities` says otherwise (a sigmoid for a multi-label head, say).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import evaluating
from ..maps import upsample
from ..metric_names import BATCH_SIZE, DELETION_SUBSTRATE, INSERTION_SUBSTRATE, ROAD_FRACTIONS, STEPS

Probabilities = Callable[[torch.Tensor], torch.Tensor]
Substrate = str | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]  # called as (perturbed inputs scored, of how many) after each pass


def softmax(outputs: torch.Tensor) -> torch.Tensor:
    """The default reading of a classifier's output: class probabilities (B, classes)."""
    return outputs.float().softmax(dim=1)


class Curve(NamedTuple):
    """A deletion or insertion curve: the share of pixels changed (P,) and the scores there (N, P)."""

    fractions: torch.Tensor
    scores: torch.Tensor

    def auc(self) -> torch.Tensor:
        """Area under each curve (N,) by the trapezoid rule over the share of pixels, so in [0, 1]."""
        return torch.trapezoid(self.scores, self.fractions, dim=-1)


class Road(NamedTuple):
    """ROAD scores (N, P) at the removed shares `fractions` (P,), most- and least-relevant first."""

    fractions: torch.Tensor
    morf: torch.Tensor
    lerf: torch.Tensor
    original: torch.Tensor  # (N,) the explained class's probability on the unperturbed input

    def score(self) -> torch.Tensor:
        """(LeRF - MoRF) averaged over the shares, halved (N,): higher is more faithful, in [-0.5, 0.5].

        pytorch-grad-cam's ``ROADCombined``, which subtracts the original score from both first (it
        cancels).
        """
        return (self.lerf - self.morf).mean(-1) / 2


def deletion(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    steps: int = STEPS,
    substrate: Substrate = DELETION_SUBSTRATE,
    batch_size: int = BATCH_SIZE,
    probabilities: Probabilities = softmax,
    progress: Progress | None = None,
) -> Curve:
    """The deletion curve of RISE (Petsiuk et al., BMVC 2018): pixels are replaced by `substrate` in
    decreasing order of the map, ``ceil(H*W / steps)`` at a step, and the class probability read before
    the first step and after each (``steps + 1`` points). A faithful map makes it fall fast: lower
    :meth:`Curve.auc` is better. The defaults are ``mieruka evaluate``'s (:mod:`mieruka.metric_names`).

    Points lie at ``0, s, 2s, ... , H*W`` pixels (``s`` the step), the last step possibly shorter;
    the area uses those real shares (torchcam's choice; RISE's code spaces points evenly). Ties in
    the map are broken by pixel order (a stable sort). All colour channels of a pixel go together.

    >>> curve = deletion(model, images, result.maps, result.targets)  # doctest: +SKIP
    >>> curve.auc().mean()  # doctest: +SKIP
    """
    return _curve(
        model, inputs, maps, targets, steps, substrate, batch_size, probabilities, progress, insert=False
    )


def insertion(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    steps: int = STEPS,
    substrate: Substrate = INSERTION_SUBSTRATE,
    batch_size: int = BATCH_SIZE,
    probabilities: Probabilities = softmax,
    progress: Progress | None = None,
) -> Curve:
    """The insertion curve of RISE: from `substrate` (by default a blurred copy, as in RISE) the
    image's pixels come back in decreasing order of the map. Higher :meth:`Curve.auc` is better.
    Steps, ties and areas as in :func:`deletion`."""
    return _curve(
        model, inputs, maps, targets, steps, substrate, batch_size, probabilities, progress, insert=True
    )


def road(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    batch_size: int = BATCH_SIZE,
    probabilities: Probabilities = softmax,
    progress: Progress | None = None,
) -> Road:
    """ROAD, RemOve And Debias (Rong et al., ICML 2022): remove a share p of the pixels, most relevant
    first (MoRF) or least relevant first (LeRF), and fill them by noisy linear imputation (see
    :func:`impute`) so that the shape of the hole tells the model nothing; read the class probability.

    A faithful map makes MoRF fall fast and LeRF stay high: :meth:`Road.score`, higher is better.
    round(p * H * W) pixels are removed, which is what pytorch-grad-cam's percentile threshold removes
    for maps without ties (its ``ROADMostRelevantFirst(q)`` keeps q %, so removes 1 - q/100); with
    ties (the zeros of a ReLU'd map) a threshold removes all tied pixels or none, while this removes
    exactly the share asked, ties broken by pixel order.
    """
    inputs, maps, targets = _prepare(model, inputs, maps, targets, probabilities)
    shares = torch.tensor([float(p) for p in fractions], device=inputs.device)
    if len(shares) == 0 or ((shares <= 0) | (shares >= 1)).any():
        raise ValueError(f"fractions must lie strictly between 0 and 1, got {list(fractions)}")
    count, pixels = len(inputs), inputs.shape[-2] * inputs.shape[-1]
    ranks = _ranks(maps)
    removed = (shares * pixels).round().long()
    # jobs: (image, share, order) with order 0 = MoRF, 1 = LeRF, flattened image-major
    jobs = torch.arange(count * len(shares) * 2, device=inputs.device)
    image, share, order = jobs // (2 * len(shares)), (jobs // 2) % len(shares), jobs % 2
    scores = torch.empty(len(jobs), device=inputs.device)
    with evaluating(model), torch.inference_mode():
        original = _score(model, inputs, targets, probabilities)
        chunk = min(batch_size, 2 * len(shares))  # one image's jobs a pass: imputation, not the model, costs
        for start in range(0, len(jobs), chunk):
            part = slice(start, start + chunk)
            rank, k = ranks[image[part]], removed[share[part], None]
            missing = torch.where(order[part, None] == 0, rank < k, rank >= pixels - k)
            filled = impute(inputs[image[part]], missing.view(-1, *inputs.shape[-2:]), noise, generator)
            scores[part] = _score(model, filled, targets[image[part]], probabilities)
            if progress:
                progress(min(start + chunk, len(jobs)), len(jobs))
    scores = scores.view(count, len(shares), 2)
    return Road(shares, scores[..., 0], scores[..., 1], original)


def masked_confidence(
    model: nn.Module,
    inputs: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    probabilities: Probabilities = softmax,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The class probability on each input and on the input multiplied by its map (maps in [0, 1]),
    both (N,): what :func:`average_drop` and :func:`increase_in_confidence` compare.

    The product is taken on the preprocessed input, as pytorch-grad-cam and torchcam do, so a zero in
    the map means the dataset's mean colour.
    """
    inputs, maps, targets = _prepare(model, inputs, maps, targets, probabilities)
    with evaluating(model), torch.inference_mode():
        original = _score(model, inputs, targets, probabilities)
        masked = torch.cat(
            [
                _score(
                    model,
                    inputs[i : i + batch_size] * maps[i : i + batch_size, None],
                    targets[i : i + batch_size],
                    probabilities,
                )
                for i in range(0, len(inputs), batch_size)
            ]
        )
    return original, masked


def average_drop(original: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per image, the relative drop of Chattopadhyay et al. (Grad-CAM++, WACV 2018):
    ``max(0, Y - O) / Y``, Y the class probability on the image and O on the image times its map.
    Its mean (x 100 in the paper) is the Average Drop %; lower is better.

    pytorch-grad-cam's ``DropInConfidence`` returns ``max(0, Y - O)`` without the division (an absolute
    drop, and of the logit unless given a softmax target); torchcam's ``ClassificationMetric`` divides
    by ``Y + 1e-7``. Here Y = 0 gives 0.
    """
    drop = (original - masked).clamp_min(0)
    return torch.where(original > 0, drop / original.clamp_min(torch.finfo(original.dtype).tiny), 0.0)


def increase_in_confidence(original: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per image, True where the map alone raises the class probability (O > Y); the mean (x 100) is
    the Grad-CAM++ paper's Increase in Confidence %, higher is better. The same in both libraries."""
    return masked > original


def substrate_of(inputs: torch.Tensor, kind: Substrate) -> torch.Tensor:
    """What removed pixels become: ``"zeros"`` (the mean colour of preprocessed inputs), ``"blur"``
    (RISE's Gaussian blur: an 11-tap kernel of sigma 5, zero-padded), ``"mean"`` (each image's own
    mean colour), a tensor broadcastable to the inputs, or a function of the inputs."""
    if callable(kind):
        return torch.broadcast_to(kind(inputs).to(inputs), inputs.shape)
    if isinstance(kind, torch.Tensor):
        return torch.broadcast_to(kind.to(inputs), inputs.shape)
    if kind == "zeros":
        return torch.zeros_like(inputs)
    if kind == "mean":
        return inputs.mean(dim=(-2, -1), keepdim=True).expand_as(inputs)
    if kind == "blur":
        taps = torch.arange(11, device=inputs.device, dtype=inputs.dtype) - 5
        kernel = torch.exp(-(taps**2) / (2 * 5.0**2))
        kernel = kernel / kernel.sum()
        channels = inputs.shape[1]
        rows = F.conv2d(
            inputs, kernel.view(1, 1, 1, 11).expand(channels, 1, 1, 11), padding=(0, 5), groups=channels
        )
        return F.conv2d(
            rows, kernel.view(1, 1, 11, 1).expand(channels, 1, 11, 1), padding=(5, 0), groups=channels
        )
    raise ValueError(f"substrate must be 'zeros', 'blur', 'mean', a tensor or a function, got {kind!r}")


def _neighbours(z: torch.Tensor) -> torch.Tensor:
    """The weighted sum of each pixel's 8 neighbours, 1/6 across and 1/12 diagonally, zero off the
    image: a 3 x 3 convolution written as three shifted sums (several times faster on a CPU)."""
    across = F.pad(z, (1, 1))
    across = across[..., :-2] + across[..., 2:]
    up_down = F.pad(z, (0, 0, 1, 1))
    up_down = up_down[..., :-2, :] + up_down[..., 2:, :]
    diagonal = F.pad(across, (0, 0, 1, 1))
    diagonal = diagonal[..., :-2, :] + diagonal[..., 2:, :]
    return (across + up_down) / 6 + diagonal / 12


def impute(
    images: torch.Tensor,
    missing: torch.Tensor,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    *,
    tolerance: float = 1e-6,
    max_iterations: int | None = None,
) -> torch.Tensor:
    """Noisy linear imputation (Rong et al., ICML 2022): each missing pixel (B, H, W) of images
    (B, C, H, W) becomes the weighted mean of its 8 neighbours (1/6 across, 1/12 diagonal; neighbours
    off the image dropped), known or imputed, plus Gaussian noise of std `noise`.

    The sparse system their code solves with scipy's ``spsolve``, one image and channel at a time, is
    solved here for the whole batch at once (in float32) by conjugate gradients: the operator is a 3 x 3
    convolution, symmetric positive definite on the missing pixels; a Jacobi preconditioner, a start
    solved at half the resolution, and systems dropped from the batch as they converge. Each stops when
    its residual is below `tolerance` times its right-hand side (1e-6 leaves pixel errors near 1e-5,
    far below the noise the method adds; float32 cannot go much lower) or after `max_iterations` (by
    default 8 times the image's longer side).
    """
    dtype, missing = torch.float32, missing.bool()
    batch, channels, height, width = images.shape
    # one system per image and channel: (B * C, 1, H, W)
    x = images.to(dtype).reshape(batch * channels, 1, height, width)
    hole = missing.to(dtype)[:, None].repeat_interleave(channels, dim=0)
    degree = _neighbours(torch.ones_like(x[:1]))  # the weight of the neighbours inside the image
    solution = torch.empty_like(x)  # each system's answer, written as it leaves the batch

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dim=(-2, -1), keepdim=True)

    live = torch.arange(len(x), device=x.device)  # the systems still being solved
    h, z = hole, hole * _first_guess(x, hole)
    rhs = h * _neighbours(x * (1 - h))
    residual = rhs - h * (degree * z - _neighbours(z))
    direction = residual / degree
    rz = dot(residual, direction)
    limit = (tolerance * dot(rhs, rhs).sqrt()).clamp_min(torch.finfo(dtype).tiny)
    for _ in range(max_iterations or 8 * max(height, width)):
        active = (dot(residual, residual).sqrt() > limit).flatten()
        if not active.any():
            break
        if active.sum() * 4 <= len(active) * 3:  # a quarter or more done: solve the rest alone
            solution[live] = z
            keep = active.nonzero()[:, 0]
            live, h, z, residual, direction = (t[keep] for t in (live, h, z, residual, direction))
            rz, limit, active = rz[keep], limit[keep], active[keep]
        moved = h * (degree * direction - _neighbours(direction))
        curvature = dot(direction, moved)
        step = active.view(-1, 1, 1, 1) & (curvature > 0)
        alpha = torch.where(step, rz / torch.where(curvature > 0, curvature, 1.0), 0.0)
        z = z + alpha * direction
        residual = residual - alpha * moved
        preconditioned = residual / degree
        rz_next = dot(residual, preconditioned)
        beta = torch.where(step & (rz > 0), rz_next / torch.where(rz > 0, rz, 1.0), 0.0)
        direction = torch.where(step, preconditioned + beta * direction, direction)
        rz = torch.where(step, rz_next, rz)
    solution[live] = z
    solution = solution.view(batch, channels, height, width)
    if noise:
        solution = solution + noise * torch.randn(
            solution.shape,
            generator=generator,
            device=x.device if generator is None else generator.device,
            dtype=dtype,
        ).to(x.device)
    filled = torch.where(missing[:, None], solution, images.to(dtype))
    return filled.to(images.dtype)


def _first_guess(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """A start for conjugate gradients: the same problem solved at half the resolution (recursively,
    down to 16 pixels), upsampled; there the mean known colour. Only the speed depends on it."""
    known = 1 - hole
    if min(x.shape[-2:]) < 32:
        total = (x * known).sum(dim=(-2, -1), keepdim=True)
        return total / known.sum(dim=(-2, -1), keepdim=True).clamp_min(1)
    weight = F.avg_pool2d(known, 2, ceil_mode=True)
    coarse = F.avg_pool2d(x * known, 2, ceil_mode=True) / weight.clamp_min(1e-12)
    coarse_hole = (weight == 0).to(x.dtype)[:, 0]
    solved = impute(coarse, coarse_hole > 0, noise=0.0, tolerance=1e-3)
    return F.interpolate(solved, size=x.shape[-2:], mode="bilinear", align_corners=False)


# ---- shared machinery ------------------------------------------------------------------------------


def _curve(
    model, inputs, maps, targets, steps, substrate, batch_size, probabilities, progress, insert: bool
) -> Curve:
    if steps < 1:
        raise ValueError(f"steps must be a positive number, got {steps}")
    inputs, maps, targets = _prepare(model, inputs, maps, targets, probabilities)
    pixels = inputs.shape[-2] * inputs.shape[-1]
    step = -(-pixels // steps)
    counts = torch.tensor([*range(0, pixels, step), pixels], device=inputs.device)
    background = substrate_of(inputs, substrate).flatten(2)
    ranks = _ranks(maps)
    flat = inputs.flatten(2)
    # RISE: deletion takes the top-ranked pixels from the substrate; insertion takes them from the image
    first, rest = (flat, background) if insert else (background, flat)
    jobs = torch.arange(len(inputs) * len(counts), device=inputs.device)
    image, point = jobs // len(counts), jobs % len(counts)
    scores = torch.empty(len(jobs), device=inputs.device)
    with evaluating(model), torch.inference_mode():
        for start in range(0, len(jobs), batch_size):
            part = slice(start, start + batch_size)
            chosen = ranks[image[part]] < counts[point[part], None]
            perturbed = torch.where(chosen[:, None], first[image[part]], rest[image[part]])
            scores[part] = _score(
                model, perturbed.view(-1, *inputs.shape[1:]), targets[image[part]], probabilities
            )
            if progress:
                progress(min(start + batch_size, len(jobs)), len(jobs))
    return Curve(counts.float() / pixels, scores.view(len(inputs), len(counts)))


def _prepare(model, inputs, maps, targets, probabilities):
    """Inputs and maps on the model's device, maps at the input's size, targets (N,) decided."""
    if inputs.dim() != 4:
        raise ValueError(f"expected inputs (N, C, H, W), got {tuple(inputs.shape)}")
    if maps.dim() != 3 or len(maps) != len(inputs):
        raise ValueError(
            f"expected one map (N, h, w) per input, got {tuple(maps.shape)} for {len(inputs)} inputs"
        )
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is not None:
        inputs = inputs.to(device=parameter.device, dtype=parameter.dtype)
    maps = upsample(maps.to(inputs.device).float(), tuple(inputs.shape[-2:]))
    if targets is None:
        with evaluating(model), torch.inference_mode():
            targets = probabilities(model(inputs)).argmax(1)
    targets = torch.as_tensor(targets, device=inputs.device).long().reshape(-1)
    if len(targets) != len(inputs):
        raise ValueError(f"expected one target per input ({len(inputs)}), got {len(targets)}")
    return inputs, maps, targets


def _ranks(maps: torch.Tensor) -> torch.Tensor:
    """Each pixel's place (N, H*W) when the map is sorted in decreasing order, ties by pixel order."""
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    return order.argsort(dim=1)


def _score(
    model: nn.Module, batch: torch.Tensor, targets: torch.Tensor, probabilities: Probabilities
) -> torch.Tensor:
    return probabilities(model(batch)).gather(1, targets[:, None])[:, 0].float()
