"""The report's text in the fonts the pictures use, embedded in the page: it opens anywhere the same.

A browser with no CJK font of its own draws 犬 as an empty box. The pictures draw labels with
:mod:`mieruka.fonts` (DejaVu Sans, then IPAexGothic for Japanese, the fonts of the `fonts` extra for
Korean, Chinese, Thai and others where installed, then system fonts); the report asks the same module
which fonts its text needs, cuts each down to the characters it draws (fontTools' subsetter: a few
kilobytes instead of IPAexGothic's 6 MB) and embeds them as WOFF data in the page's CSS. Embedding a
font only to display a document is what the IPA Font License's Article 2.5 and the SIL Open Font
License allow without further obligations.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import string
from dataclasses import dataclass
from pathlib import Path

# The page's own words and signs, so that they are drawn in the same fonts as the labels.
PAGE_CHARACTERS = string.printable.strip() + " ·…–—←→↑↓≤≥×%°✓"


@dataclass(frozen=True)
class Face:
    """One embedded font: its CSS family name, the file it was cut from, and how many bytes it takes."""

    family: str
    source: Path
    size: int
    css: str


def faces(text: str, font: str | None = None) -> list[Face]:
    """The fonts that draw `text` (plus the page's own characters), each cut to what it draws there.

    `font` is the run's --font, the first choice as in the pictures.
    """
    from .. import fonts

    text = "".join(sorted(set(text + PAGE_CHARACTERS)))
    choice = fonts.choose(text, font)
    wanted: dict[Path, set[str]] = {}
    for piece, path in fonts.runs(choice.drawable(text), choice):
        wanted.setdefault(path, set()).update(piece)
    found = []
    for number, (path, characters) in enumerate(wanted.items(), 1):
        data = subset(path, "".join(sorted(characters)))
        family = f"mieruka {number}"
        encoded = base64.b64encode(data).decode("ascii")
        css = (
            f'@font-face {{ font-family: "{family}"; font-display: block; '
            f'src: url(data:font/woff;base64,{encoded}) format("woff"); }}'
        )
        found.append(Face(family, path, len(data), css))
    return found


def subset(path: Path, characters: str) -> bytes:
    """The font file at `path` (face 0 of a collection) cut to `characters`, as WOFF bytes."""
    from fontTools import subset as subsetting
    from fontTools.ttLib import TTFont

    options = subsetting.Options()
    options.flavor = "woff"  # zlib: no extra dependency (WOFF2 would need brotli)
    options.hinting = False
    options.layout_features = ["kern", "liga", "ccmp", "locl", "mark", "mkmk", "vert"]
    options.notdef_outline = True  # what a browser draws for a missing character: the font's own box
    options.ignore_missing_glyphs = True
    quiet = logging.getLogger("fontTools")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "FFTM NOT subset; dropped" and the like: nothing to act on
    try:
        font = TTFont(str(path), fontNumber=0, lazy=True)  # the face mieruka.fonts reads in a collection
        subsetter = subsetting.Subsetter(options)
        subsetter.populate(text=characters)
        subsetter.subset(font)
        font.flavor = "woff"
        stream = io.BytesIO()
        font.save(stream)
    finally:
        quiet.setLevel(level)
    return stream.getvalue()


# VTT's tables ("TSI0", "TSI1", ...) are sources a font tool keeps for itself; Chrome's font sanitizer
# refuses a whole font for a malformed one (NanumGothic ships an empty TSI3: "OTS parsing error: TSI3:
# zero-length table").
_TOOL_TABLE_PREFIX = "TSI"


@functools.lru_cache(maxsize=8)
def browser_font(path: Path) -> bytes:
    """The font file at `path` as a browser loads it whole: its bytes, without the font tools' own
    tables where it has any (the viewer serves its fonts uncut, for any label typed later)."""
    from fontTools.ttLib import TTFont

    data = path.read_bytes()
    font = TTFont(io.BytesIO(data), lazy=True)
    found = [tag for tag in font.reader.tables if tag.startswith(_TOOL_TABLE_PREFIX)]
    if not found:
        return data
    for tag in found:
        del font[tag]
    stream = io.BytesIO()
    font.save(stream)
    return stream.getvalue()
