"""A folder run that an interruption never spoils: its settings (run.json) and its records, appended
photo by photo, and what `--resume` keeps of an earlier run.

A photo's lines are appended to results.jsonl in one write, and only once the files they name are in
place (pictures, or the shard holding its maps), so a record always names files that exist. Killed at
any moment, a run leaves complete lines and at most a torn tail. run.json, written before the first
photo, holds the settings that shape the outputs, so a resume with other settings is refused rather
than mixed into the same folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._io import atomic_open
from .outputs import RESULTS, records_files

RUN = "run.json"
_ABOUT = ("mieruka", "cwd", "versions", "created")  # what run.json tells without it being a setting:
# never compared
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.part")  # mieruka._io.atomic_open's temporary names


def file_identity(path: str | os.PathLike | None) -> str | None:
    """A file the settings name, as `name (bytes, sha256 prefix)`: the same file under another path
    or a retrained one of the same name are told apart; None stays None, a non-file name stays as is."""
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        return str(path)
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return f"{file.name} ({file.stat().st_size} bytes, sha256 {digest.hexdigest()[:16]})"


def write_settings(out_dir: Path, settings: dict, version: str) -> None:
    """Record a run's settings in `out_dir/run.json`, before its first photo, with the versions of
    what ran it (torch and torchvision where imported) and when it started (shown by the report)."""
    from datetime import datetime, timezone

    versions = {"mieruka": version, "python": platform.python_version()}
    versions.update(
        {name: sys.modules[name].__version__ for name in ("torch", "torchvision") if name in sys.modules}
    )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    about = {"mieruka": version, "cwd": os.getcwd(), "versions": versions, "created": created}
    with atomic_open(out_dir / RUN, "w", encoding="utf-8", durable=True) as stream:
        json.dump({**about, **settings}, stream, ensure_ascii=False, indent=1)
        stream.write("\n")


def differences(recorded: dict, settings: dict) -> list[str]:
    """The settings (flag names without `--`) that differ between an earlier run and this one."""
    keys = [key for key in settings if key not in _ABOUT]
    keys += [key for key in recorded if key not in settings and key not in _ABOUT]
    return [key for key in keys if recorded.get(key) != settings.get(key)]


@dataclass
class Resumed:
    """What an earlier run in the folder finished: photos to skip, names taken, the next shard."""

    done: set[str] = field(default_factory=set)  # photos' absolute paths
    names: list[str] = field(default_factory=list)  # files its records name, relative to the folder
    next_shard: int = 0
    records: int = 0


def resume(out_dir: Path, settings: dict) -> Resumed:
    """Keep what the earlier run in `out_dir` finished; raise ValueError if it ran with other settings.

    results.jsonl is rewritten (atomically) with only the finished photos' lines: a torn last line,
    photos whose files are missing or empty, photos that failed (tried again), and the last photo
    recorded (its lines may have been cut short by the kill) go, so appending continues without
    duplicates.
    """
    results = out_dir / RESULTS
    if not results.is_file():
        return Resumed()
    recorded = _read_settings(out_dir)
    changed = differences(recorded, settings)
    if changed:
        what = "; ".join(
            f"--{key} was {_shown(recorded.get(key))}, now {_shown(settings.get(key))}" for key in changed
        )
        raise ValueError(
            f"--resume: {out_dir} holds a run with other settings ({what}): resume with the same settings, "
            "choose another --out, or pass --overwrite instead of --resume to replace that run"
        )
    for left in out_dir.rglob(".*.part"):  # what a killed run was writing: a temporary name, never listed
        if _TEMPORARY.fullmatch(left.name):
            left.unlink(missing_ok=True)
    groups = _photo_groups(_complete_lines(results.read_bytes()))[:-1]  # the last one may be cut short
    relative = any(not os.path.isabs(records[0]["file"]) for _, records in groups)
    if relative and recorded.get("cwd") not in (None, os.getcwd()):
        raise ValueError(
            f"--resume: {out_dir} was written by a run in {recorded['cwd']}, and its records name the photos "
            "from there: resume from that folder"
        )
    resumed, kept = Resumed(), []
    for lines, records in groups:
        if any("error" in record for record in records):
            continue
        names = [name for record in records for name in records_files(record)]
        if not all(_whole(out_dir / name) for name in names):
            continue
        kept.extend(lines)
        resumed.done.add(os.path.abspath(records[0]["file"]))
        resumed.names.extend(names)
        resumed.records += len(records)
        for record in records:
            resumed.next_shard = max(resumed.next_shard, _shard_number(record) + 1)
    with atomic_open(results, "wb", durable=True) as stream:
        stream.write(b"".join(kept))
    return resumed


def _read_settings(out_dir: Path) -> dict:
    path = out_dir / RUN
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        recorded = None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"--resume: {path} cannot be read ({error}), so the earlier run's settings are unknown: "
            "choose another --out, or pass --overwrite instead of --resume to replace that run"
        ) from None
    if not isinstance(recorded, dict):
        raise ValueError(
            f"--resume: {out_dir} has no {RUN} (a run by mieruka before 0.2, a run with --engine ray, or not a folder run), so its "
            "settings are unknown: choose another --out, or pass --overwrite instead of --resume"
        )
    return recorded


def _shown(value) -> str:
    return "not set" if value is None else json.dumps(value, ensure_ascii=False)


def _complete_lines(data: bytes) -> list[bytes]:
    """The lines before the first one that is torn (no newline) or not a JSON object; the rest goes."""
    lines = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict) or not isinstance(record.get("file"), str):
            break
        lines.append(line)
    return lines


def _photo_groups(lines: Sequence[bytes]) -> list[tuple[list[bytes], list[dict]]]:
    """Consecutive lines of the same photo, together: a run appends each photo's lines in one write."""
    groups: list[tuple[list[bytes], list[dict]]] = []
    for line in lines:
        record = json.loads(line)
        if groups and groups[-1][1][0]["file"] == record["file"]:
            groups[-1][0].append(line)
            groups[-1][1].append(record)
        else:
            groups.append(([line], [record]))
    return groups


def _whole(path: Path) -> bool:
    """A file a record names is there and not empty (written under a temporary name, then renamed)."""
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _shard_number(record: dict) -> int:
    shard = record.get("shard")
    name = next(iter(shard.values())) if isinstance(shard, dict) else shard
    if not isinstance(name, str):
        return -1
    try:
        return int(Path(name).stem.split("-")[1])
    except (IndexError, ValueError):
        return -1


class ResultsLog:
    """results.jsonl opened for appending: each photo's lines in one write, straight to the file.

    No buffer in between, so a kill loses nothing appended; closing syncs the lines to the disk too. Lines
    a power cut loses before that are only work to redo: the files they named are already in place.
    """

    def __init__(self, path: Path, *, fresh: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if fresh else 0)
        self.descriptor = os.open(path, flags, 0o666)

    def append(self, records: Iterable[dict]) -> None:
        data = b"".join(json.dumps(record, ensure_ascii=False).encode() + b"\n" for record in records)
        view = memoryview(data)
        while view:
            view = view[os.write(self.descriptor, view) :]

    def sync(self) -> None:
        os.fsync(self.descriptor)

    def close(self) -> None:
        if self.descriptor >= 0:
            try:
                self.sync()
            finally:
                os.close(self.descriptor)
                self.descriptor = -1

    def __enter__(self) -> ResultsLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
