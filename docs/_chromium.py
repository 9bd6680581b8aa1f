"""The system Chromium both screenshot scripts drive (Playwright's own browser cannot be downloaded here)."""

from __future__ import annotations

import os
import shutil
import sys

FLAGS = ["--no-sandbox", "--disable-gpu"]


def find_chromium() -> str | None:
    """MIERUKA_CHROMIUM, or Debian's chromium on the PATH; None (and one line on stderr) without one."""
    found = os.environ.get("MIERUKA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        print("no Chromium: install Debian's chromium package or set MIERUKA_CHROMIUM", file=sys.stderr)
    return found
