"""The served folder: list the images under it, and turn a name the page sends into a file inside it.

A name from the page is never trusted: absolute paths, drive letters, backslashes and ``..`` are
refused before the file system is asked, and what is left is resolved (symbolic links followed) and
must still lie inside the folder. Only image files are ever opened.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ..errors import MierukaError
from ..images import IMAGE_SUFFIXES

MAX_LISTED = 10_000  # the page's list; a larger folder is cut there, and says so


class PathRefused(MierukaError):
    """A name that does not lead to an image inside the served folder."""


class NotFound(MierukaError):
    """A name inside the folder where no image is."""


class Folder:
    """The folder `mieruka serve FOLDER` was given, resolved once."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root}: not a folder")

    def images(self, limit: int = MAX_LISTED) -> tuple[list[str], bool]:
        """The images under the folder as '/'-separated paths relative to it, sorted; and whether the
        list was cut at `limit`. Links that lead out of the folder are left out; linked folders are not
        walked (a link loop cannot hang the listing)."""
        found: list[str] = []
        for folder, subfolders, files in os.walk(self.root, followlinks=False):
            subfolders.sort()
            here = Path(folder)
            for name in files:
                path = here / name
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():  # broken links too
                    continue
                if path.is_symlink() and not self._inside(path.resolve()):
                    continue
                found.append(path.relative_to(self.root).as_posix())
        found.sort()
        return found[:limit], len(found) > limit

    def resolve(self, name: str) -> Path:
        """The image file `name` ('a/cat.jpg') names inside the folder, or PathRefused / NotFound."""
        if not isinstance(name, str) or not name.strip():
            raise PathRefused("no file named: pick a photo from the list")
        shown = name if len(name) <= 200 else name[:200] + "..."
        if "\x00" in name or "\\" in name:
            raise PathRefused(f"{shown!r}: names with backslashes or NUL are refused")
        relative = PurePosixPath(name)
        if relative.is_absolute() or re.match(r"^[A-Za-z]:", name):
            raise PathRefused(
                f"{shown!r}: absolute paths are refused; names are relative to the served folder"
            )
        if ".." in relative.parts:
            raise PathRefused(f"{shown!r}: '..' is refused; only files under the served folder are served")
        path = (self.root / relative).resolve()
        if not self._inside(path):
            raise PathRefused(f"{shown!r}: leads outside the served folder (a symbolic link?); refused")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise PathRefused(f"{shown!r}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if not path.is_file():
            raise NotFound(f"{shown!r}: no such image in the served folder")
        return path

    def _inside(self, path: Path) -> bool:
        return path == self.root or path.is_relative_to(self.root)
