"""The small pictures a report shows, drawn once: a thumbnail of each picture, the photo at a viewing
size, and each map's heat layer alone, to be laid over that photo at any opacity in the browser.

`mieruka explain` draws them while it writes its pictures (the photo and the maps are in memory then);
`mieruka report` makes the thumbnails of a run that did not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .._io import atomic_open

if TYPE_CHECKING:  # torch only where a map is drawn: `mieruka report` runs without it
    import torch

    from ..images import CropBox

FOLDER = "report"  # beside results.jsonl: everything the report needs besides the run's own pictures
THUMBS, PHOTOS, HEAT = f"{FOLDER}/thumbs", f"{FOLDER}/photos", f"{FOLDER}/heat"
THUMB_PIXELS = 240  # long side of a grid thumbnail (shown at about 200 CSS pixels)
VIEW_PIXELS = 512  # long side of the photo in the large view
QUALITY = 85


def thumbnail(picture: Image.Image, longest: int = THUMB_PIXELS) -> Image.Image:
    """A copy at most `longest` pixels on its long side (Pillow's reducing resize: fast on big photos)."""
    small = picture.convert("RGB")
    small.thumbnail((longest, longest), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return small


def view_photo(photo: Image.Image, box: CropBox, longest: int = VIEW_PIXELS) -> tuple[Image.Image, CropBox]:
    """The photo at most `longest` pixels on its long side, and `box` in its pixels."""
    from ..render import shrink  # torch: only where a map is drawn

    return shrink(photo, box, longest)


def has_heat_layer(size: tuple[int, int], box: CropBox, longest: int = VIEW_PIXELS) -> bool:
    """Whether a photo of (width, height) `size` gets a heat layer (:func:`heat_layer`) over its view:
    a strip photo's crop may cover no whole pixel of it."""
    from ..maps import box_pixels
    from ..render import shrunk

    view_size, view_box = shrunk(size, box, longest)
    return box_pixels(view_box, view_size) is not None


def heat_layer(raw: torch.Tensor, box: CropBox, size: tuple[int, int], colormap: str) -> Image.Image | None:
    """The coloured map (h, w) over the pixels of `box` in a photo of (width, height) `size`, cut to
    that box: laid over the photo's box at opacity a, it gives the overlay drawn with ``alpha=a``.

    None when the box holds no pixel of the photo.
    """
    from .. import render
    from ..maps import box_pixels, normalize

    span = box_pixels(box, size)
    if span is None:
        return None
    rows, columns = span
    maps = normalize(raw.detach().float().cpu()[None])[0][0]
    whole = render.heatmap_image(size, maps, box, colormap=colormap)
    return whole.crop((columns.start, rows.start, columns.stop, rows.stop))


def save_jpeg(picture: Image.Image, path: str | os.PathLike, quality: int = QUALITY) -> Path:
    """Write a JPEG atomically (thumbnails, photos and heat layers are smooth: JPEG is small and fast)."""
    with atomic_open(path) as stream:
        picture.convert("RGB").save(stream, format="JPEG", quality=quality)
    return Path(path)
