"""The target of a segmenter: a class's score summed over a region of its per-pixel output."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Target, TargetError, Targets, describe_output, output_tensor
from .classes import class_index
from .heads import _name


class SegmentationTarget(Target):
    """A segmenter's class scores (N, classes, H, W), or torchvision's ``{"out": ..., "aux": ...}``:
    one map per class, whose score is the class's logit summed over a region.

    The region is `mask` ((H, W) or one per image (N, H, W), bool, of the output's size), `box`
    (x0, y0, x1, y1, or one per image (N, 4): the pixels whose centres lie inside), or by default the
    pixels the model predicts as that class (arg-max). Boxes and masks are in the output's pixels,
    which for torchvision's segmenters (and any model that upsamples its output to its input) are the
    input's pixels. `classes` (indices or names) are explained in every image; None explains every
    class the model predicts in the image (inside the mask or box when one is given), most pixels
    first, except the `background` class: 0, as in torchvision's VOC-style segmenters, whose class 0
    ``__background__`` would otherwise get a map of everything else; pass ``background=None`` for a
    model whose class 0 is a real class. Name class 0 in `classes` to explain the background anyway.
    Images with fewer classes than the batch's most are padded (`valid`).

    The confidence is the class's mean softmax probability over its region; `details` give the
    region's area in pixels and `regions` the region itself. The score is pytorch-grad-cam's
    ``SemanticSegmentationTarget(category, mask)``: ``(output[category] * mask).sum()``.

    >>> from torchvision.models.segmentation import fcn_resnet50
    >>> model = fcn_resnet50(weights=None, weights_backbone=None).eval()
    >>> result = CAM(model)(torch.rand(1, 3, 128, 128), SegmentationTarget(background=None))
    >>> result.maps.shape[-2:], result.regions.shape[-2:]  # (N, K, 128, 128) each
    """

    task = "segment"

    def __init__(
        self,
        classes: int | str | Sequence[int | str] | None = None,
        *,
        mask: torch.Tensor | None = None,
        box: Sequence[float] | torch.Tensor | None = None,
        background: int | None = 0,
    ) -> None:
        if mask is not None and box is not None:
            raise TargetError("a segmentation target takes a mask or a box, not both")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3)):
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TargetError(f"a segmentation mask is a tensor (H, W) or (N, H, W), got {shape}")
        if box is not None:
            box = torch.as_tensor(box, dtype=torch.float64)
            if box.shape[-1:] != (4,) or box.dim() > 2:
                raise TargetError(
                    f"a box is (x0, y0, x1, y1) or one per image (N, 4), got {tuple(box.shape)}"
                )
            if bool(((box[..., 2] <= box[..., 0]) | (box[..., 3] <= box[..., 1])).any()):
                raise TargetError(f"a box is (x0, y0, x1, y1) with x0 < x1 and y0 < y1, got {box.tolist()}")
        self.classes, self.mask, self.box, self.background = classes, mask, box, background

    def select(self, output: object, labels: list[str] | None) -> Targets:
        logits = _dense(output).detach().float()
        batch, count, height, width = logits.shape
        predicted = logits.argmax(1)  # (N, H, W)
        area = self._area(batch, height, width, logits.device)  # the given region, or None
        valid = None
        if self.classes is not None:
            items = [self.classes] if isinstance(self.classes, int | str) else list(self.classes)
            chosen = [class_index(c, labels) if isinstance(c, str) else int(c) for c in items]
            if not chosen or any(not 0 <= c < count for c in chosen):
                raise TargetError(
                    f"class index out of range: the model has {count} classes (0 to {count - 1}), got {chosen}"
                )
            order = torch.tensor(chosen, device=logits.device).expand(batch, -1)
        else:
            seen = predicted if area is None else torch.where(area, predicted, -1)
            pixels = torch.zeros(batch, count + 1, device=logits.device)  # column 0: outside the region
            pixels.scatter_add_(1, (seen + 1).flatten(1), torch.ones_like(seen.flatten(1), dtype=torch.float))
            pixels = pixels[:, 1:]
            if self.background is not None and 0 <= self.background < count:
                pixels[:, self.background] = 0
            found = pixels > 0
            k = max(1, int(found.sum(1).max()))
            order = torch.where(found, pixels, -1.0).argsort(dim=1, descending=True, stable=True)[:, :k]
            valid = found.gather(1, order)
        if area is not None:
            regions = area[:, None].expand(-1, order.shape[1], -1, -1)
        else:
            regions = predicted[:, None] == order[:, :, None, None]
        if valid is not None:
            regions = regions & valid[:, :, None, None]
        regions = regions.contiguous()

        def score(out: object, rows: torch.Tensor | None) -> torch.Tensor:
            dense = _dense(out)
            if tuple(dense.shape[-2:]) != (height, width):
                raise TargetError(
                    f"the model's output changed size, {height}x{width} to {dense.shape[-2]}x{dense.shape[-1]}"
                )
            picked = order.to(dense.device)[rows.to(order.device)]  # (B, K)
            values = dense.gather(1, picked[:, :, None, None].expand(-1, -1, height, width))
            inside = regions.to(dense.device)[rows.to(regions.device)]
            return (values * inside.to(values.dtype)).flatten(2).sum(-1)

        pixels_in = regions.flatten(2).sum(-1)  # (N, K)
        probs = logits.softmax(1).gather(1, order[:, :, None, None].expand(-1, -1, height, width))
        mean = (probs * regions).flatten(2).sum(-1) / pixels_in.clamp_min(1)
        names = [[_name(labels, c) for c in row] for row in order.tolist()]
        details = [[{"area": int(a)} for a in row] for row in pixels_in.tolist()]
        return Targets(
            order,
            score,
            task=self.task,
            valid=valid,
            probabilities=mean,
            names=names,
            details=details,
            single=isinstance(self.classes, int | str),
            regions=regions,
        )

    def _area(self, batch: int, height: int, width: int, device: torch.device) -> torch.Tensor | None:
        """The given region (N, H, W) bool, checked against the output's size; None for the default."""
        if self.mask is not None:
            mask = self.mask.to(device).bool()
            if tuple(mask.shape[-2:]) != (height, width) or (mask.dim() == 3 and len(mask) not in (1, batch)):
                raise TargetError(
                    f"the mask is {'x'.join(map(str, mask.shape))}, but the model's output is {height}x{width} "
                    f"for {batch} image(s): a mask is (H, W) or (N, H, W) at the output's size"
                )
            return mask.expand(batch, height, width)
        if self.box is None:
            return None
        boxes = self.box.reshape(-1, 4)
        if len(boxes) not in (1, batch):
            raise TargetError(f"got {len(boxes)} boxes for a batch of {batch} images")
        boxes = boxes.expand(batch, 4).to(device)
        y = torch.arange(height, device=device, dtype=torch.float64) + 0.5
        x = torch.arange(width, device=device, dtype=torch.float64) + 0.5
        rows = (y[None] >= boxes[:, 1:2]) & (y[None] <= boxes[:, 3:4])  # (N, H)
        columns = (x[None] >= boxes[:, 0:1]) & (x[None] <= boxes[:, 2:3])  # (N, W)
        inside = rows[:, :, None] & columns[:, None, :]
        if not bool(inside.flatten(1).any(1).all()):
            raise TargetError(
                f"the box {boxes[0].tolist()} holds no pixel of the model's {height}x{width} output"
            )
        return inside


def _dense(output: object) -> torch.Tensor:
    """The (N, classes, H, W) tensor of a segmenter's output."""
    tensor = output_tensor(output)
    if tensor is None or tensor.dim() != 4:
        raise TargetError(
            "a segmentation target needs class scores per pixel (N, classes, H, W) or torchvision's "
            f"{{'out': ...}}, the model returns {describe_output(output)}"
        )
    return tensor
