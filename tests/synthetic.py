"""Synthetic photos with known ground truth: five shape classes at random places on clutter.

Each image holds one shape whose class is the label and whose pixels are the ground-truth location, so
a map's hottest point can be checked against where the evidence really is (the pointing game). Two
small classifiers learn them here, a CNN and a vision transformer, with the baselines a map must beat.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

CLASSES = ("square", "disc", "triangle", "cross", "ring")
BATCH = 64  # images per training step


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


def make_shape_pairs(
    count: int, seed: int, size: int = 64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images holding two shapes of different classes that do not touch: images (N, 3, size, size),
    multi-hot labels (N, classes) and one ground-truth mask per class (N, classes, size, size), all
    False for the classes not in the image."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.35, (count, 3, size, size)).astype(np.float32)
    labels = np.zeros((count, len(CLASSES)), dtype=np.float32)
    masks = np.zeros((count, len(CLASSES), size, size), dtype=bool)
    y, x = np.mgrid[0:size, 0:size]
    for i in range(count):
        for _ in range(3):
            angle, offset = rng.uniform(0, np.pi), rng.uniform(-size / 2, size / 2)
            line = np.abs((x - size / 2) * np.cos(angle) + (y - size / 2) * np.sin(angle) - offset) < 0.8
            images[i][:, line] = rng.uniform(0.1, 0.5, (3, 1))
        kinds = rng.choice(len(CLASSES), 2, replace=False)
        placed: list[tuple[int, int, int]] = []
        for kind in kinds:
            while True:  # rejection sampling: the two shapes at least 4 pixels apart
                radius = int(rng.integers(7, 10))
                cx, cy = (int(v) for v in rng.integers(radius + 1, size - radius - 1, 2))
                if all((cx - px) ** 2 + (cy - py) ** 2 > (radius + pr + 4) ** 2 for px, py, pr in placed):
                    break
            placed.append((cx, cy, radius))
            mask = shape_mask(CLASSES[kind], size, radius, cx, cy)
            images[i][:, mask] = rng.uniform(0.6, 1.0, (3, 1))
            labels[i, kind] = 1.0
            masks[i, kind] = mask
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
    return fit(model, images, labels, optimizer, epochs)


def train_shape_pairs_net(seed: int = 0, count: int = 800, epochs: int = 4) -> ShapesNet:
    """Train ShapesNet as a multi-label classifier (a sigmoid per class, binary cross-entropy) on images
    holding two shapes each; about 25 seconds of one core.

    Batches of 16, not the usual 64: four times the updates for the same compute. With batches of 64
    as many epochs leave recall at p >= 0.5 near 0.7 on held-out pairs; with 16 it is about 0.98.
    """
    torch.manual_seed(seed)
    images, labels, _ = make_shape_pairs(count, seed=seed + 300)
    model = ShapesNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    with threads(1):
        return fit(
            model,
            images,
            labels,
            optimizer,
            epochs,
            batch=16,
            loss=nn.functional.binary_cross_entropy_with_logits,
        )


def build_shapes_vit(**changes) -> nn.Module:
    """A small timm ViT for the 64-pixel shapes: 8 x 8 patches of 8 pixels, a class token read by the
    head. `changes` replace its settings (timm's `VisionTransformer` arguments), for recipe studies."""
    from timm.models.vision_transformer import VisionTransformer

    settings = dict(
        img_size=64,
        patch_size=8,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.0,
        num_classes=len(CLASSES),
        class_token=True,
        global_pool="token",
    )
    return VisionTransformer(**(settings | changes))


def train_shapes_vit(seed: int = 0, count: int = 4000, epochs: int = 10, **changes) -> nn.Module:
    """Train the ViT (`build_shapes_vit(**changes)`) with AdamW, a linear warm-up then cosine decay, and
    random mirroring (the five shapes are mirror-symmetric); about a minute on two CPU cores.

    One thread: its matrices are tiny (65 tokens of 64 channels), so a second thread only adds waiting,
    and the weights come out the same whatever the number of cores.
    """
    torch.manual_seed(seed)
    images, labels, _ = make_shapes(count, seed=seed + 200)
    model = build_shapes_vit(**changes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    total = epochs * math.ceil(count / BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total // 10, total)
    )
    with threads(1):
        return fit(model, images, labels, optimizer, epochs, schedule=schedule, mirror=True)


def fit(
    model,
    images,
    labels,
    optimizer,
    epochs: int,
    schedule=None,
    mirror: bool = False,
    batch: int = BATCH,
    loss=None,
) -> nn.Module:
    """Minibatch training with cross-entropy (or `loss(logits, labels)`), a new order each epoch;
    returns the model in eval mode.

    `mirror` flips a random half of each epoch's images left to right.
    """
    loss = loss or nn.functional.cross_entropy
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        flips = torch.rand(len(images)) < 0.5 if mirror else torch.zeros(len(images), dtype=torch.bool)
        for start in range(0, len(images), batch):
            rows = order[start : start + batch]
            inputs = torch.where(flips[rows, None, None, None], images[rows].flip(-1), images[rows])
            value = loss(model(inputs), labels[rows])
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    return model.eval()


@contextlib.contextmanager
def threads(count: int):
    """Run torch's CPU operations on `count` threads inside the block; the setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor: linear from 1/warmup to 1 over `warmup` steps, then a cosine down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# ---- baselines a map must beat ---------------------------------------------------------------------


def random_maps(count: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Uniform noise maps (count, size, size): where chance points."""
    return torch.rand(count, size, size, generator=torch.Generator().manual_seed(seed))


def centre_prior(count: int, size: int = 64, sigma: float = 0.25) -> torch.Tensor:
    """A Gaussian bump in the middle of the image, `sigma` a fraction of its side: what a map that
    knows only that objects tend to lie near the centre would show."""
    axis = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    bump = torch.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * (sigma * size) ** 2))
    return bump.expand(count, size, size)
