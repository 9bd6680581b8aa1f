"""Where a model's feature maps lie when the model resizes its input itself: torchvision's detectors.

A classifier's feature maps cover its input, so a map is upsampled onto it. A torchvision detector
(Faster / Mask / Keypoint R-CNN, RetinaNet, FCOS, SSD) first passes the batch through its own
``GeneralizedRCNNTransform``: each image is normalized and resized (its short side to ``min_size``,
SSD to a fixed size), then the batch is padded at the bottom and right to a multiple of 32. Its
feature maps cover that padded batch, with each image in the top-left corner. A :class:`Frame`
records that layout from the transform's output (an ``ImageList``) during the pass, and
:func:`to_input` carries maps back: each image's part of the grid, stretched back over the input.
The transform rescales, it does not crop, so nothing of the input is lost.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .maps import upsample


@dataclass(frozen=True)
class Frame:
    """The batch a model's own transform made of the input: its padded (H, W), and per image the
    (h, w) of the resized image in the top-left corner of that padded canvas."""

    padded: tuple[int, int]
    sizes: tuple[tuple[int, int], ...]

    def image(self, index: int) -> Frame:
        """The frame of one image of the batch (for passes that run one image's variants)."""
        return Frame(self.padded, (self.sizes[index],))


def resizing_transform(model: nn.Module) -> nn.Module | None:
    """The module that resizes and pads the batch inside `model` (torchvision's
    ``GeneralizedRCNNTransform``), or None. torchvision is only looked at when it is already loaded:
    a model that holds one has imported it."""
    if "torchvision" not in sys.modules:
        return None
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return next((m for m in model.modules() if isinstance(m, GeneralizedRCNNTransform)), None)


@contextmanager
def recording(model: nn.Module) -> Iterator[list[Frame]]:
    """Record the :class:`Frame` of each forward pass of `model` run inside the block (none for a
    model without a resizing transform). The hook lives for the block only, also when it raises."""
    frames: list[Frame] = []
    transform = resizing_transform(model)
    if transform is None:
        yield frames
        return

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        images = output[0] if isinstance(output, tuple) else output  # (ImageList, targets)
        frames.append(
            Frame(
                tuple(images.tensors.shape[-2:]),
                tuple((int(h), int(w)) for h, w in images.image_sizes),
            )
        )

    handle = transform.register_forward_hook(hook)
    try:
        yield frames
    finally:
        handle.remove()


def to_input(maps: torch.Tensor, frame: Frame | None, size: tuple[int, int]) -> torch.Tensor:
    """Maps (N, K, h, w) over the model's grid, resampled onto the input's (H, W) pixels.

    Without a frame the grid covers the input and this is :func:`mieruka.maps.upsample`. With one,
    input pixel centre (y + 0.5, x + 0.5) lies at ((y + 0.5) h_n / H, (x + 0.5) w_n / W) in the padded
    batch, (h_n, w_n) being image n's resized size; the map is sampled there, bilinearly, in one step
    (the same as upsampling to the padded size, cropping image n's part and resizing it to the input,
    without blurring twice). Cells past the last cell centre take the edge value, as in upsample.
    """
    if frame is None:
        return upsample(maps, size)
    if len(frame.sizes) != maps.shape[0]:
        raise ValueError(f"a frame of {len(frame.sizes)} images for maps of {maps.shape[0]}")
    height, width = size
    padded_h, padded_w = frame.padded
    sizes = torch.tensor(frame.sizes, dtype=torch.float64)  # (N, 2)
    rows = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    columns = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    # grid_sample's coordinates: -1 and 1 are the outer edges of the padded batch (align_corners=False)
    y = rows[None, :] * sizes[:, :1] / padded_h * 2 - 1  # (N, H)
    x = columns[None, :] * sizes[:, 1:] / padded_w * 2 - 1  # (N, W)
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), -1)  # (N, H, W, (x, y))
    lead = maps.shape[1:-2]
    flat = maps.float().reshape(maps.shape[0], -1, *maps.shape[-2:])
    sampled = F.grid_sample(
        flat,
        grid.to(device=maps.device, dtype=torch.float32),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return sampled.reshape(maps.shape[0], *lead, height, width)
