"""A run's records -> the data the report page shows: one entry per photo, its errors, its settings.

Plain Python on the records explain wrote (results.jsonl, run.json) and, when given, what evaluate
wrote (per_image.jsonl, metrics.json); no torch. Paths stay relative to the run's folder, as the
records give them, so the report opens from wherever the folder is.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import PurePath

# "Confident, but the map lies outside the main region": the page's defaults, adjustable there.
CONFIDENT = 0.8  # the photo's probability at least this
OUTSIDE = 0.25  # and less than this share of the map's energy in the main region: a flat map puts 0.25
# in the central quarter, so below it the map favours the surroundings over the centre
# evaluate's rows that are baselines, not methods (metrics.json names them in settings.controls)
CONTROLS = ("random", "centre")
REGION_METRIC = "energy"  # evaluate's share of the map's energy inside the ground-truth boxes


def page_data(
    records: Sequence[dict],
    settings: dict | None = None,
    evaluation: Sequence[dict] = (),
    metrics_document: dict | None = None,
    title: str = "",
) -> dict:
    """What the page needs, as one JSON-ready dict (see the module docstring of report.js).

    Photos keep the order of the records; each photo's first target (the predicted class unless the
    run asked for others) gives its label and confidence. `evaluation` is per_image.jsonl's records.
    """
    photos: dict[str, dict] = {}
    errors = []
    labels = _Interned()
    methods: list[str] = []
    for record in records:
        file = str(record.get("file", ""))
        if "error" in record:
            errors.append({"file": file, "error": str(record["error"])})
            continue
        photo = photos.get(file)
        if photo is None:
            photo = photos[file] = _photo(record, labels)
        used = _methods(record)
        methods.extend(method for method in used if method not in methods)
        # nothing explained (a note); a record with a label but no picture is a target whose map is
        # in a shard (--format npy)
        if record.get("output") is None and ("note" in record or record.get("label") is None):
            photo["note"] = record.get("note") or "nothing explained"
            continue
        photo["targets"].append(_target(record, labels, used))
    entries = list(photos.values())
    for photo in entries:
        first = photo["targets"][0] if photo["targets"] else None
        photo["label"] = first["label"] if first else -1
        photo["p"] = first["p"] if first else None
        photo["centre"] = _first_value(first["centre"]) if first and not _shows_no_place(first) else None
    names = display_names([*photos, *(e["file"] for e in errors)])
    for photo in entries:
        photo["name"] = names[photo["file"]]
    for error in errors:
        error["name"] = names[error["file"]]
    for rank, photo in enumerate(sorted(entries, key=lambda photo: natural_key(photo["name"]))):
        photo["rank"] = rank  # the page sorts by name with this: 10,000 string comparisons cost it 0.5 s
    metrics = _join_evaluation(entries, evaluation, metrics_document)
    first_method = methods[0] if methods else None
    for photo in entries:  # the main region: the ground-truth boxes where evaluate had them
        first = photo["targets"][0] if photo["targets"] else None
        shows = first is not None and not _shows_no_place(first)
        in_box = photo["metrics"].get(f"{REGION_METRIC}|{first_method}") if shows else None
        photo["region"] = in_box if in_box is not None else photo["centre"]
        photo["regionKind"] = "box" if in_box is not None else "centre"
    counts = Counter(photo["label"] for photo in entries if photo["label"] >= 0)
    return {
        "title": title,
        "settings": run_settings(settings, records),
        "labels": labels.values,
        "methods": methods,
        "metrics": metrics,
        "counts": sorted(counts.items(), key=lambda item: (-item[1], labels.values[item[0]])),
        "photos": entries,
        "errors": errors,
        "nothing": sum(1 for photo in entries if not photo["targets"]),
        "defaults": {"confident": CONFIDENT, "outside": OUTSIDE},
    }


class _Interned:
    """Strings as indices into one list: 10,000 photos' top-5 name the same few hundred classes."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}

    def __call__(self, value: object) -> int:
        text = "" if value is None else str(value)
        if text not in self.index:
            self.index[text] = len(self.values)
            self.values.append(text)
        return self.index[text]


def _photo(record: dict, labels: _Interned) -> dict:
    top5 = record.get("top5")
    return {
        "file": str(record.get("file", "")),
        "view": record.get("view"),
        "crop": crop_fractions(record.get("crop"), record.get("size")),
        "size": record.get("size"),
        "top5": [[labels(t.get("label")), t.get("probability")] for t in top5] if top5 else None,
        "targets": [],
        "metrics": {},
    }


def _target(record: dict, labels: _Interned, methods: list[str]) -> dict:
    outputs = record.get("outputs") or {methods[0]: record.get("output")}
    heat = record.get("heat")
    centre = record.get("centre_energy")
    empty = record.get("empty")
    flat = record.get("flat")
    return {
        "label": labels(record.get("label")),
        "p": record.get("probability"),
        "output": record.get("output"),
        "outputs": outputs,
        "thumb": record.get("thumb"),
        "heat": heat if isinstance(heat, dict) else ({methods[0]: heat} if heat else {}),
        "centre": centre if isinstance(centre, dict) else {methods[0]: centre},
        "empty": empty if isinstance(empty, dict) else {methods[0]: bool(empty)},
        "flat": flat if isinstance(flat, dict) else {methods[0]: bool(flat)},
    }


def _methods(record: dict) -> list[str]:
    return [m for m in str(record.get("method") or "").split(",") if m] or ["map"]


def _shows_no_place(target: dict) -> bool:
    """Whether a target's (first method's) map is empty or flat: it has no share in any region, so it is
    never "outside the main region"."""
    return bool(_first_value(target["empty"]) or _first_value(target["flat"]))


def _first_value(values: dict) -> float | None:
    return next(iter(values.values()), None)


def crop_fractions(crop: Sequence[float] | None, size: Sequence[int] | None) -> list[float] | None:
    """The crop the model saw (x0, y0, x1, y1 in photo pixels) as fractions of the photo, inside it:
    where a heat layer lies over the photo in the page."""
    if not crop or not size or len(crop) != 4 or len(size) != 2 or min(size) <= 0:
        return None
    width, height = size
    x0, y0, x1, y1 = (
        min(max(value / extent, 0.0), 1.0) for value, extent in zip(crop, (width, height, width, height))
    )
    return [round(v, 5) for v in (x0, y0, x1, y1)] if x1 > x0 and y1 > y0 else None


def display_names(files: Iterable[str]) -> dict[str, str]:
    """Each file as the page shows it: its path below the folder all the photos share.

    >>> display_names(["photos/a/cat.jpg", "photos/dog.jpg"])
    {'photos/a/cat.jpg': 'a/cat.jpg', 'photos/dog.jpg': 'dog.jpg'}
    """
    files = list(dict.fromkeys(files))
    parents = [os.path.dirname(os.path.normpath(file)) for file in files]
    try:
        common = os.path.commonpath(parents) if parents and all(parents) else ""
    except ValueError:  # absolute and relative paths, or other drives
        common = ""
    names = {}
    for file in files:
        name = os.path.relpath(os.path.normpath(file), common) if common else os.path.normpath(file)
        names[file] = PurePath(name).as_posix()
    return names


def natural_key(name: str) -> tuple:
    """A key that sorts names as people do: case aside, numbers by value (photo_9 before photo_10)."""
    parts = re.split(r"(\d+)", unicodedata.normalize("NFC", name).casefold())
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in parts)


def _join_evaluation(photos: list[dict], evaluation: Sequence[dict], document: dict | None) -> list[dict]:
    """Put evaluate's per-photo values into `photos` ("metric|method" -> value) and list the columns.

    A value belongs to the photo with the same recorded path, else the same absolute path, else the
    only photo whose path ends with evaluate's place for it ("photo", e.g. ``a/cat.jpg``).
    """
    if not evaluation:
        return []
    controls = set(((document or {}).get("settings") or {}).get("controls") or CONTROLS)
    better = (document or {}).get("better") or {}
    by_file = {photo["file"]: photo for photo in photos}
    by_absolute = {os.path.abspath(file): photo for file, photo in by_file.items()}
    columns: dict[str, dict] = {}
    for record in evaluation:
        if "error" in record or record.get("method") in controls or record.get("value") is None:
            continue
        photo = by_file.get(str(record.get("file")))
        if photo is None:
            photo = by_absolute.get(os.path.abspath(str(record.get("file"))))
        if photo is None and record.get("photo"):
            photo = _by_tail(by_file, str(record["photo"]))
        if photo is None:
            continue
        key = f"{record['metric']}|{record['method']}"
        photo["metrics"][key] = record["value"]
        columns.setdefault(
            key,
            {
                "key": key,
                "metric": record["metric"],
                "method": record["method"],
                "better": better.get(record["metric"]),
            },
        )
    return list(columns.values())


def _by_tail(by_file: dict[str, dict], place: str) -> dict | None:
    tail = PurePath(place).parts
    found = [photo for file, photo in by_file.items() if PurePath(file).parts[-len(tail) :] == tail]
    return found[0] if len(found) == 1 else None


def run_settings(run: dict | None, records: Sequence[dict]) -> dict:
    """What the page shows of a run's settings: run.json's (mieruka.runs: flag names, "method" a list)
    over what the records say; counts of photos and failures from the records, which a resumed run
    completes."""
    derived = settings_from(records)
    if not run:
        return derived
    settings = {key: value for key, value in run.items() if key not in ("cwd", "method", "top-k")}
    settings["methods"] = run.get("method") or derived.get("methods")
    settings["top_k"] = run.get("top-k")
    settings["weights"] = derived.get("weights", run.get("weights"))  # a file's name, as the records say
    settings["versions"] = run.get("versions") or ({"mieruka": run["mieruka"]} if "mieruka" in run else None)
    settings["photos"], settings["failed"] = derived["photos"], derived["failed"]
    return settings


def settings_from(records: Sequence[dict]) -> dict:
    """The settings of a run without run.json (mieruka before 0.2): what its first record says."""
    first = next((r for r in records if "error" not in r), {})
    keys = ("model", "weights", "layer", "method", "task")
    settings = {key: first[key] for key in keys if first.get(key) is not None}
    if "method" in settings:
        settings["methods"] = settings.pop("method").split(",")
    failed = {r.get("file") for r in records if "error" in r}
    settings["photos"] = len({r.get("file") for r in records} - failed)  # explained, as the header counts
    settings["failed"] = len(failed)
    return settings
