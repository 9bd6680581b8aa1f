"""Synthetic photos with known ground truth: five shape classes at random places on clutter.

Each image holds one shape whose class is the label and whose pixels are the ground-truth location, so
a map's hottest point can be checked against where the evidence really is (the pointing game).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CLASSES = ("square", "disc", "triangle", "cross", "ring")


def shape_mask(kind: str, size: int, radius: int, cx: int, cy: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    dx, dy = x - cx, y - cy
    if kind == "square":
        return (np.abs(dx) <= radius * 0.8) & (np.abs(dy) <= radius * 0.8)
    if kind == "disc":
        return dx**2 + dy**2 <= radius**2
    if kind == "triangle":
        return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.55)
    if kind == "cross":
        arm = radius * 0.3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))
    if kind == "ring":
        distance = dx**2 + dy**2
        return (distance <= radius**2) & (distance >= (radius * 0.55) ** 2)
    raise ValueError(kind)


def make_shapes(count: int, seed: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, 3, size, size) in [0, 1], labels (N,), ground-truth masks (N, size, size)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.35, (count, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, len(CLASSES), count)
    masks = np.zeros((count, size, size), dtype=bool)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(count):
        for _ in range(3):  # clutter: thin random lines in dull colours
            angle, offset = rng.uniform(0, np.pi), rng.uniform(-size / 2, size / 2)
            line = np.abs((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle) - offset) < 0.8
            images[i][:, line] = rng.uniform(0.1, 0.5, (3, 1))
        radius = int(rng.integers(7, 11))
        cx, cy = (int(v) for v in rng.integers(radius + 1, size - radius - 1, 2))
        mask = shape_mask(CLASSES[labels[i]], size, radius, cx, cy)
        images[i][:, mask] = rng.uniform(0.6, 1.0, (3, 1))
        masks[i] = mask
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks)


class ShapesNet(nn.Module):
    """A small all-convolutional classifier with global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def train_shapes_net(seed: int = 0, count: int = 1200, epochs: int = 5) -> ShapesNet:
    """Train ShapesNet on fresh synthetic data; about 30 seconds on two CPU cores."""
    torch.manual_seed(seed)
    images, labels, _ = make_shapes(count, seed=seed + 100)
    model = ShapesNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(count)
        for start in range(0, count, 64):
            batch = order[start : start + 64]
            loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()
