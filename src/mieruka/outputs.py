"""Where a run's files go, and what becomes of an earlier run in the same folder.

Pictures are named `<subfolders>/<stem>_<label>.png` after the photo's place under the folder it was
found in; the names are valid on ext4, APFS and NTFS alike and unique within the run. `results.jsonl`
records them relative to the output folder, so the folder can be moved. An earlier run is replaced
only on request, and then only the files its `results.jsonl` lists are removed, with its `run.json`
and its report (`report.html` and what lies in `report/`).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from ._io import atomic_open

RESULTS = "results.jsonl"
REPORT = "report.html"  # the HTML report; what it shows besides the run's pictures is in report/
REPORT_FOLDER = "report"
MAX_NAME_BYTES = 200  # ext4 and APFS allow 255 bytes a name: room left for "-2" and the suffix
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')  # separators, controls, and what Windows refuses
_RECORD_PATHS = ("output", "outputs", "map", "sheet", "shard", "thumb", "view", "heat")  # "sheet": its
# contact sheet page; "thumb", "view", "heat": the small pictures the report shows (report.assets)
RUN_FILES = ("run.json",)  # beside results.jsonl: a run's settings (see mieruka.runs)


def safe_component(text: str, fallback: str = "_") -> str:
    """One file or folder name that every common file system takes.

    Path separators, control characters and `: * ? " < > |` become `_`; leading and trailing dots and
    spaces are dropped; the name is cut to :data:`MAX_NAME_BYTES` of UTF-8. Letters of any script stay.

    >>> safe_component("a:b?"), safe_component(" ..猫. "), safe_component("..")
    ('a_b_', '猫', '_')
    """
    text = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip(". ")
    return _cap(text, MAX_NAME_BYTES).rstrip(". ") or fallback


def label_part(label: str) -> str:
    """A class name as it appears in file names: letters of any script, digits, `.` and `-` stay, any
    other run of characters (spaces, punctuation) becomes one `_`; `gradcam++` becomes `gradcampp`.
    Dots at either end go, so that `..` or `n.` cannot run into the file's suffix.

    >>> label_part("golden retriever"), label_part("猫"), label_part("gradcam++"), label_part("..")
    ('golden_retriever', '猫', 'gradcampp', '')
    """
    readable = unicodedata.normalize("NFC", label.replace("+", "p"))
    kept = "".join(c if c in ".-" or _kept(c) else "_" for c in readable)
    return re.sub("_+", "_", kept).strip("_.")


def _kept(character: str) -> bool:
    """Letters, marks and digits of any script, and symbols such as emoji: all fine in file names."""
    category = unicodedata.category(character)
    return category[0] in "LMN" or category == "So"


def _cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class Namer:
    """`<place's folders>/<place's stem>_<label><suffix>`, relative to the output folder, unique in a run.

    Names that differ only in case or Unicode normalization count as the same, as on APFS and NTFS;
    a repeated name gets `-2`, `-3`, ...

    >>> namer = Namer()
    >>> str(namer.name(PurePath("a/cat.jpg"), "猫", ".png")), str(namer.name(PurePath("a/Cat.jpg"), "猫", ".png"))
    ('a/cat_猫.png', 'a/Cat_猫-2.png')
    """

    def __init__(self) -> None:
        self.used: set[str] = set()

    def name(self, place: PurePath, label: str, suffix: str) -> PurePosixPath:
        folders = [safe_component(part) for part in place.parent.parts]
        tail = "_" + (_cap(label_part(label), MAX_NAME_BYTES // 2) or "class")
        room = MAX_NAME_BYTES - len(f"{tail}{suffix}".encode())  # a long stem is cut, not the label
        base = _cap(safe_component(place.stem, "photo"), room) + tail
        candidate, number = base, 1
        while _key(folders, candidate) in self.used:
            number += 1
            candidate = f"{base}-{number}"
        self.used.add(_key(folders, candidate))
        return PurePosixPath(*folders, candidate + suffix)

    def reserve(self, name: str) -> None:
        """Take a name an earlier part of the run gave (`a/cat_tabby.png`), so it is not given again."""
        path = PurePosixPath(name)
        self.used.add(_key(list(path.parent.parts), path.stem))


def _key(folders: list[str], name: str) -> str:
    return "/".join([*folders, name]).casefold()


@dataclass
class EarlierRun:
    """An earlier run in an output folder: its results.jsonl and the files the records list."""

    folder: Path
    results: Path
    files: list[Path]
    replaceable: bool = False  # it explained nothing: replacing it loses nothing, no --overwrite needed

    def remove(self) -> None:
        """Remove the listed files, then results.jsonl, then the subfolders that leaves empty."""
        for path in self.files:
            path.unlink(missing_ok=True)
        self.results.unlink(missing_ok=True)
        for name in RUN_FILES:
            (self.folder / name).unlink(missing_ok=True)
        for folder in sorted({path.parent for path in self.files}, key=lambda p: len(p.parts), reverse=True):
            while folder != self.folder and folder.is_relative_to(self.folder):
                try:
                    folder.rmdir()
                except OSError:  # not empty: something else lives there
                    break
                folder = folder.parent


def find_earlier_run(out_dir: str | os.PathLike) -> EarlierRun | None:
    """The earlier run in `out_dir`, or None where it holds no results.jsonl (or does not exist).

    Only the pictures, maps and contact sheet pages a record lists ("output", "outputs", "map",
    "sheet"; the report's "thumb", "view", "heat") count, and only inside `out_dir`: never a record's
    "file", the photo. Paths as mieruka 0.1.0 wrote them (relative to the directory it ran in, or
    absolute) are found as well. The run's run.json and its report (report.html, the files under
    report/) go with it.
    """
    folder = Path(os.path.abspath(out_dir))
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{out_dir}: is a file, expected an output folder")
    results = folder / RESULTS
    if not results.is_file():
        return None
    files, explained = [], False
    for record in read_records(results):
        explained = explained or "error" not in record
        for listed in records_files(record):
            path = _inside(folder, listed)
            if path is not None and path not in files:
                files.append(path)
    replaceable = not explained and not files  # a run that explained nothing left only its error list
    return EarlierRun(folder, results, list(dict.fromkeys(files + report_files(folder))), replaceable)


def report_files(folder: Path) -> list[Path]:
    """The run's report: report.html and the files under report/ (see mieruka.report)."""
    files = [folder / REPORT] if (folder / REPORT).is_file() else []
    assets = folder / REPORT_FOLDER
    if assets.is_dir():
        files += sorted(path for path in assets.rglob("*") if path.is_file())
    return files


def read_records(
    results: Path,
    consequence: str = "so the files of that run are unknown; remove them yourself or choose another output folder",
) -> Iterator[dict]:
    """The records of a results.jsonl, one dict a line; a line that is not one is an error that says
    which line, and `consequence`. A torn last line (no newline, not JSON: a write that a power cut or
    a full disk cut short) is left out, as ``--resume`` drops it."""
    text = results.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not text.endswith("\n"):
                return  # torn
            record = None
        if not isinstance(record, dict):
            raise ValueError(f"{results}: line {number} is not a mieruka record, {consequence}")
        yield record


def records_files(record: dict) -> Iterator[str]:
    """The files a record names (pictures, maps, shards), relative to the output folder."""
    for key in _RECORD_PATHS:
        value = record.get(key)
        for path in value.values() if isinstance(value, dict) else [value]:
            if isinstance(path, str):
                yield path


def _inside(folder: Path, listed: str) -> Path | None:
    """The file `listed` names inside `folder`: relative to it, else (0.1.0) absolute or cwd-relative."""
    for candidate in (folder / listed, Path(listed)):
        path = Path(os.path.abspath(candidate))
        if path.is_relative_to(folder) and path != folder / RESULTS and path.is_file():
            return path
    return None


def write_jsonl(records: Sequence[dict], path: Path) -> None:
    """Write records one JSON object a line, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
