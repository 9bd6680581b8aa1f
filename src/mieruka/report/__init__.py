"""The HTML report of a run: its records -> one self-contained page beside the pictures.

`mieruka explain` writes it for folder runs (``--report``); `mieruka report OUT` writes it for any
run. :mod:`.data` turns records into the page's data, :mod:`.assets` draws the small pictures the page
shows, :mod:`.webfonts` embeds the fonts the labels need, :mod:`.build` writes the page from the
template in ``static/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ReportError", "build_report"]


def __getattr__(name: str) -> Any:  # explain imports .assets alone; the page's code loads on use
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module 'mieruka.report' has no attribute {name!r}")


if TYPE_CHECKING:
    from .build import ReportError, build_report
