"""What to explain: which score of the model's output each map answers for.

A target is, in the end, a function ``logits (N, classes) -> scores (N, K)``: one score per image
and per map. Class indices, class names, "the predicted class" and "the top k classes" are sugar
for picking logits; a callable ``f(logits) -> (N,)`` explains any other scalar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import MierukaError
from .labels import find_class, unknown_class_message

TargetSpec = int | str | Sequence[int | str] | torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None


class TargetError(MierukaError):
    """A target that does not name a class of the model."""


@dataclass(frozen=True)
class Targets:
    """Class indices (N, K) to explain, or a score function when the caller gave one."""

    indices: torch.Tensor | None
    score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def scores(self, logits: torch.Tensor | object, batch: int | None = None) -> torch.Tensor:
        """Scores (N, K) whose gradients make the maps; a target function may get any model output."""
        if self.score_fn is not None:
            scores = self.score_fn(logits)
            if batch is None and isinstance(logits, torch.Tensor):
                batch = logits.shape[0]
            if not isinstance(scores, torch.Tensor) or (batch is not None and scores.shape != (batch,)):
                shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise TargetError(
                    f"a target function must return one score per image, shape ({batch},), got {shape}"
                )
            return scores.unsqueeze(1)
        assert self.indices is not None
        return logits.gather(1, self.indices.to(logits.device))


def class_index(name: str, labels: Sequence[str] | None) -> int:
    """The index of a class given by name (case and '_'/' ' insensitive) or by its number as text."""
    if name.strip().lstrip("-").isdigit():
        return int(name)
    if not labels:
        raise TargetError(f"target {name!r} is a name, but the model has no class names; pass --labels")
    index = find_class(name, labels)
    if index is None:
        raise TargetError(unknown_class_message(name, labels))
    return index


def resolve_targets(
    target: TargetSpec,
    logits: torch.Tensor,
    labels: Sequence[str] | None = None,
    top_k: int | None = None,
) -> Targets:
    """Turn a user's target into class indices (N, K) for this batch of logits.

    None means the predicted class (or the `top_k` best classes); an int or name applies to every
    image; a sequence or tensor gives one target per image; a callable is used as the score itself.
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        if top_k not in (None, 1):
            raise TargetError("top_k cannot be combined with a target function")
        return Targets(None, target)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TargetError(
            f"the model returns {shape}, not class scores (N, classes) or an output holding them "
            "(.logits, ['logits'], a tuple's first item); pass a target function "
            "targets=lambda output: <one score per image, shape (N,)>"
        )
    batch, classes = logits.shape
    if target is None:
        k = 1 if top_k is None else top_k
        if not 1 <= k <= classes:
            raise TargetError(f"top_k must be between 1 and {classes}, got {k}")
        return Targets(logits.detach().topk(k, dim=1).indices)
    if top_k not in (None, 1):
        raise TargetError("top_k explains the best classes; it cannot be combined with an explicit target")
    if isinstance(target, int | str):
        indices = torch.full((batch, 1), _one_index(target, labels), dtype=torch.long)
    else:
        values = target.tolist() if isinstance(target, torch.Tensor) else list(target)
        if len(values) != batch:
            raise TargetError(f"got {len(values)} targets for a batch of {batch} images")
        indices = torch.tensor([_one_index(v, labels) for v in values], dtype=torch.long).view(batch, -1)
    if indices.min() < 0 or indices.max() >= classes:
        raise TargetError(f"class index out of range: the model has {classes} classes (0 to {classes - 1})")
    return Targets(indices.to(logits.device))


def _one_index(value: int | str, labels: Sequence[str] | None) -> int:
    if isinstance(value, str):
        return class_index(value, labels)
    return int(value)
