"""Class targets of a (N, classes) classifier: the predicted class, the top k, or given classes.

Class indices, class names, "the predicted class" and "the top k classes" are sugar for picking
logits; a callable ``f(output) -> (N,)`` explains any other scalar of the model's output.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from ..labels import find_classes, unknown_class_message
from .base import Target, TargetError, Targets, class_scores, top_scores

TargetSpec = int | str | Sequence[int | str] | torch.Tensor | Callable[[object], torch.Tensor] | Target | None


def class_index(name: str, labels: Sequence[str] | None) -> int:
    """The index of a class given by name (case and '_'/' ' insensitive) or by its number as text."""
    if name.strip().lstrip("-").isdigit():
        return int(name)
    if not labels:
        raise TargetError(f"target {name!r} is a name, but the model has no class names; pass --labels")
    found = find_classes(name, labels)
    if not found:
        raise TargetError(unknown_class_message(name, labels))
    if len(found) > 1:
        raise TargetError(
            f"target {name!r} is the name of classes {', '.join(map(str, found))}: "
            "give the number of the one you mean instead"
        )
    return found[0]


def resolve_targets(
    target: TargetSpec,
    output: object,
    labels: Sequence[str] | None = None,
    top_k: int | None = None,
) -> Targets:
    """Decide what this batch explains, from the user's target and the model's (detached) output.

    None means the predicted class (or the `top_k` best classes); an int or name applies to every
    image; a sequence or tensor gives one target per image; a callable ``f(output) -> (N,)`` is used
    as the score itself; a :class:`Target` (binary, multi-label, detection...) decides for itself.
    """
    if isinstance(target, Target):
        if top_k not in (None, 1):
            raise TargetError(
                f"top_k cannot be combined with a {type(target).__name__}; set it on the target"
            )
        return target.select(output, list(labels) if labels is not None else None)
    if callable(target) and not isinstance(target, torch.Tensor):
        if top_k not in (None, 1):
            raise TargetError("top_k cannot be combined with a target function")
        return Targets(None, _per_image(target), task="function")
    logits = class_scores(output)
    if logits.dim() != 2:
        raise TargetError(f"expected class scores (N, classes), got {tuple(logits.shape)}")
    batch, classes = logits.shape
    probs = logits.detach().float().softmax(1)
    if target is None:
        k = 1 if top_k is None else top_k
        if not 1 <= k <= classes:
            raise TargetError(f"top_k must be between 1 and {classes}, got {k}")
        indices = top_scores(logits.detach(), k).indices
        return _class_targets(indices, probs, labels)
    if top_k not in (None, 1):
        raise TargetError("top_k explains the best classes; it cannot be combined with an explicit target")
    if isinstance(target, numbers.Number | str) or (isinstance(target, torch.Tensor) and target.dim() == 0):
        indices = torch.full((batch, 1), _one_index(target, labels), dtype=torch.long)
    else:
        values = target.tolist() if isinstance(target, torch.Tensor) else list(target)
        if len(values) != batch:
            raise TargetError(f"got {len(values)} targets for a batch of {batch} images")
        indices = torch.tensor([_one_index(v, labels) for v in values], dtype=torch.long).view(batch, -1)
    if indices.min() < 0 or indices.max() >= classes:
        raise TargetError(f"class index out of range: the model has {classes} classes (0 to {classes - 1})")
    return _class_targets(indices.to(logits.device), probs, labels)


def _class_targets(indices: torch.Tensor, probs: torch.Tensor, labels: Sequence[str] | None) -> Targets:
    names = [[labels[i] for i in row] for row in indices.tolist()] if labels is not None else None
    return Targets(
        indices,
        task="classify",
        probabilities=probs.gather(1, indices.to(probs.device)),
        names=names,
        class_probs=probs,
    )


def _per_image(function: Callable[[object], torch.Tensor]):
    """A user's ``f(output) -> (N,)`` as a score function (output, rows) -> (N, 1)."""

    def score(output: object, rows: torch.Tensor | None) -> torch.Tensor:
        scores = function(output)
        expected = len(rows) if rows is not None else None
        if not isinstance(scores, torch.Tensor) or (
            expected is not None and tuple(scores.shape) != (expected,)
        ):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise TargetError(
                f"a target function must return one score per image, shape ({expected},), got {shape}"
            )
        return scores.unsqueeze(1)

    return score


def _one_index(value: int | str, labels: Sequence[str] | None) -> int:
    if isinstance(value, str):
        return class_index(value, labels)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # True is no class 1
        raise TargetError(
            f"a target class is an index (int) or a name (str), got {value!r}; a score of your own is a "
            "function targets=lambda output: <one score per image, shape (N,)>"
        )
    return int(value)
