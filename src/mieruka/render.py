"""Turn maps on the photo into pictures: colormap lookup on tensors, overlays, panels, PNG files."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ._io import atomic_open
from .images import CropBox, pil_to_tensor
from .maps import normalize, to_photo

STYLES = ("overlay", "classic", "heatmap", "panel")
OUTSIDE_GRAY = 96  # heatmap style: where the model saw nothing


@functools.lru_cache(maxsize=16)
def _colormap_table(name: str) -> np.ndarray:
    import matplotlib

    try:
        colormap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown colormap {name!r}; any matplotlib colormap works, e.g. jet, turbo, inferno"
        ) from None
    return (colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def colormap_table(name: str, device: torch.device | str = "cpu") -> torch.Tensor:
    """A matplotlib colormap as a (256, 3) uint8 lookup table on `device`."""
    return torch.from_numpy(_colormap_table(name)).to(device)


def colorize(maps: torch.Tensor, colormap: str = "jet") -> torch.Tensor:
    """Maps (..., H, W) in [0, 1] -> RGB (..., 3, H, W) uint8 through a lookup table, on the maps' device."""
    table = colormap_table(colormap, maps.device)
    index = maps.float().mul(255.0).add_(0.5).clamp_(0, 255).int()
    return table.index_select(0, index.flatten()).view(*index.shape, 3).movedim(-1, -3)


def overlay(
    photo: torch.Tensor,
    maps: torch.Tensor,
    inside: torch.Tensor,
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
) -> torch.Tensor:
    """Alpha-blend the coloured map onto the photo (3, H, W) uint8, only where the model looked."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    out = photo.clone()
    region = _bounds(inside)
    if region is None:
        return out
    rows, columns = region  # only the box is blended: the rest of the photo is copied as it is
    part = photo[:, rows, columns]
    heat = colorize(maps[rows, columns], colormap)
    blended = torch.lerp(part.float(), heat.float(), alpha).round_().to(torch.uint8)
    out[:, rows, columns] = torch.where(inside[rows, columns], blended, part)
    return out


def _bounds(inside: torch.Tensor) -> tuple[slice, slice] | None:
    """The bounding rows and columns of a mask, or None when it is empty."""
    rows, columns = inside.any(1).nonzero(), inside.any(0).nonzero()
    if len(rows) == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def classic(photo: torch.Tensor, maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The tutorial's picture: photo + 0.4 x JET heat, rescaled so the brightest value is 255."""
    heat = colorize(maps, "jet").float() * inside
    summed = photo.float() + 0.4 * heat
    return (summed / summed.amax().clamp_min(1.0) * 255.0).round().to(torch.uint8)


def heatmap(maps: torch.Tensor, inside: torch.Tensor, *, colormap: str = "jet") -> torch.Tensor:
    """The coloured map alone at the photo's size; gray where the model saw nothing."""
    heat = colorize(maps, colormap)
    return torch.where(inside, heat, torch.full_like(heat, OUTSIDE_GRAY))


def panel(
    photo: torch.Tensor,
    maps: torch.Tensor | None,
    inside: torch.Tensor | None,
    title: str,
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
    columns: list[tuple[str, torch.Tensor]] | None = None,
) -> np.ndarray:
    """Photo | heatmap | overlay with a title and a colour bar, as an RGB array (H, W, 3).

    `columns` replaces the heatmap/overlay pair with labelled pictures, e.g. one overlay per method;
    they are laid out at most four to a row.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if columns is None:
        if maps is None or inside is None:
            raise ValueError("panel needs maps and inside, or columns")
        columns = [
            ("heatmap", heatmap(maps, inside, colormap=colormap)),
            ("overlay", overlay(photo, maps, inside, colormap=colormap, alpha=alpha)),
        ]
    pictures = [("photo", photo), *columns]
    per_row = min(4, len(pictures))
    rows = -(-len(pictures) // per_row)
    height, width = photo.shape[-2:]
    figure = Figure(
        figsize=(3.2 * width / height * per_row + 0.8, 3.2 * rows + 0.5), dpi=110, layout="constrained"
    )
    axes = figure.subplots(rows, per_row, squeeze=False).flatten()
    for axis in axes:
        axis.axis("off")
    for axis, (label, picture) in zip(axes, pictures):
        axis.imshow(picture.permute(1, 2, 0).cpu().numpy())
        axis.set_title(label, fontsize=9)
    mappable = matplotlib.cm.ScalarMappable(cmap=colormap, norm=matplotlib.colors.Normalize(0, 1))
    figure.colorbar(mappable, ax=list(axes), fraction=0.02, pad=0.01, label="relevance")
    figure.suptitle(title, fontsize=11)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def draw(
    photo: torch.Tensor,
    maps: torch.Tensor,
    inside: torch.Tensor,
    *,
    style: str = "overlay",
    colormap: str = "jet",
    alpha: float = 0.5,
    title: str = "",
) -> torch.Tensor | np.ndarray:
    """One picture in a named style from a photo (3, H, W) uint8 and its map (H, W) in [0, 1]."""
    if style == "overlay":
        return overlay(photo, maps, inside, colormap=colormap, alpha=alpha)
    if style == "classic":
        return classic(photo, maps, inside)
    if style == "heatmap":
        return heatmap(maps, inside, colormap=colormap)
    if style == "panel":
        return panel(photo, maps, inside, title, colormap=colormap, alpha=alpha)
    raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")


def show_on_photo(
    photo: Image.Image | torch.Tensor, raw: torch.Tensor, box: CropBox, **style
) -> torch.Tensor | np.ndarray:
    """Draw a map (h, w) that covers `box` onto the full-resolution photo; `style` as in :func:`draw`.

    >>> picture = show_on_photo(photo, result.raw[0], loaded.preprocess.crop_box(photo.size))
    """
    if isinstance(photo, Image.Image):
        photo = pil_to_tensor(photo)
    photo = photo.to(raw.device)
    # normalized at the map's own resolution (as the classic recipe does), then resampled
    on_photo, inside = to_photo(normalize(raw[None])[0], box, (photo.shape[-1], photo.shape[-2]))
    return draw(photo, on_photo[0], inside, **style)


def save_image(image: torch.Tensor | np.ndarray, path: str | os.PathLike, quality: int = 92) -> Path:
    """Write an RGB image as PNG or JPEG by the path's suffix, atomically.

    JPEG encodes a 12-megapixel overlay about 20x faster than PNG (zlib is the cost even at its
    fastest level), so folder runs of large photos can choose it with ``--format jpg``.
    """
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        if isinstance(image, torch.Tensor):
            image = image.permute(1, 2, 0).cpu().numpy()
        with atomic_open(path) as stream:
            Image.fromarray(np.ascontiguousarray(image)).save(stream, format="JPEG", quality=quality)
        return Path(path)
    return save_png(image, path)


def save_png(image: torch.Tensor | np.ndarray, path: str | os.PathLike, compress_level: int = 1) -> Path:
    """Write an RGB image ((3, H, W) tensor or (H, W, 3) array) atomically: never a half-written file."""
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).cpu().numpy()
    with atomic_open(path) as stream:
        Image.fromarray(np.ascontiguousarray(image)).save(stream, format="PNG", compress_level=compress_level)
    return Path(path)
