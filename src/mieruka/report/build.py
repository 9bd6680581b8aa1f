"""Write a run's report: results.jsonl (+ run.json, + evaluate's files) -> one page, report.html.

The page holds its data, script, style and fonts; it names the run's pictures and the small pictures
under report/ by relative paths, so it opens from file:// anywhere the folder goes, with no network.
The thumbnails a run did not write are made here once (a thumbnail newer than its picture is kept).
The page is written to a temporary file and renamed: a report is never seen half-written.
"""

from __future__ import annotations

import html
import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path, PurePosixPath

from .._io import atomic_open
from ..outputs import REPORT, RESULTS, read_records
from ..runs import RUN
from . import assets, webfonts
from .data import page_data

PER_IMAGE = "per_image.jsonl"  # mieruka evaluate's files (scoreboard's names, without importing torch)
METRICS = "metrics.json"


class ReportError(ValueError):
    """A folder with no run to report on, or an evaluation that cannot be read: the message says what to do."""


def build_report(
    out_dir: str | os.PathLike,
    evaluation: str | os.PathLike | None = None,
    *,
    font: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Path:
    """Write `out_dir`/report.html from the run in `out_dir`; return its path.

    `evaluation` is a folder (or its per_image.jsonl) that `mieruka evaluate` wrote for the same
    photos; by default `out_dir` itself when it holds per_image.jsonl. `font` is the run's --font.

    >>> build_report("mieruka-out")  # doctest: +SKIP
    PosixPath('mieruka-out/report.html')
    """
    folder = Path(out_dir)
    results = folder / RESULTS
    if not folder.is_dir() or not results.is_file():
        what = (
            "no such folder"
            if not folder.exists()
            else ("not a folder" if not folder.is_dir() else f"no {RESULTS}")
        )
        if folder.exists() and not folder.is_dir():
            raise ReportError(f"{folder}: not a folder; give the output folder of a run (its --out)")
        raise ReportError(
            f"{folder}: {what}; a report shows the results of a run: "
            f"run `mieruka explain PHOTOS --out {folder}` first, then `mieruka report {folder}`"
        )
    records = list(read_records(results, "so no report can be made of it: run mieruka explain again"))
    settings = _read_json(folder / RUN) if (folder / RUN).is_file() else None
    per_image, document = _evaluation(folder, evaluation)
    data = page_data(records, settings, per_image, document, title=folder.resolve().name)
    _complete_pictures(folder, data, workers)
    text = "\n".join(
        [
            *data["labels"],
            *(p["name"] for p in data["photos"]),
            *(e["name"] + e["error"] for e in data["errors"]),
        ]
        + [str(value) for value in (data["settings"] or {}).values()]
    )
    if font is None and settings and settings.get("font") and Path(settings["font"]).is_file():
        font = settings["font"]  # the run's --font, while it is still there
    faces = webfonts.faces(text, None if font is None else str(font))
    page = render_page(data, faces)
    path = folder / REPORT
    with atomic_open(path, "w", encoding="utf-8") as stream:
        stream.write(page)
    return path


def render_page(data: dict, faces: list[webfonts.Face]) -> str:
    """The page: the template with its style, script, fonts and data put in."""
    from .. import __version__

    static = files("mieruka.report") / "static"
    template = (static / "report.html").read_text(encoding="utf-8")
    parts = {
        "version": html.escape(__version__),
        "title": html.escape(f"{data['title']} · mieruka report"),
        "fonts": "\n".join(face.css for face in faces),
        "families": ", ".join(f'"{face.family}"' for face in faces) or "system-ui",
        "style": (static / "report.css").read_text(encoding="utf-8"),
        "script": (static / "report.js").read_text(encoding="utf-8"),
        # JSON in a script element: "<" escaped, so no "</script>" or "<!--" can end it early
        "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c"),
    }
    for name, value in parts.items():
        template = template.replace(f"<!--mieruka:{name}-->", value)
    return template


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReportError(f"{path}: cannot be read ({error})") from None
    if not isinstance(document, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return document


def _evaluation(folder: Path, given: str | os.PathLike | None) -> tuple[list[dict], dict | None]:
    """evaluate's per-photo records and its metrics.json, from `given` or else from `folder`."""
    if given is None:
        if not (folder / PER_IMAGE).is_file():
            return [], None
        given = folder
    place = Path(given)
    per_image = place if place.is_file() else place / PER_IMAGE
    if not per_image.is_file():
        raise ReportError(
            f"--evaluation {given}: no {PER_IMAGE} there; give the folder `mieruka evaluate --out` wrote"
        )
    records = list(
        read_records(per_image, "so it cannot be joined to the photos: run mieruka evaluate again")
    )
    document_path = per_image.parent / METRICS
    document = _read_json(document_path) if document_path.is_file() else None
    return records, document


def _complete_pictures(folder: Path, data: dict, workers: int | None) -> None:
    """Check the pictures the records name; make the thumbnails that are missing or out of date.

    A photo copy or heat layer that is not there (a run without --report) is dropped: the large view
    then shows the picture as drawn.
    """
    jobs: list[tuple[dict, Path, Path]] = []
    root = os.fspath(folder)

    def there(path: str) -> bool:  # os.path, not pathlib: 30,000 checks for 10,000 photos
        return os.path.isfile(os.path.join(root, path))

    for photo in data["photos"]:
        if photo.get("view") and not there(photo["view"]):
            photo["view"] = None
        for target in photo["targets"]:
            target["heat"] = {m: path for m, path in target["heat"].items() if there(path)}
            picture = next(iter(target["outputs"].values()), None) or target["output"]
            if target.get("thumb") and there(target["thumb"]):
                continue
            target["thumb"] = None
            if picture is None or not there(picture):
                continue
            thumb = (PurePosixPath(assets.THUMBS) / PurePosixPath(picture).with_suffix(".jpg")).as_posix()
            if _newer(os.path.join(root, thumb), os.path.join(root, picture)):
                target["thumb"] = thumb  # made by an earlier `mieruka report`
                continue
            jobs.append((target, folder / picture, folder / thumb))
    if not jobs:
        return
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes and resizes without the GIL
        done = pool.map(lambda job: _thumbnail(*job[1:]), jobs)
        for (target, _, thumb), made in zip(jobs, done):
            if made:
                target["thumb"] = thumb.relative_to(folder).as_posix()


def _newer(thumb: str, picture: str) -> bool:
    """Whether `thumb` exists and is at least as new as `picture`."""
    try:
        return os.stat(thumb).st_mtime >= os.stat(picture).st_mtime
    except OSError:
        return False


def _thumbnail(picture: Path, thumb: Path) -> bool:
    """Make `thumb` from `picture`; False if the picture cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(picture) as image:
            image.draft("RGB", (assets.THUMB_PIXELS, assets.THUMB_PIXELS))  # JPEG: decode at 1/2..1/8 size
            small = assets.thumbnail(image)
        assets.save_jpeg(small, thumb)
    except (OSError, UnidentifiedImageError, ValueError):
        return False
    return True
