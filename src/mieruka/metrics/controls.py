"""Control maps that carry no knowledge of the model, evaluated beside the real methods so that every
number can be read against chance: a random map, and a centre prior (objects tend to be photographed
in the middle)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..maps import upsample
from ..metric_names import SEED


def random_map(
    count: int,
    size: tuple[int, int],
    seed: int | Sequence[int] = SEED,
    device: torch.device | str = "cpu",
    *,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Uniform noise maps (count, H, W) in [0, 1]: where chance points.

    Map ``k`` is drawn from its own generator seeded ``seed + k`` (or ``seed[k]`` given one seed per
    map), so a photo's map does not depend on which others share its batch and a run repeats.

    With `grid` (h, w) the noise is drawn at that resolution and upsampled bilinearly to `size`, as a
    CAM method's maps are: ``mieruka evaluate`` passes the layer's grid, so the control is as smooth as
    the maps it stands beside. Noise drawn per pixel (no `grid`) deletes scattered pixels everywhere,
    which breaks a CNN's confidence faster than any object-shaped map and so wins the deletion game
    without knowing anything.

    >>> random_map(2, (224, 224), seed=0, grid=(7, 7)).shape
    torch.Size([2, 224, 224])
    """
    seeds = [seed + k for k in range(count)] if isinstance(seed, int) else list(seed)
    if len(seeds) != count:
        raise ValueError(f"expected one seed per map ({count}), got {len(seeds)}")
    drawn = grid or size
    noise = torch.empty(count, *drawn)
    for k, one in enumerate(seeds):  # a few hundred numbers each: the loop costs nothing
        noise[k] = torch.rand(*drawn, generator=torch.Generator().manual_seed(one))
    return upsample(noise.to(device), size)


def centre_prior(
    count: int, size: tuple[int, int], sigma: float = 0.25, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A Gaussian bump (count, H, W) in the middle of the input, its standard deviation `sigma` times
    each side, peak 1: what a map that knows only that objects lie near the centre would show."""
    height, width = size
    y = (torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2) / (sigma * height)
    x = (torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2) / (sigma * width)
    bump = torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / 2)
    return bump.expand(count, height, width)


CONTROLS = {"random": random_map, "centre": centre_prior}
