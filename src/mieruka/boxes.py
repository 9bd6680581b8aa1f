"""Ground-truth boxes for the localization metrics, read from a small JSON or CSV file.

Boxes are in the ORIGINAL photo's pixel coordinates, upright as :func:`mieruka.images.load_image`
shows it (EXIF rotation applied), corners (x0, y0, x1, y1), x to the right, y down. Three layouts are
accepted:

- JSON, photo name -> its boxes: ``{"cat.jpg": [[x0, y0, x1, y1], ...], ...}``
- COCO-style JSON: ``{"images": [{"id": 1, "file_name": "cat.jpg"}, ...],
  "annotations": [{"image_id": 1, "bbox": [x, y, width, height]}, ...]}``
- CSV with a header ``photo,x0,y0,x1,y1`` and one box a row.

A photo is named as the CLI finds it: its path relative to the folder given (``a/cat.jpg``), or its
bare name when given directly.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .errors import MierukaError

Box = tuple[float, float, float, float]


class BoxesError(MierukaError):
    """A boxes file that cannot be read, or boxes that do not fit their photo."""


def read_boxes(path: str | os.PathLike) -> dict[str, list[Box]]:
    """Photo name -> its boxes (x0, y0, x1, y1) from a JSON, COCO-style JSON or CSV file.

    >>> read_boxes("boxes.json")  # doctest: +SKIP
    {'cat.jpg': [(12.0, 30.0, 180.0, 200.0)]}
    """
    path = Path(path)
    if not path.is_file():
        raise BoxesError(f"{path}: no such boxes file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return _from_csv(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BoxesError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if isinstance(data, dict) and "annotations" in data and "images" in data:
        return _from_coco(path, data)
    if not isinstance(data, dict):
        raise BoxesError(f"{path}: expected an object of photo name -> boxes, got {type(data).__name__}")
    return {str(name): [_box(path, name, box) for box in boxes] for name, boxes in data.items()}


def check_boxes(boxes: list[Box], size: tuple[int, int], name: str) -> None:
    """Raise if a box of the photo `name` of (width, height) `size` is empty or outside it."""
    width, height = size
    for x0, y0, x1, y1 in boxes:
        if not (x1 > x0 and y1 > y0):
            raise BoxesError(f"{name}: box {[x0, y0, x1, y1]} is empty (x1 <= x0 or y1 <= y0)")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise BoxesError(f"{name}: box {[x0, y0, x1, y1]} lies outside the {width}x{height} photo")


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
