"""Localization against ground truth: does the map point at the object?"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
