"""Control maps that carry no knowledge of the model, evaluated beside the real methods so that every
number can be read against chance: a random map, and a centre prior (objects tend to be photographed
in the middle)."""

from __future__ import annotations

import torch


def random_map(
    count: int, size: tuple[int, int], seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Uniform noise maps (count, H, W) in [0, 1]: where chance points. Seeded, so tables repeat."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, *size, generator=generator).to(device)


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
