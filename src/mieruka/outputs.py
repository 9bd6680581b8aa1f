"""Where a run's files go.

Pictures are named `<subfolders>/<stem>_<label>.png` after the photo's place under the folder it was
found in; the names are valid on ext4, APFS and NTFS alike and unique within the run. `results.jsonl`
records them relative to the output folder, so the folder can be moved.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePath, PurePosixPath

from ._io import atomic_open

RESULTS = "results.jsonl"
MAX_NAME_BYTES = 200  # ext4 and APFS allow 255 bytes a name: room left for "-2" and the suffix
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')  # separators, controls, and what Windows refuses


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

    >>> label_part("golden retriever"), label_part("猫"), label_part("gradcam++")
    ('golden_retriever', '猫', 'gradcampp')
    """
    readable = unicodedata.normalize("NFC", label.replace("+", "p"))
    kept = "".join(c if c in ".-" or unicodedata.category(c)[0] in "LMN" else "_" for c in readable)
    return re.sub("_+", "_", kept).strip("_")


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


def _key(folders: list[str], name: str) -> str:
    return "/".join([*folders, name]).casefold()


def write_jsonl(records: Sequence[dict], path: Path) -> None:
    """Write records one JSON object a line, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
