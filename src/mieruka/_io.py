"""Write files atomically: a crash or a failed write never leaves a half-written output behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()  # what open() would give; mkstemp alone gives 0o600


@contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, durable: bool = False, **kwargs
) -> Iterator[IO]:
    """Open a temporary file beside `path`; it replaces `path` only if the block finishes.

    `durable` also flushes the file to the disk before the rename, so that after a power cut `path`
    holds the old or the new content, never an empty file (costly: for run files, not every picture).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **kwargs) as stream:
            yield stream
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
