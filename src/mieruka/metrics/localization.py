"""Localization against ground truth: does the map point at the object?"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..images import CropBox
from ..maps import to_photo


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 15) -> torch.Tensor:
    """Per map (N, H, W): True where its maximum falls on the object mask, grown by `tolerance` pixels.

    The pointing game of Zhang et al. (ECCV 2016, "Top-down neural attention by excitation backprop"),
    which allows 15 pixels at 224 x 224. Take ``.float().mean()`` for the score.
    """
    if maps.shape != masks.shape:
        raise ValueError(
            f"maps and masks must have the same shape, got {tuple(maps.shape)} and {tuple(masks.shape)}"
        )
    grown = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, 1, tolerance)[:, 0] > 0
    peaks = maps.flatten(1).argmax(1)
    return grown.flatten(1).gather(1, peaks[:, None])[:, 0]


def energy_inside(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per map (N, H, W): the share of its total (non-negative) value that lies on the object mask.

    The energy-based pointing game of Wang et al. (CVPR-W 2020, "Score-CAM"), with the object's mask
    in place of its bounding box. An all-zero map puts no energy on the object and scores 0.
    """
    if maps.shape != masks.shape:
        raise ValueError(
            f"maps and masks must have the same shape, got {tuple(maps.shape)} and {tuple(masks.shape)}"
        )
    inside = (maps * masks).flatten(1).sum(1)
    total = maps.flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(torch.finfo(maps.dtype).tiny), 0.0)


def box_mask(
    boxes: Sequence[Sequence[float]], size: tuple[int, int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The pixels (H, W) of a (width, height) photo whose centres lie in any of the boxes (x0, y0, x1, y1)."""
    width, height = size
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    if len(boxes) == 0:
        return mask
    corners = torch.tensor([list(b) for b in boxes], dtype=torch.float64, device=device)
    xs = torch.arange(width, device=device, dtype=torch.float64) + 0.5
    ys = torch.arange(height, device=device, dtype=torch.float64) + 0.5
    across = (xs[None] >= corners[:, :1]) & (xs[None] <= corners[:, 2:3])  # (B, W)
    down = (ys[None] >= corners[:, 1:2]) & (ys[None] <= corners[:, 3:4])  # (B, H)
    return (down[:, :, None] & across[:, None, :]).any(0)


def localize_in_photo(
    maps: torch.Tensor,
    box: CropBox,
    size: tuple[int, int],
    truth: Sequence[Sequence[float]] | torch.Tensor,
    tolerance: int = 15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointing game and energy inside for maps (K, h, w) of one photo, in the photo's own pixels.

    The maps cover the crop `box` of the (width, height) photo and are put back onto it by
    :func:`mieruka.maps.to_photo` (zero where the model did not look); the ground truth `truth` is the
    union of boxes (x0, y0, x1, y1) in photo pixels, or the object's mask (H, W) of the photo, nonzero
    = object. Returns (hit (K,) bool, energy (K,)).
    """
    photo_maps, _ = to_photo(maps, box, size)
    if isinstance(truth, torch.Tensor):
        if tuple(truth.shape) != (size[1], size[0]):
            raise ValueError(
                f"expected a mask (H, W) of the {size[0]}x{size[1]} photo, got {tuple(truth.shape)}"
            )
        mask = truth.to(photo_maps.device, torch.bool)
    else:
        mask = box_mask(truth, size, photo_maps.device)
    mask = mask.expand_as(photo_maps)
    return pointing_game(photo_maps, mask, tolerance), energy_inside(photo_maps, mask)
