"""The selection of what one batch explains, and the base of every named target.

Whatever the task, a call explains K scores per image: `Targets.scores(output) -> (N, K)`, one map
per score. A target object looks at the model's output once (detached) and decides those K scores
for this batch: the predicted class, the labels above a threshold, every detected object... Images
with fewer than K things to explain (two labels here, five objects there) are padded; `valid` marks
the real ones and padded maps are all zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ..errors import MierukaError

ScoreFn = Callable[[object, torch.Tensor], torch.Tensor]  # (model output, rows (B,)) -> scores (B, K)


class TargetError(MierukaError):
    """A target that does not fit the model or its output: the message says what was expected."""


@dataclass(frozen=True)
class Targets:
    """What one batch explains: K scores per image and how to present each.

    `indices` (N, K) are class indices when each map explains one class of a (N, classes) output;
    `score_fn(output, rows)` computes the scores otherwise (`rows` (B,) says which image of the batch
    each row of `output` came from: perturbation methods run one image's variants together).
    `valid` (N, K) is False for padding, `probabilities` (N, K) what each map's confidence reads as
    (softmax or sigmoid probability, a detection's score; None where there is none), `names` the
    label of each map, `details` extra fields per map for the records (a box, a region's area),
    `regions` (N, K, H, W) the pixels of the model's output each score is summed over (segmentation),
    so pictures can outline what was explained.
    """

    indices: torch.Tensor | None
    score_fn: ScoreFn | None = None
    task: str = "classify"
    valid: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None
    names: list[list[str]] | None = None
    details: list[list[dict]] | None = None
    class_probs: torch.Tensor | None = field(default=None, repr=False)  # (N, classes): softmax or sigmoid
    class_names: list[str] | None = None  # names of `class_probs`' columns, when not the model's labels
    single: bool = True  # one target per image by nature: results drop the K axis (unless top_k asked)
    regions: torch.Tensor | None = field(default=None, repr=False)  # (N, K, H, W) bool

    @property
    def count(self) -> int:
        """K, the number of maps per image."""
        if self.indices is not None:
            return self.indices.shape[1]
        if self.valid is not None:
            return self.valid.shape[1]
        return 1

    def scores(self, output: object, rows: torch.Tensor | int | None = None) -> torch.Tensor:
        """Scores (B, K) whose gradients make the maps. `rows` (B,) maps each row of `output` to its
        image in the batch (default: row i is image i; an int is the batch size, for checking)."""
        batch = rows if isinstance(rows, int) else None
        if isinstance(rows, int) or rows is None:
            size = batch if batch is not None else _batch_size(output)
            rows = torch.arange(size) if size is not None else None
        if self.score_fn is not None:
            scores = self.score_fn(output, rows)
            expected = (len(rows), self.count) if rows is not None else None
            if not isinstance(scores, torch.Tensor) or (
                expected is not None and tuple(scores.shape) != expected
            ):
                shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise TargetError(f"target scores must have shape {expected}, got {shape}")
        else:
            logits = class_scores(output)
            assert self.indices is not None and rows is not None
            scores = logits.gather(1, self.indices.to(logits.device)[rows.to(self.indices.device)])
        if self.valid is not None and rows is not None:
            keep = self.valid.to(scores.device)[rows.to(self.valid.device)]
            scores = torch.where(keep, scores, scores * 0)  # padding: zero score, zero gradient, on the graph
        return scores


class Target:
    """A named target: `select(output, labels)` decides what a batch explains, given the model's output.

    Subclasses document their score, their default, and how their maps' confidence reads.
    """

    task = "classify"

    def select(self, output: object, labels: list[str] | None) -> Targets:
        raise NotImplementedError


class Top(NamedTuple):
    values: torch.Tensor
    indices: torch.Tensor


def top_scores(scores: torch.Tensor, k: int) -> Top:
    """The `k` best scores along the last dimension, best first; equal scores in class order, so the
    predicted class, the classes explained and a record's top five agree even on ties (an untrained
    head with all-zero weights gives every class the same score). ``topk`` leaves ties in any order."""
    values, indices = scores.sort(dim=-1, descending=True, stable=True)
    return Top(values[..., :k], indices[..., :k])


def class_scores(output: object) -> torch.Tensor:
    """The (N, classes) tensor in a model's output: the tensor itself, a Hugging Face ``.logits``,
    a dict's ``["logits"]`` or a tuple's first item."""
    from ..capture import output_logits

    logits, _ = output_logits(output)
    if logits is None:
        raise TargetError(
            f"the model returns {describe_output(output)}, not class scores (N, classes) or an output "
            "holding them (.logits, ['logits'], a tuple's first item); pass a target function "
            "targets=lambda output: <one score per image, shape (N,)>, or a target of mieruka.targets"
        )
    return logits


def output_tensor(output: object) -> torch.Tensor | None:
    """The main tensor of an output of any rank: itself, ``.logits``, ``["logits"]``/``["out"]``, or a
    tuple's first item; None when there is none."""
    if isinstance(output, torch.Tensor):
        return output
    value = getattr(output, "logits", None)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(output, Mapping):
        for key in ("logits", "out"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def describe_output(output: object) -> str:
    """A short description of a model output for error messages: shapes, not values."""
    if isinstance(output, torch.Tensor):
        return f"a tensor {tuple(output.shape)}"
    if isinstance(output, Mapping):
        inner = ", ".join(f"{k!r}: {describe_output(v)}" for k, v in list(output.items())[:4])
        return "{" + inner + "}"
    if isinstance(output, tuple | list):
        kind = "a list" if isinstance(output, list) else "a tuple"
        return f"{kind} of {len(output)}" + (f" ({describe_output(output[0])}, ...)" if output else "")
    return type(output).__name__


def _batch_size(output: object) -> int | None:
    tensor = output_tensor(output)
    if tensor is not None:
        return tensor.shape[0]
    if isinstance(output, list):
        return len(output)
    return None
