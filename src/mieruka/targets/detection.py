"""The target of a detector: one map per detected object, the object's score matched across passes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .base import Target, TargetError, Targets, describe_output
from .classes import class_index
from .heads import _name


class DetectionTarget(Target):
    """A torchvision detector (Faster / Mask R-CNN, RetinaNet, FCOS, SSD, SSDlite), whose eval forward
    returns one ``{"boxes", "labels", "scores"}`` per image: one map per detected object.

    The objects are the detections whose score is at least `min_score` (of the `classes` given, by
    index or name, when given), highest first, at most `max_objects` per image; images with fewer
    objects than the batch's most are padded (`valid`); an image with none gets one padded map.
    An object's score in any pass of the model is the score of that pass's detection with the same
    label and the highest IoU with the object's box, if above `iou`, else 0: the matching of
    pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``, so methods that run the model again (Score-CAM,
    Ablation-CAM) follow each object across passes. That target adds the IoU itself to the score; its
    gradient is zero at the detected box, so gradient maps agree and only perturbation methods differ.

    `targets` are the labels, the confidence is the detection score, and `details` hold the box
    (x0, y0, x1, y1) in input pixels (the detector maps its boxes back through its resize) and score.

    >>> from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn
    >>> model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None).eval()
    >>> result = CAM(model)(torch.rand(1, 3, 320, 320), DetectionTarget(min_score=0.0, max_objects=3))
    >>> result.maps.shape  # (N, K, H, W): one map per object, each normalized on its own
    """

    task = "detect"

    def __init__(
        self,
        min_score: float = 0.5,
        max_objects: int | None = None,
        iou: float = 0.5,
        classes: Sequence[int | str] | int | str | None = None,
    ) -> None:
        if max_objects is not None and max_objects < 1:
            raise TargetError(f"max_objects must be at least 1, got {max_objects}")
        if not 0.0 <= min_score <= 1.0:
            raise TargetError(f"min_score is a detection score in [0, 1], got {min_score}")
        if not 0.0 <= iou < 1.0:
            raise TargetError(f"the IoU threshold is in [0, 1), got {iou}")
        self.min_score, self.max_objects, self.iou = min_score, max_objects, iou
        self.classes = [classes] if isinstance(classes, int | str) else classes

    def select(self, output: object, labels: list[str] | None) -> Targets:
        detections = _detections(output)
        wanted = None
        if self.classes is not None:
            wanted = [class_index(c, labels) if isinstance(c, str) else int(c) for c in self.classes]
            if labels is not None and any(not 0 <= c < len(labels) for c in wanted):
                raise TargetError(
                    f"class index out of range: the model has {len(labels)} classes (0 to {len(labels) - 1})"
                )
        picked = []
        for found in detections:
            scores = found["scores"].detach()
            keep = scores >= self.min_score
            if wanted is not None:
                keep &= torch.isin(found["labels"], torch.tensor(wanted, device=scores.device))
            order = torch.where(keep, scores, -1.0).argsort(descending=True, stable=True)[: int(keep.sum())]
            picked.append(order[: self.max_objects])
        batch, k = len(detections), max(1, max((len(p) for p in picked), default=0))
        device = detections[0]["boxes"].device if detections else torch.device("cpu")
        boxes = torch.zeros(batch, k, 4, device=device)
        classes = torch.zeros(batch, k, dtype=torch.long, device=device)
        scores = torch.zeros(batch, k, device=device)
        valid = torch.zeros(batch, k, dtype=torch.bool, device=device)
        for n, (found, order) in enumerate(zip(detections, picked)):
            count = len(order)
            boxes[n, :count] = found["boxes"].detach()[order].float()
            classes[n, :count] = found["labels"][order]
            scores[n, :count] = found["scores"].detach()[order].float()
            valid[n, :count] = True
        threshold = self.iou

        def score(out: object, rows: torch.Tensor | None) -> torch.Tensor:
            passes = _detections(out)
            assert rows is not None
            return torch.stack(
                [_matched(found, boxes[n], classes[n], threshold) for found, n in zip(passes, rows.tolist())]
            )

        names = [
            [_name(labels, c) if ok else "" for c, ok in zip(row, keep)]
            for row, keep in zip(classes.tolist(), valid.tolist())
        ]
        details = [
            [
                {"box": [round(v, 2) for v in box], "score": round(s, 4)} if ok else {}
                for box, s, ok in zip(row_boxes, row_scores, keep)
            ]
            for row_boxes, row_scores, keep in zip(boxes.tolist(), scores.tolist(), valid.tolist())
        ]
        return Targets(
            classes,
            score,
            task=self.task,
            valid=valid,
            probabilities=scores,
            names=names,
            details=details,
            single=False,
        )


def _matched(found: Mapping, boxes: torch.Tensor, classes: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per object (K,): the score of the detection in `found` with its label and the highest IoU with
    its box, when that IoU is above `threshold`; 0 otherwise (on the graph, so gradients are zero)."""
    from torchvision.ops import box_iou

    scores, out_boxes = found["scores"], found["boxes"]
    if len(out_boxes) == 0:
        return scores.sum().expand(len(boxes)) * 0
    overlap = box_iou(boxes.to(out_boxes.device, out_boxes.dtype), out_boxes)  # (K, M)
    same = classes.to(found["labels"].device)[:, None] == found["labels"][None, :]
    overlap = torch.where(same, overlap, -1.0)
    best, index = overlap.max(1)
    return torch.where(best > threshold, scores[index], scores[index] * 0)


def _detections(output: object) -> list[Mapping]:
    """A detector's output: one dict with boxes (M, 4), labels (M,) and scores (M,) per image."""
    if (
        not isinstance(output, list | tuple)
        or not output
        or not all(isinstance(o, Mapping) and {"boxes", "labels", "scores"} <= o.keys() for o in output)
    ):
        raise TargetError(
            "a detection target needs a detector's output, a list of {'boxes', 'labels', 'scores'} per "
            f"image (torchvision's detectors in eval mode), the model returns {describe_output(output)}"
        )
    return list(output)
