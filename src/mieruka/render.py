"""Turn maps on the photo into pictures: colormap lookup on tensors, overlays, panels, PNG files."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import fonts, panels
from ._io import atomic_open
from .images import CropBox, pil_to_tensor
from .maps import box_pixels, is_flat, no_place, normalize, to_photo

STYLES = ("overlay", "classic", "heatmap", "panel")
LABELLED = ("overlay", "classic")  # styles that show their title in a corner; heatmaps stay bare
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
    photo: torch.Tensor | Image.Image,
    maps: torch.Tensor | None,
    inside: torch.Tensor | None,
    title: str,
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
    columns: list[tuple[str, torch.Tensor | Image.Image]] | None = None,
    font: str | os.PathLike | None = None,
) -> np.ndarray:
    """Photo | heatmap | overlay with a title and a colour bar, as an RGB array (H, W, 3).

    `columns` replaces the heatmap/overlay pair with labelled pictures, e.g. one overlay per method;
    they are laid out at most four to a row. Text in any script is drawn: `font` (a font file) first,
    then the fonts of :mod:`mieruka.fonts` for the characters it lacks. Sizes follow the photo's
    within readable bounds (:func:`mieruka.panels.panel_layout`): pictures 256 to 512 pixels on their
    long side, letters at least 11 pixels high, a long title wrapped rather than cut.
    """
    if columns is None:
        if maps is None or inside is None:
            raise ValueError("panel needs maps and inside, or columns")
        columns = [
            ("heatmap", heatmap(maps, inside, colormap=colormap)),
            ("overlay", overlay(photo, maps, inside, colormap=colormap, alpha=alpha)),
        ]
    pictures = [("photo", to_image(photo)), *((label, to_image(picture)) for label, picture in columns)]
    return np.array(panels.compose(pictures, title, _colormap_table(colormap), font=font))


def draw(
    photo: torch.Tensor,
    maps: torch.Tensor,
    inside: torch.Tensor,
    *,
    style: str = "overlay",
    colormap: str = "jet",
    alpha: float = 0.5,
    title: str = "",
    font: str | os.PathLike | None = None,
) -> torch.Tensor | np.ndarray:
    """One picture in a named style from a photo (3, H, W) uint8 and its map (H, W) in [0, 1]."""
    if style == "overlay":
        return overlay(photo, maps, inside, colormap=colormap, alpha=alpha)
    if style == "classic":
        return classic(photo, maps, inside)
    if style == "heatmap":
        return heatmap(maps, inside, colormap=colormap)
    if style == "panel":
        return panel(photo, maps, inside, title, colormap=colormap, alpha=alpha, font=font)
    raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")


def _one_map(raw: torch.Tensor | np.ndarray) -> torch.Tensor:
    """`raw` (a tensor or a saved NumPy map) as one (h, w) map, detached: leading dimensions of size 1
    go; anything else is refused in one line that names the shape given.

    >>> _one_map(torch.zeros(1, 1, 7, 7)).shape
    torch.Size([7, 7])
    """
    given = tuple(raw.shape)
    raw = torch.as_tensor(raw).detach()
    while raw.dim() > 2 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.dim() != 2 or raw.numel() == 0:
        raise ValueError(
            f"show_on_photo draws one map (h, w), got one of shape {given}: pass one map, such as "
            "result.raw[i] (result.raw[i, k] for image i's k-th target when there are several)"
        )
    return raw


def show_on_photo(
    photo: Image.Image | torch.Tensor | np.ndarray,
    raw: torch.Tensor | np.ndarray,
    box: CropBox | None = None,
    *,
    style: str = "overlay",
    colormap: str = "jet",
    alpha: float = 0.5,
    title: str = "",
    label: bool | None = None,
    font: str | os.PathLike | None = None,
) -> Image.Image:
    """Draw a raw map (h, w) that covers `box` onto the full-resolution photo, as a PIL image.

    The map is normalized by its maximum at its own resolution (as the classic recipe does), then
    resampled onto the photo's pixels. On the CPU, overlays and heatmaps are drawn by Pillow's C
    kernels (about 3x faster than tensor code for a 12-megapixel photo); on other devices with tensors.
    A panel shows its pictures at most 512 pixels on their long side, so its photo is shrunk first.

    The overlay and classic styles show `title` (e.g. ``tabby  (p = 0.731)``) in the top-left corner
    unless `label` is False; the panel uses it as its heading. `font` is a font file for that text.

    `photo` is a PIL image of any mode (read as :func:`mieruka.load_image` reads files), a uint8 tensor
    (3, H, W) or array (H, W, 3), or a float one in [0, 1]; `box` None: the map covers the whole photo.

    >>> picture = show_on_photo(photo, result.raw[0], loaded.preprocess.crop_box(photo.size))
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    photo = _one_photo(photo)
    if box is None:
        width, height = photo.size if isinstance(photo, Image.Image) else (photo.shape[-1], photo.shape[-2])
        box = CropBox(0.0, 0.0, float(width), float(height))
    raw = _one_map(raw)
    maps = normalize(raw[None])[0][0]
    if maps.device.type == "cpu" and style in ("overlay", "heatmap") and _upsamples(maps, box):
        photo = to_image(photo)
        if style == "heatmap":
            return heatmap_image(photo.size, maps, box, colormap=colormap)
        picture = overlay_image(photo, maps, box, colormap=colormap, alpha=alpha)
        if style in LABELLED and title and label is not False:
            _label_corner(picture, title, font)
        return picture
    return to_image(
        draw_on_device(
            photo, raw, box, style=style, colormap=colormap, alpha=alpha, title=title, label=label, font=font
        )
    )


def _one_photo(photo: Image.Image | torch.Tensor | np.ndarray) -> Image.Image | torch.Tensor:
    """A photo as the drawing takes it: an RGB PIL image, or a uint8 tensor (3, H, W); refused in one
    line where it is no photo (a normalized model input, a batch)."""
    from .images import to_rgb

    if isinstance(photo, Image.Image):
        return photo if photo.mode == "RGB" else to_rgb(photo)
    if isinstance(photo, np.ndarray):
        photo = torch.from_numpy(np.array(photo))  # a copy: the array may be read-only (a PIL image's)
        photo = photo.permute(2, 0, 1) if photo.dim() == 3 and photo.shape[-1] in (1, 3) else photo
    if not isinstance(photo, torch.Tensor):
        raise TypeError(f"photo: expected a PIL image, a tensor or an array, got {type(photo).__name__}")
    photo = photo.detach()
    while photo.dim() > 3 and photo.shape[0] == 1:  # a batch of one
        photo = photo[0]
    if photo.dim() == 2:
        photo = photo[None]
    if photo.dim() != 3 or photo.shape[0] not in (1, 3):
        raise ValueError(
            f"photo: expected one picture (3, H, W) or (H, W, 3), got shape {tuple(photo.shape)}"
        )
    if photo.is_floating_point():
        if photo.numel() and (photo.amin() < 0 or photo.amax() > 1):
            raise ValueError(
                "photo: a float tensor must hold values in [0, 1]; this one is outside (a normalized model "
                "input?): pass the photo itself (PIL image, or uint8 tensor from mieruka.images.pil_to_tensor)"
            )
        photo = (photo * 255).round().to(torch.uint8)
    elif photo.dtype != torch.uint8:
        raise ValueError(f"photo: expected uint8 or float values, got {photo.dtype}")
    return photo.expand(3, -1, -1).contiguous() if photo.shape[0] == 1 else photo


def draw_on_device(
    photo: Image.Image | torch.Tensor,
    raw: torch.Tensor,
    box: CropBox,
    *,
    style: str = "overlay",
    colormap: str = "jet",
    alpha: float = 0.5,
    title: str = "",
    label: bool | None = None,
    font: str | os.PathLike | None = None,
) -> torch.Tensor:
    """:func:`show_on_photo` as a (3, H, W) uint8 tensor on the map's device, drawn with tensors there.

    On a GPU the picture then stays there until it is written (:func:`save_image` encodes a JPEG on
    the device); only the corner with the title goes to the CPU and back, for Pillow's text.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    raw = _one_map(raw)
    maps = normalize(raw[None])[0][0]
    if style == "panel":
        photo, box = shrink(to_image(photo), box, PANEL_PIXELS)
    if isinstance(photo, Image.Image):
        photo = pil_to_tensor(photo)
    photo = photo.to(maps.device)
    on_photo, inside = to_photo(maps[None], box, (photo.shape[-1], photo.shape[-2]))
    drawn = draw(
        photo, on_photo[0], inside, style=style, colormap=colormap, alpha=alpha, title=title, font=font
    )
    drawn = torch.as_tensor(drawn, device=maps.device)
    if drawn.shape[0] != 3:  # a panel comes back as an (H, W, 3) array
        drawn = drawn.permute(2, 0, 1)
    if style in LABELLED and title and label is not False:
        _label_corner_tensor(drawn, title, font)
    return drawn


def methods_panel(
    photo: Image.Image | torch.Tensor,
    raws: dict[str, torch.Tensor],
    box: CropBox,
    title: str,
    *,
    colormap: str = "jet",
    alpha: float = 0.5,
    font: str | os.PathLike | None = None,
) -> Image.Image:
    """photo | method 1 | method 2 | ... as labelled overlays in one figure, from raw maps (h, w) by method.

    A column whose map shows no place (one colour when drawn) says so under its method's name.
    """
    small, small_box = shrink(to_image(photo), box, PANEL_PIXELS)
    columns = [
        (_column_name(method, raw), show_on_photo(small, raw, small_box, colormap=colormap, alpha=alpha))
        for method, raw in raws.items()
    ]
    return to_image(panel(small, None, None, title, colormap=colormap, columns=columns, font=font))


def _column_name(method: str, raw: torch.Tensor) -> str:
    raw = _one_map(raw)
    note = no_place(bool(normalize(raw[None])[1].item()), bool(is_flat(raw).item()))
    return f"{method} ({note})" if note else method


def _label_corner(picture: Image.Image, text: str, font: str | os.PathLike | None) -> None:
    """Draw `text` in white on a translucent dark box in the top-left corner, in place.

    The letters are about 1/22 of the photo's short side (14 px at 300 px, 136 px at 3000 px), smaller
    when the text would not fit across; only the corner is converted and composited.
    """
    placed = _corner_label(picture.size, text, font)
    if placed is None:
        return
    (left, top), layer = placed
    corner = picture.crop((left, top, left + layer.width, top + layer.height)).convert("RGBA")
    picture.paste(Image.alpha_composite(corner, layer).convert("RGB"), (left, top))


def _label_corner_tensor(picture: torch.Tensor, text: str, font: str | os.PathLike | None) -> None:
    """:func:`_label_corner` on a (3, H, W) uint8 tensor, in place: only the corner leaves its device."""
    placed = _corner_label((picture.shape[-1], picture.shape[-2]), text, font)
    if placed is None:
        return
    (left, top), layer = placed
    rows, columns = slice(top, top + layer.height), slice(left, left + layer.width)
    corner = to_image(picture[:, rows, columns]).convert("RGBA")
    labelled = Image.alpha_composite(corner, layer).convert("RGB")
    picture[:, rows, columns] = pil_to_tensor(labelled).to(picture.device)


def _corner_label(
    size: tuple[int, int], text: str, font: str | os.PathLike | None
) -> tuple[tuple[int, int], Image.Image] | None:
    """Where the title goes on a picture of (width, height) `size`, and the RGBA layer to lay there."""
    from PIL import ImageDraw, ImageFont

    choice = fonts.choose(text, font)
    fonts.warn_missing(choice, stacklevel=5)
    text = choice.drawable(text).replace("\n", " ")
    width_of, height_of = size
    size = max(12, round(min(width_of, height_of) / 22))
    pieces = list(fonts.runs(text, choice))
    width = sum(ImageFont.truetype(str(path), size).getlength(piece) for piece, path in pieces)
    room = width_of - size  # a margin of size / 2 on either side
    if width > room > 0:
        size = max(6, int(size * room / width))
    faces = [(piece, ImageFont.truetype(str(path), size)) for piece, path in pieces]
    width = sum(face.getlength(piece) for piece, face in faces)
    ascent = max(face.getmetrics()[0] for _, face in faces)
    descent = max(face.getmetrics()[1] for _, face in faces)
    margin, padding = size // 2, max(2, round(size * 0.3))
    right = min(width_of, margin + round(width) + 2 * padding)
    bottom = min(height_of, margin + ascent + descent + 2 * padding)
    if right <= margin or bottom <= margin:
        return None
    layer = Image.new("RGBA", (right - margin, bottom - margin), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    pen.rounded_rectangle((0, 0, layer.width - 1, layer.height - 1), radius=padding, fill=(0, 0, 0, 150))
    x = padding
    for piece, face in faces:
        pen.text((x, padding + ascent), piece, font=face, fill=(255, 255, 255, 255), anchor="ls")
        x += face.getlength(piece)
    return (margin, margin), layer


# ---- the CPU path: Pillow's C kernels on the photo's own pixels ---------------------------------


def overlay_image(
    photo: Image.Image, maps: torch.Tensor, box: CropBox, *, colormap: str = "jet", alpha: float = 0.5
) -> Image.Image:
    """:func:`overlay` drawn by Pillow: a map (h, w) in [0, 1] covering `box`, blended onto an RGB photo.

    Agrees with the tensor path to one grey level; only the box is blended, the rest is the photo.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    out = photo.copy()
    heat = _heat_in_box(maps, box, photo.size, colormap)
    if heat is not None:
        picture, corner = heat
        part = photo.crop((*corner, corner[0] + picture.width, corner[1] + picture.height))
        out.paste(Image.blend(part, picture, alpha), corner)
    return out


def heatmap_image(
    size: tuple[int, int], maps: torch.Tensor, box: CropBox, *, colormap: str = "jet"
) -> Image.Image:
    """:func:`heatmap` drawn by Pillow at the photo's (width, height): gray where the model saw nothing."""
    out = Image.new("RGB", size, (OUTSIDE_GRAY,) * 3)
    heat = _heat_in_box(maps, box, size, colormap)
    if heat is not None:
        out.paste(*heat)
    return out


def _upsamples(maps: torch.Tensor, box: CropBox) -> bool:
    """Whether the box spans at least one photo pixel per map cell: Pillow then resizes as to_photo does."""
    return box.right - box.left >= maps.shape[-1] and box.bottom - box.top >= maps.shape[-2]


def _heat_in_box(
    maps: torch.Tensor, box: CropBox, photo_size: tuple[int, int], colormap: str
) -> tuple[Image.Image, tuple[int, int]] | None:
    """The coloured map on the photo pixels inside `box`, and where its top-left corner goes."""
    span = box_pixels(box, photo_size)
    if span is None:
        return None
    rows, columns = span
    cells_high, cells_wide = maps.shape[-2:]
    scale_x, scale_y = cells_wide / (box.right - box.left), cells_high / (box.bottom - box.top)
    # Edge cells repeated once around, so the source box stays inside the image and samples past the
    # outer cell centres take the edge value, as in to_photo. +0.5 rounds when Pillow truncates to 8 bits.
    padded = F.pad(maps.float()[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    source = Image.fromarray((padded * 255.0 + 0.5).numpy(), "F")
    left = (columns.start - box.left) * scale_x + 1.0
    top = (rows.start - box.top) * scale_y + 1.0
    wide, high = columns.stop - columns.start, rows.stop - rows.start
    source_box = (left, top, left + wide * scale_x, top + high * scale_y)
    index = source.resize((wide, high), Image.Resampling.BILINEAR, box=source_box).convert("L")
    index.putpalette(_colormap_table(colormap).tobytes())
    return index.convert("RGB"), (columns.start, rows.start)


# ---- detections and segmentation regions -----------------------------------------------------------

# a colour per object, bright on photos and on the jet colormap's blues
OBJECT_COLORS = (
    (255, 255, 255),
    (255, 64, 160),
    (0, 255, 255),
    (255, 200, 0),
    (140, 255, 60),
    (200, 120, 255),
)


def photo_boxes(boxes: torch.Tensor, box: CropBox, input_size: tuple[int, int]) -> torch.Tensor:
    """Boxes (..., 4) as (x0, y0, x1, y1) in the model input's pixels, (H, W) `input_size`, moved onto
    the photo that `box` of it covers (a detector's boxes, a segmentation box), in photo pixels."""
    height, width = input_size
    scale = torch.tensor(
        [(box.right - box.left) / width, (box.bottom - box.top) / height] * 2, dtype=torch.float64
    )
    shift = torch.tensor([box.left, box.top] * 2, dtype=torch.float64)
    return boxes.detach().cpu().double() * scale + shift


def draw_boxes(
    picture: Image.Image | torch.Tensor,
    boxes: torch.Tensor,
    names: list[str],
    scores: torch.Tensor | list[float] | None = None,
    *,
    colors: list[tuple[int, int, int]] | None = None,
    font: str | os.PathLike | None = None,
) -> Image.Image:
    """A copy of the picture with boxes (K, 4) (x0, y0, x1, y1, in its pixels: see :func:`photo_boxes`)
    outlined and tagged with their name and score (``dog 0.87``), one colour per box.

    >>> picture = draw_boxes(show_on_photo(photo, result.raw[0, k], crop), photo_boxes(b, crop, size), ["dog"], [0.87])
    """
    from PIL import ImageDraw, ImageFont

    out = to_image(picture).convert("RGB").copy()
    pen = ImageDraw.Draw(out)
    line = max(2, round(min(out.size) / 250))
    size = max(10, round(min(out.size) / 36))
    tags = [name if scores is None else f"{name} {float(scores[k]):.2f}" for k, name in enumerate(names)]
    choice = fonts.choose("\n".join(tags) or "-", font)
    fonts.warn_missing(choice, stacklevel=3)
    for k, (x0, y0, x1, y1) in enumerate(torch.as_tensor(boxes).reshape(-1, 4).tolist()):
        color = (colors or OBJECT_COLORS)[k % len(colors or OBJECT_COLORS)]
        pen.rectangle((x0, y0, x1, y1), outline=color, width=line)
        if k >= len(tags) or not tags[k]:
            continue
        pieces = [
            (piece, ImageFont.truetype(str(path), size))
            for piece, path in fonts.runs(choice.drawable(tags[k]), choice)
        ]
        wide = sum(face.getlength(piece) for piece, face in pieces)
        ascent = max(face.getmetrics()[0] for _, face in pieces)
        high = ascent + max(face.getmetrics()[1] for _, face in pieces) + 2 * line
        top = y0 - high if y0 - high >= 0 else y0  # above the box, inside it at the top edge
        left = min(max(0, x0), max(0, out.width - wide - 2 * line))
        pen.rectangle((left, top, left + wide + 2 * line, top + high), fill=color)
        x = left + line
        for piece, face in pieces:
            pen.text((x, top + line + ascent), piece, font=face, fill=(0, 0, 0), anchor="ls")
            x += face.getlength(piece)
    return out


def outline_region(
    picture: Image.Image | torch.Tensor,
    region: torch.Tensor,
    box: CropBox,
    *,
    color: tuple[int, int, int] = (255, 255, 255),
    width: int | None = None,
) -> Image.Image:
    """A copy of the picture with the border of a region (h, w) bool, given over the model input that
    covers `box` of the photo (a segmentation target's `regions[n, k]`), drawn in `color`.

    `width` is the line's width in photo pixels (default: about 1/250 of the photo's short side).
    """
    out = to_image(picture).convert("RGB")
    inside, _ = to_photo(region.float()[None], box, out.size)
    mask = inside[0] >= 0.5
    width = width or max(2, round(min(out.size) / 250))
    grown = F.max_pool2d(mask[None, None].float(), 2 * width + 1, 1, width)[0, 0] > 0
    border = grown & ~mask  # a band of `width` pixels just outside the region
    pixels = torch.from_numpy(np.array(out)).permute(2, 0, 1)
    pixels[:, border] = torch.tensor(color, dtype=torch.uint8)[:, None]
    return to_image(pixels)


def combine(maps: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """One map (h, w) in [0, 1] from K maps (K, h, w): each normalized by its own maximum, then the
    pixel-wise maximum over the valid ones, so every object shows at full strength."""
    scaled = normalize(maps)[0]
    if valid is not None:
        scaled = scaled * valid.to(scaled.device)[:, None, None]
    return scaled.amax(0) if len(scaled) else scaled.new_zeros(maps.shape[-2:])


def show_objects(
    photo: Image.Image | torch.Tensor,
    raws: torch.Tensor,
    box: CropBox,
    input_size: tuple[int, int],
    boxes: torch.Tensor,
    names: list[str],
    scores: torch.Tensor | list[float] | None = None,
    *,
    valid: torch.Tensor | None = None,
    colormap: str = "jet",
    alpha: float = 0.5,
    font: str | os.PathLike | None = None,
    title: str = "",
) -> Image.Image:
    """Every object of one image in one picture (``--style boxes``): the objects' maps (K, h, w), each
    normalized on its own and combined by their maximum, overlaid on the photo, with every box tagged;
    `title` (the method, ``[random weights]``) in the top-left corner, as an overlay's.

    `boxes` (K, 4) are in the input's pixels (a detection's `details` boxes); `valid` (K,) drops padding.
    For one object's picture pass its own map, box and name (``raws[k : k + 1]``...).

    >>> show_objects(photo, result.raw[0], crop, (H, W), boxes, result.labels[0], result.target_probs[0], valid=result.valid[0])
    """
    keep = valid.cpu() if valid is not None else torch.ones(len(raws), dtype=torch.bool)
    picture = show_on_photo(
        photo, combine(raws, valid), box, colormap=colormap, alpha=alpha, title=title, font=font
    )
    chosen = keep.nonzero().flatten().tolist()
    colors = [OBJECT_COLORS[k % len(OBJECT_COLORS)] for k in chosen]
    on_photo = photo_boxes(torch.as_tensor(boxes)[chosen], box, input_size)
    picked = None if scores is None else [float(scores[k]) for k in chosen]
    return draw_boxes(picture, on_photo, [names[k] for k in chosen], picked, colors=colors, font=font)


# ---- conversions and files -------------------------------------------------------------------------

PANEL_PIXELS = panels.SHOWN[1]  # longest side of the photo drawn in a panel: as large as it is shown


def shrink(photo: Image.Image, box: CropBox, longest: int) -> tuple[Image.Image, CropBox]:
    """A copy of the photo at most `longest` pixels on its long side, and the box in its coordinates."""
    size, small_box = shrunk(photo.size, box, longest)
    if size == photo.size:
        return photo, box
    return photo.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), small_box


def shrunk(size: tuple[int, int], box: CropBox, longest: int) -> tuple[tuple[int, int], CropBox]:
    """The (width, height) :func:`shrink` gives a photo of `size`, and `box` in its coordinates."""
    width, height = size
    scale = longest / max(size)
    if scale >= 1.0:
        return size, box
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    sx, sy = small[0] / width, small[1] / height
    return small, CropBox(box.left * sx, box.top * sy, box.right * sx, box.bottom * sy)


def to_image(picture: Image.Image | torch.Tensor | np.ndarray) -> Image.Image:
    """An RGB picture as a PIL image: from a (3, H, W) uint8 tensor (any device) or an (H, W, 3) array."""
    if isinstance(picture, Image.Image):
        return picture
    if isinstance(picture, torch.Tensor):
        picture = picture.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(picture))


def save_image(
    image: Image.Image | torch.Tensor | np.ndarray, path: str | os.PathLike, quality: int = 92
) -> Path:
    """Write an RGB picture as PNG or JPEG by the path's suffix, atomically.

    JPEG encodes a 12-megapixel overlay about 15x faster than PNG (zlib is the cost even at its
    fastest level), so folder runs of large photos can choose it with ``--format jpg``. A JPEG of a
    picture on a GPU is encoded there (:func:`encode_jpeg_on_device`).
    """
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        with atomic_open(path) as stream:
            if isinstance(image, torch.Tensor) and image.device.type == "cuda":
                stream.write(encode_jpeg_on_device(image, quality))
            else:
                to_image(image).save(stream, format="JPEG", quality=quality)
        return Path(path)
    return save_png(image, path)


def encode_jpeg_on_device(picture: torch.Tensor, quality: int = 92) -> bytes:
    """A (3, H, W) uint8 picture as JPEG bytes, encoded where it lies (nvJPEG on a GPU).

    Only the compressed file crosses to the CPU: about a twentieth of the pixels' bytes, and the
    encoding (the CPU's largest cost per picture in a folder run with --format jpg) is done by the GPU.
    """
    import warnings

    from torchvision.io import encode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; the encoder is the same
        warnings.simplefilter("ignore")
        encoded = encode_jpeg(picture.contiguous(), quality=quality)
    return encoded.cpu().numpy().tobytes()


def save_png(
    image: Image.Image | torch.Tensor | np.ndarray, path: str | os.PathLike, compress_level: int = 1
) -> Path:
    """Write an RGB picture (PIL image, (3, H, W) tensor or (H, W, 3) array) atomically: never half a file."""
    with atomic_open(path) as stream:
        to_image(image).save(stream, format="PNG", compress_level=compress_level)
    return Path(path)
