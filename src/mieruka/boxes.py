"""Ground truth for the localization metrics: boxes from a small JSON or CSV file, masks from PNG files.

Boxes are in the ORIGINAL photo's pixel coordinates, upright as :func:`mieruka.images.load_image`
shows it (EXIF rotation applied), corners (x0, y0, x1, y1), x to the right, y down. Three layouts are
accepted:

- JSON, photo name -> its boxes: ``{"cat.jpg": [[x0, y0, x1, y1], ...], ...}``, or -> an object
  ``{"boxes": [[x0, y0, x1, y1], ...], "mask": "masks/cat.png"}`` (either key may be left out; a
  mask's path is relative to the JSON file's folder)
- COCO-style JSON: ``{"images": [{"id": 1, "file_name": "cat.jpg"}, ...],
  "annotations": [{"image_id": 1, "bbox": [x, y, width, height]}, ...]}``
- CSV with a header ``photo,x0,y0,x1,y1`` and one box a row.

A box up to :data:`EDGE_TOLERANCE` (1 pixel) past the photo's edge is clipped to it: COCO's float
widths and heights routinely run a fraction of a pixel over. A box further out, or an empty one
(x1 <= x0 or y1 <= y0), is an error for its photo only.

Masks are PNG files of the ORIGINAL photo's size (upright, as above), nonzero = object: any colour
band, not alpha; a palette image's index. A folder of them (``--masks DIR``) holds one per photo at
the photo's path with ``.png`` for its suffix: ``photos/a/cat.jpg`` found in ``photos`` -> ``DIR/a/cat.png``.
A mask of another size is an error for its photo only. A photo with a mask is scored on its mask,
otherwise on its boxes; a photo with neither scores NaN.

A photo is named as the CLI finds it: its path relative to the folder given (``a/cat.jpg``), or its
bare name when given directly. A name that is no photo's so named may be the end of one photo's path:
``cat.jpg`` names ``photos/a/cat.jpg``, and ``x/cat.jpg`` tells ``x/cat.jpg`` from ``y/cat.jpg`` when
the folders ``x`` and ``y`` are given together. A name that fits two photos is an error for both,
never a share; a name that fits none is left out with a warning.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING

from .errors import MierukaError

if TYPE_CHECKING:
    import torch

Box = tuple[float, float, float, float]

EDGE_TOLERANCE = 1.0  # pixels a box may run past the photo's edge and be clipped to it


NOT_GIVEN = "not among the photos given"  # a ground-truth name that fits no photo: the run exits 2


class BoxesError(MierukaError):
    """A boxes file or mask that cannot be read, or ground truth that does not fit its photo."""


@dataclass(frozen=True)
class Truth:
    """One photo's ground truth as the files give it: boxes, a mask file, or why it cannot be used.

    `named` says where the boxes came from and `photo` which photo they are for, for messages."""

    boxes: tuple[Box, ...] = ()
    mask: Path | None = None
    named: str = ""  # --boxes boxes.json: cat.jpg
    photo: str = ""  # photos/cat.jpg
    error: str | None = None


def read_boxes(path: str | os.PathLike) -> dict[str, list[Box]]:
    """Photo name -> its boxes (x0, y0, x1, y1) from a JSON, COCO-style JSON or CSV file.

    >>> read_boxes("boxes.json")  # doctest: +SKIP
    {'cat.jpg': [(12.0, 30.0, 180.0, 200.0)]}
    """
    return {name: boxes for name, (boxes, _) in _read(Path(path)).items()}


def check_boxes(boxes: Iterable[Box], size: tuple[int, int], name: str) -> list[Box]:
    """The boxes of the photo `name` of (width, height) `size`, clipped to it when no more than
    :data:`EDGE_TOLERANCE` past its edge; raise if one is empty or further out."""
    width, height = size
    fitted = []
    for x0, y0, x1, y1 in boxes:
        if not (x1 > x0 and y1 > y0):
            raise BoxesError(
                f"{name}: box {[x0, y0, x1, y1]} is empty (x1 <= x0 or y1 <= y0): give corners "
                "[x0, y0, x1, y1] (COCO's [x, y, width, height] only in a COCO-style file)"
            )
        slack = EDGE_TOLERANCE
        if x0 < -slack or y0 < -slack or x1 > width + slack or y1 > height + slack:
            raise BoxesError(
                f"{name}: box {[x0, y0, x1, y1]} lies outside the {width}x{height} photo "
                f"(more than {slack:g} px past its edge): fix the box or remove it"
            )
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
        if not (box[2] > box[0] and box[3] > box[1]):
            raise BoxesError(
                f"{name}: box {[x0, y0, x1, y1]} lies outside the {width}x{height} photo: "
                "fix the box or remove it"
            )
        fitted.append(box)
    return fitted


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A mask file as (H, W) bool, nonzero = object, upright as its EXIF orientation says; raise if it
    cannot be read or, with `size`, is not (width, height) (checked before its pixels are decoded)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise BoxesError(f"{path}: no such mask file")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                width, height = height, width
            if size is not None and (width, height) != tuple(size):
                raise BoxesError(
                    f"{path}: the mask is {width}x{height} but its photo is {size[0]}x{size[1]}: "
                    "a mask covers the original photo pixel for pixel"
                )
            image = ImageOps.exif_transpose(image)
            bands = [i for i, band in enumerate(image.getbands()) if band != "A"]
            values = np.asarray(image)
    except BoxesError:
        raise
    except Exception as error:  # whatever a decoder throws, said in one line
        raise BoxesError(f"{path}: cannot read this mask ({type(error).__name__}: {error})") from None
    if values.ndim == 3:
        values = values[..., bands or slice(None)]
        return torch.from_numpy((values != 0).any(-1))
    return torch.from_numpy(values != 0)


def photo_truth(truth: Truth, size: tuple[int, int]) -> list[Box] | torch.Tensor:
    """What a photo of (width, height) `size` is scored on: its mask (H, W) bool if it has one, else
    its boxes clipped to it. Raises :class:`BoxesError` naming the file and photo when they do not fit."""
    if truth.error is not None:
        raise BoxesError(truth.error)
    if truth.mask is not None:
        try:
            return read_mask(truth.mask, size)
        except BoxesError as error:
            raise BoxesError(f"{truth.photo}: {error}" if truth.photo else str(error)) from None
    return check_boxes(truth.boxes, size, truth.named)


def ground_truth(
    photos: Sequence[tuple[Path, PurePath]],
    boxes: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
) -> tuple[list[Truth | None], list[str]]:
    """Each photo's ground truth (None: none given) from a boxes file and a folder of masks, as the
    CLI's ``--boxes`` and ``--masks`` name them, and warnings about names that fit no photo.

    `photos` are (path as found, place) as :func:`mieruka.images.find_images_relative` gives them.
    A file that cannot be read raises; a name that fits two photos is an error in both photos' Truth.
    """
    found: list[dict] = [{} for _ in photos]
    warnings = []
    if boxes is not None:
        flag = f"--boxes {boxes}"
        entries = _read(Path(boxes))
        chosen, errors, unknown = match_names(list(entries), photos, flag)
        for index, name in chosen.items():
            entry_boxes, mask = entries[name]
            found[index].update(boxes=tuple(entry_boxes), named=f"{flag}: {name}")
            if mask is not None:
                found[index]["mask"] = mask
        for index, error in errors.items():
            found[index]["error"] = error
        if unknown:
            warnings.append(f"{flag} names {_some(unknown)}, {NOT_GIVEN}: left out")
    if masks is not None:
        flag = f"--masks {masks}"
        folder = Path(masks)
        if not folder.is_dir():
            raise BoxesError(f"{flag}: no such folder (a folder of PNG masks named like the photos)")
        files = {
            p.relative_to(folder).as_posix(): p
            for p in sorted(folder.rglob("*"))
            if p.suffix.lower() == ".png" and p.is_file()
        }
        chosen, errors, unknown = match_names(list(files), photos, flag, stem=True)
        for index, name in chosen.items():
            if "mask" in found[index]:
                found[index]["error"] = (
                    f"{photos[index][0]} has a mask in --boxes and {files[name]} in {flag}: keep one"
                )
            found[index]["mask"] = files[name]
        for index, error in errors.items():
            found[index]["error"] = error
        if unknown:
            warnings.append(f"{flag} holds {_some(unknown, 'mask')} of no photo given: left out")
    bare = [place.as_posix() for (_, place), entry in zip(photos, found) if not entry]
    if bare and (boxes is not None or masks is not None):
        warnings.append(f"{_some(bare)} without ground truth: not scored on localization")
    return [
        Truth(**entry, photo=str(path)) if entry else None for (path, _), entry in zip(photos, found)
    ], warnings


def match_names(
    names: Sequence[str], photos: Sequence[tuple[Path, PurePath]], flag: str, *, stem: bool = False
) -> tuple[dict[int, str], dict[int, str], list[str]]:
    """Each name given to the one photo it names (see the module's docstring; `stem`: compare without
    the file suffix, as masks are named). Returns photo index -> its name, photo index -> why its name
    is ambiguous (one line starting with `flag`), and the names that fit no photo."""
    by_place: dict[tuple[str, ...], list[int]] = {}
    by_last: dict[str, list[int]] = {}
    for index, (path, place) in enumerate(photos):
        by_place.setdefault(_parts(place, stem), []).append(index)
        by_last.setdefault(_parts(path, stem)[-1], []).append(index)
    chosen: dict[int, list[str]] = {}
    errors: dict[int, str] = {}
    unknown = []
    for name in names:
        parts = _parts(PurePosixPath(name.replace("\\", "/")), stem)
        ends = by_last.get(parts[-1], []) if parts else []
        hits = by_place.get(parts) or [i for i in ends if _parts(photos[i][0], stem)[-len(parts) :] == parts]
        if not hits:
            unknown.append(name)
        elif len(hits) > 1:
            first, second = (photos[i][0] for i in hits[:2])
            for index in hits:
                errors[index] = (
                    f"{flag}: {name} names both {first} and {second}: name each photo by a longer path, "
                    f"such as {_distinct(first, second)}"
                )
        else:
            chosen.setdefault(hits[0], []).append(name)
    for index, named in chosen.items():
        if len(named) > 1 and index not in errors:
            errors[index] = f"{flag}: both {named[0]} and {named[1]} name {photos[index][0]}: keep one"
    return {i: named[0] for i, named in chosen.items() if i not in errors}, errors, unknown


def _parts(path: PurePath, stem: bool) -> tuple[str, ...]:
    parts = path.parts
    if stem and parts:
        parts = (*parts[:-1], PurePosixPath(parts[-1]).stem)
    return parts


def _distinct(path: PurePath, other: PurePath) -> str:
    """The shortest end of `path` that `other` does not end with."""
    for count in range(1, len(path.parts) + 1):
        if path.parts[-count:] != other.parts[-count:]:
            return PurePosixPath(*path.parts[-count:]).as_posix()
    return path.as_posix()


def _some(names: Sequence[str], what: str = "photo") -> str:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} {what}{'s' if len(names) > 1 else ''} ({shown})"


# ---- the file formats ------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, tuple[list[Box], Path | None]]:
    """Photo name -> (its boxes, its mask file or None)."""
    if path.is_dir():
        raise BoxesError(f"{path}: is a folder, expected a boxes file (JSON or CSV)")
    if not path.is_file():
        raise BoxesError(f"{path}: no such boxes file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as Excel writes, is not data
    except (OSError, UnicodeDecodeError) as error:
        raise BoxesError(f"{path}: cannot read this boxes file ({error})") from None
    if path.suffix.lower() == ".csv":
        return {name: (boxes, None) for name, boxes in _from_csv(path, text).items()}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BoxesError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return {name: (boxes, None) for name, boxes in _from_coco(path, data).items()}
    if not isinstance(data, dict):
        raise BoxesError(f"{path}: expected an object of photo name -> boxes, got {type(data).__name__}")
    return {str(name): _entry(path, name, entry) for name, entry in data.items()}


def _entry(path: Path, name: object, entry: object) -> tuple[list[Box], Path | None]:
    if not isinstance(entry, dict):
        return _boxes(path, name, entry), None
    if not entry.keys() <= {"boxes", "mask"}:
        extra = sorted(set(entry) - {"boxes", "mask"})
        raise BoxesError(f'{path}: the entry of {name} has {extra}: expected "boxes" and/or "mask"')
    mask = entry.get("mask")
    if mask is not None and not isinstance(mask, str):
        raise BoxesError(f"{path}: the mask of {name} is {mask!r}, expected a file path")
    return _boxes(path, name, entry.get("boxes", [])), (path.parent / mask if mask else None)


def _boxes(path: Path, name: object, boxes: object) -> list[Box]:
    if not isinstance(boxes, list):
        raise BoxesError(f"{path}: the boxes of {name} are {boxes!r}, expected a list of [x0, y0, x1, y1]")
    return [_box(path, name, box) for box in boxes]


def _box(path: Path, name: object, box: object) -> Box:
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise BoxesError(f"{path}: the box {box!r} of {name} is not four numbers [x0, y0, x1, y1]")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise BoxesError(f"{path}: the box {box!r} of {name} is not four numbers") from None
    return x0, y0, x1, y1


def _from_coco(path: Path, data: dict) -> dict[str, list[Box]]:
    names = {image.get("id"): str(image.get("file_name")) for image in data["images"]}
    boxes: dict[str, list[Box]] = {name: [] for name in names.values()}
    for annotation in data["annotations"]:
        name = names.get(annotation.get("image_id"))
        if name is None:
            raise BoxesError(
                f"{path}: an annotation names image_id {annotation.get('image_id')!r}, not in images"
            )
        x, y, w, h = _box(path, name, annotation.get("bbox"))
        boxes[name].append((x, y, x + w, y + h))
    return boxes


def _from_csv(path: Path, text: str) -> dict[str, list[Box]]:
    rows = list(csv.DictReader(text.splitlines()))
    needed = {"photo", "x0", "y0", "x1", "y1"}
    if not rows or not needed <= set(rows[0]):
        raise BoxesError(f"{path}: expected a CSV header photo,x0,y0,x1,y1")
    boxes: dict[str, list[Box]] = {}
    for row in rows:
        box = _box(path, row["photo"], [row["x0"], row["y0"], row["x1"], row["y1"]])
        boxes.setdefault(row["photo"], []).append(box)
    return boxes
