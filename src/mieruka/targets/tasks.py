"""Which task a model's output belongs to, and the target that explains each task by default.

Told from the output alone: a list of dicts with ``boxes`` is a detector's, ``{"out": ...}`` or a
(N, classes, H, W) tensor a segmenter's, (N, classes) a classifier's. A single output per image is
read as a binary classifier's logit. Multi-label, regression and embedding heads give the same
shapes as a classifier, so they are never guessed: the caller names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .base import TargetError, describe_output, output_tensor

TASKS = ("classify", "binary", "multilabel", "regression", "embed", "segment", "detect")


def infer_task(output: object) -> str:
    """The task a model's output says it was made for; a TargetError when it says none."""
    detections = isinstance(output, list | tuple) and output and all(isinstance(o, Mapping) for o in output)
    if detections and all("boxes" in o and "scores" in o for o in output):  # type: ignore[union-attr]
        return "detect"
    tensor = output_tensor(output)
    if tensor is not None:
        if tensor.dim() == 4:
            return "segment"
        if tensor.dim() == 1 or (tensor.dim() == 2 and tensor.shape[1] == 1):
            return "binary"
        if tensor.dim() == 2:
            return "classify"
    raise TargetError(
        f"the model returns {describe_output(output)}, which matches no task (class scores (N, classes), "
        "a mask (N, classes, H, W), detections [{'boxes', 'labels', 'scores'}]); name it with "
        "--task, or pass a target function in Python"
    )


def default_target(
    task: str,
    *,
    target: str | None = None,
    top_k: int = 1,
    threshold: float = 0.5,
    direction: str = "up",
    reference: torch.Tensor | None = None,
    min_score: float = 0.5,
    max_objects: int | None = None,
):
    """The target of a task with the CLI's options: `target` is a class (or an output for regression;
    several comma-separated for multi-label, detection and segmentation); None is each task's default.

    Returns what :func:`resolve_targets` takes: None or a class for a classifier, a Target object else.
    """
    names = _split(target)
    if task == "classify":
        return target  # the class, or None for the predicted one (top_k is passed on its own)
    if task == "binary":
        from .heads import BinaryTarget

        return BinaryTarget(target)
    if task == "multilabel":
        from .heads import MultiLabelTarget

        return MultiLabelTarget(threshold, top_k=top_k if top_k > 1 else None, classes=names)
    if task == "regression":
        from .heads import RegressionTarget

        return RegressionTarget(names, direction=direction)
    if task == "embed":
        from .heads import SimilarityTarget

        if reference is None:
            raise TargetError(
                "an embedding model is explained against a reference: pass --reference IMAGE|VECTOR"
            )
        return SimilarityTarget(reference)
    if task == "segment":
        from .segmentation import SegmentationTarget  # type: ignore[import-not-found]

        return SegmentationTarget(names)
    if task == "detect":
        from .detection import DetectionTarget  # type: ignore[import-not-found]

        return DetectionTarget(min_score=min_score, max_objects=max_objects, classes=names)
    raise TargetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def _split(target: str | None) -> Sequence[int | str] | None:
    if target is None:
        return None
    parts = [p.strip() for p in target.split(",") if p.strip()]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]
