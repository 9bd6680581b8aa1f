"""Fonts that can draw a label: the user's, DejaVu Sans, fonts shipped in Python packages (IPAexGothic
for Japanese; NanumGothic for Korean, Noto Sans CJK SC for Chinese and Noto Sans for Thai, Devanagari,
Tamil, Telugu and Khmer where `mieruka[fonts]` is installed), then system fonts.

Neither matplotlib nor Pillow can draw a character its font lacks: they draw an empty box, and
matplotlib warns once per glyph. Class names come in any script, so each text gets the fonts whose
character maps cover its characters, in that order; system fonts are read only for characters the
others lack. Chinese text (Han characters the Japanese font lacks, no kana) is drawn in the Chinese
font throughout, so one label does not mix Japanese and Chinese letterforms. What no font has is drawn
as □ and named once, in a warning that says where to get it.

>>> [path.name for path in choose("犬  (p = 0.912)").paths]
['DejaVuSans.ttf', 'ipaexg.ttf']
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import os
import threading
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import MierukaError, MierukaWarning

# Packages that ship a font, and the file: found without importing them (which would set rcParams).
JAPANESE = ("matplotlib_fontja", "fonts/ipaexg.ttf")  # IPAexGothic, a dependency
KOREAN = ("koreanize_matplotlib", "fonts/NanumGothic.ttf")  # NanumGothic, the `korean` extra
CHINESE = ("mplfonts", "fonts/NotoSansCJKsc-Regular.otf")  # Noto Sans CJK SC (SIL OFL), `chinese`
FONTPKG = "fontpkg.family"  # the entry points of fontpkg's font packages (fontpkg-noto-sans-thai, ...)
KOREAN_EXTRA = "pip install 'mieruka[korean]'"
CHINESE_EXTRA = "pip install 'mieruka[chinese]'"
FONTS_EXTRA = "pip install 'mieruka[fonts]'"
# Scripts whose font `mieruka[fonts]` installs from a fontpkg package: the first word of a character's
# Unicode name.
FONTS_EXTRA_SCRIPTS = ("THAI", "DEVANAGARI", "TAMIL", "TELUGU", "KHMER")
MISSING_BOX = "\N{WHITE SQUARE}"  # drawn for a character no font has, in DejaVu Sans


class FontError(MierukaError):
    """A font file that does not exist or cannot be read."""


class MissingGlyphsWarning(MierukaWarning):
    """Characters that no font has: they are drawn as empty boxes."""


@dataclass(frozen=True)
class FontChoice:
    """The fonts for one text: the primary first, then each fallback that has characters the earlier lack."""

    paths: tuple[Path, ...]
    missing: str  # characters no font has, each once, in order of appearance

    def drawable(self, text: str) -> str:
        """`text` as these fonts draw it: a missing character becomes □, control characters but newlines go."""
        return "".join(
            MISSING_BOX if c in self.missing else c
            for c in text
            if c == "\n" or unicodedata.category(c) != "Cc"
        )


def check_font(path: str | os.PathLike, name: str = "font") -> Path:
    """The path of a readable font file, or a :class:`FontError` naming `name` (e.g. ``--font``) and the file."""
    path = Path(path)
    if not path.exists():
        raise FontError(f"{name} {path}: no such file")
    if path.is_dir():
        raise FontError(f"{name} {path}: is a folder, expected a font file (.ttf, .otf, .ttc)")
    try:
        _coverage(str(path))
    except (OSError, RuntimeError):
        raise FontError(f"{name} {path}: not a font file FreeType can read (.ttf, .otf, .ttc)") from None
    return path


def choose(text: str, font: str | os.PathLike | None = None) -> FontChoice:
    """The fonts that together draw `text`: `font` (else DejaVu Sans), DejaVu Sans, the packaged fonts
    (IPAexGothic, NanumGothic, Noto Sans CJK SC and fontpkg's where installed), system fonts."""
    primary = check_font(font) if font is not None else dejavu_sans()
    paths = [primary]
    wanted = [c for c in dict.fromkeys(text) if unicodedata.category(c) != "Cc"]
    remaining = set(wanted) - _coverage(str(primary))
    cjk = [japanese(), korean(), chinese()]
    if _reads_as_chinese(remaining):
        cjk = [chinese(), japanese(), korean()]
    for candidate in (dejavu_sans(), *cjk, *script_fonts()):
        if remaining and candidate is not None and candidate not in paths:
            covered = remaining & _coverage(str(candidate))
            if covered:
                paths.append(candidate)
                remaining -= covered
    if remaining:
        for character, path in _from_system(remaining).items():
            if path is not None:
                remaining.discard(character)
                if path not in paths:
                    paths.append(path)
    if remaining and dejavu_sans() not in paths:
        paths.append(dejavu_sans())  # it draws the box that stands for a missing character
    return FontChoice(tuple(paths), "".join(c for c in wanted if c in remaining))


def warn_missing(choice: FontChoice, stacklevel: int = 3) -> None:
    """One warning for the characters of a picture that no font has and no earlier warning named: a
    folder of photos with the same labels says it once."""
    with _LOCK:
        new = [c for c in choice.missing if c not in _WARNED]
        _WARNED.update(new)
    if not new:
        return
    names = ", ".join(f"{c} (U+{ord(c):04X})" if c.isprintable() else f"U+{ord(c):04X}" for c in new)
    extras = []
    if any(is_hangul(c) for c in new) and korean() is None and chinese() is None:
        extras.append(f"Korean comes with {KOREAN_EXTRA}")
    if any(is_han(c) for c in new) and chinese() is None:
        extras.append(f"Chinese with {CHINESE_EXTRA}")
    scripts = sorted({_script(c) for c in new} & set(FONTS_EXTRA_SCRIPTS))
    if scripts:
        extras.append(f"{', '.join(s.title() for s in scripts)} with {FONTS_EXTRA}")
    warnings.warn(
        f"no font has the character(s) {names}: they are drawn as empty boxes; "
        + "".join(f"{extra}, or " for extra in extras)
        + "pass a font that has them with --font PATH (font= in the library)",
        MissingGlyphsWarning,
        stacklevel=stacklevel,
    )


def runs(text: str, choice: FontChoice) -> Iterator[tuple[str, Path]]:
    """`text` cut into pieces each drawn in one font: the first of `choice` that has the character."""
    piece, current = "", choice.paths[0]
    for character in text:
        path = next((p for p in choice.paths if character in _coverage(str(p))), choice.paths[0])
        if piece and path != current:
            yield piece, current
            piece = ""
        piece, current = piece + character, path
    if piece:
        yield piece, current


def properties(choice: FontChoice, size: float):
    """matplotlib font properties for `choice`: a family list it falls back along, glyph by glyph.

    Each file is registered under a name of its own, in one plain style that every text asks for, so
    the file is what is drawn even when its family is installed in other weights too (a user's
    DejaVuSans-Bold.ttf is not DejaVu Sans Book) and whatever the user's rcParams say.
    """
    from matplotlib import font_manager

    with _LOCK:
        for path in choice.paths:
            if str(path) not in _REGISTERED:
                entry = font_manager.ttfFontProperty(font_manager.get_font(path))
                _REGISTERED[str(path)] = name = f"mieruka font {len(_REGISTERED) + 1}"
                plain = dataclasses.replace(entry, name=name, **_PLAIN)
                font_manager.fontManager.ttflist.append(plain)
        names = [_REGISTERED[str(path)] for path in choice.paths]
    return font_manager.FontProperties(family=names, size=size, **_PLAIN)


_PLAIN = {"style": "normal", "variant": "normal", "weight": "normal", "stretch": "normal"}


# ---- one line of text drawn by Pillow in the fonts of a choice --------------------------------------

ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"  # stands for what :func:`shorten` leaves out; DejaVu Sans has it


_NO_LINE_START = frozenset("、。，．,.:;!?！？)）]］}｝」』】〕〉》ー…")


def face(path: Path, size: int):
    """Pillow's FreeType face of a font file at `size` pixels: loaded once per file, size and thread."""
    return _face(str(path), size, threading.get_ident())


@functools.lru_cache(maxsize=128)
def _face(path: str, size: int, thread: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def measure(text: str, choice: FontChoice, size: int) -> tuple[float, int, int]:
    """The width of one line of `text` at `size` pixels, and the ascent and descent of a line in these
    fonts (the same for every line, whatever its characters, so lines stack evenly)."""
    width = sum(face(path, size).getlength(piece) for piece, path in runs(text, choice))
    metrics = [face(path, size).getmetrics() for path in choice.paths]
    return width, max(m[0] for m in metrics), max(m[1] for m in metrics)


def draw_line(pen, xy: tuple[float, float], text: str, choice: FontChoice, size: int, fill) -> None:
    """Draw one line of `text` on an ImageDraw `pen`, its left end at x and its baseline at y."""
    x, y = xy
    for piece, path in runs(text, choice):
        font = face(path, size)
        pen.text((x, y), piece, font=font, fill=fill, anchor="ls")
        x += font.getlength(piece)


def shorten(text: str, width: float, choice: FontChoice, size: int) -> str:
    """`text` if it fits in `width` pixels, else its start and end around an ellipsis: a file name keeps
    its suffix, a caption its probability. Choose the fonts with :data:`ELLIPSIS` in the text.

    >>> shorten("a_very_long_file_name.jpg", 130, choose("a_very_long_file_name.jpg" + ELLIPSIS), 12)
    'a_very_lo…name.jpg'
    """
    if measure(text, choice, size)[0] <= width:
        return text

    def cut(kept: int) -> str:
        return text[: (kept + 1) // 2] + ELLIPSIS + text[len(text) - kept // 2 :]

    low, high = 0, len(text) - 1  # characters kept; none kept still shows the ellipsis
    while low < high:
        middle = (low + high + 1) // 2
        if measure(cut(middle), choice, size)[0] <= width:
            low = middle
        else:
            high = middle - 1
    return cut(low)


def wrap(text: str, width: float, choice: FontChoice, size: int) -> list[str]:
    """`text` on as many lines as it takes to fit in `width` pixels: broken at a space where one falls
    on the line, else between characters (Japanese has no spaces), never before a closing mark such as
    、 or ）; nothing is left out."""
    lines, rest = [], text.strip()
    while rest:
        if measure(rest, choice, size)[0] <= width:
            lines.append(rest)
            break
        low, high = 1, len(rest)  # the longest start that fits; one character at least
        while low < high:
            middle = (low + high + 1) // 2
            if measure(rest[:middle], choice, size)[0] <= width:
                low = middle
            else:
                high = middle - 1
        space = rest.rfind(" ", 1, low + 1)
        end = space if space > 0 else low
        while 1 < end < len(rest) and rest[end] in _NO_LINE_START:  # 、 and ） close the line before
            end -= 1
        lines.append(rest[:end].rstrip())
        rest = rest[end:].lstrip()
    return lines


@functools.lru_cache(maxsize=1)
def dejavu_sans() -> Path:
    """matplotlib's own DejaVu Sans: Latin, Greek, Cyrillic and many symbols."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def japanese() -> Path | None:
    """IPAexGothic from the matplotlib-fontja package (a dependency)."""
    return packaged(*JAPANESE)


def korean() -> Path | None:
    """NanumGothic from the koreanize-matplotlib package, where the `korean` extra is installed."""
    return packaged(*KOREAN)


def chinese() -> Path | None:
    """Noto Sans CJK SC from the mplfonts package, where the `chinese` extra is installed."""
    return packaged(*CHINESE)


@functools.lru_cache(maxsize=1)
def script_fonts() -> tuple[Path, ...]:
    """The regular face of each installed fontpkg font package (fontpkg-noto-sans-thai and the like,
    as the `fonts` extra installs), found from their entry points without importing them."""
    found = []
    for entry in sorted(importlib.metadata.entry_points(group=FONTPKG), key=lambda e: e.name):
        spec = importlib.util.find_spec(entry.value) if entry.value.isidentifier() else None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = _regular_face(Path(folder))
            if path is not None:
                found.append(path)
                break
    return tuple(found)


def _regular_face(folder: Path) -> Path | None:
    """The upright, regular-weight (or variable) font file a fontpkg package lists in its metadata."""
    try:
        files = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["files"]
        ranked = sorted(
            (f for f in files if f.get("style", "normal") == "normal"),
            key=lambda f: (not f.get("variable", False) and f.get("weight") != 400, str(f["path"])),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    for entry in ranked:
        path = folder / entry["path"]
        if path.is_file() and path.suffix.lower() in (".ttf", ".otf"):
            return path
    return None


@functools.lru_cache(maxsize=4)
def packaged(package: str, file: str) -> Path | None:
    """A font file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / file
        if path.is_file():
            return path
    return None


HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7A3), (0xD7B0, 0xD7FF))


def is_hangul(character: str) -> bool:
    """Korean letters: syllables, jamo and compatibility jamo (the blocks in :data:`HANGUL`)."""
    return any(low <= ord(character) <= high for low, high in HANGUL)


def is_han(character: str) -> bool:
    """A Chinese character (kanji, hanja): a CJK unified or compatibility ideograph."""
    return unicodedata.name(character, "").startswith(
        ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")
    )


def _is_kana(character: str) -> bool:
    return unicodedata.name(character, "").startswith(("HIRAGANA", "KATAKANA"))


def _script(character: str) -> str:
    """The script a character belongs to, as the first word of its Unicode name (THAI, TAMIL, ...)."""
    return unicodedata.name(character, "?").split(" ", 1)[0]


def _reads_as_chinese(characters: set[str]) -> bool:
    """Han characters that the Japanese font lacks and no kana: a Chinese text, to be drawn all in the
    Chinese font; Japanese text, and Han the Japanese font has, stay in IPAexGothic."""
    if chinese() is None or any(_is_kana(c) for c in characters):
        return False
    han = {c for c in characters if is_han(c)}
    japanese_font = japanese()
    return bool(han - (_coverage(str(japanese_font)) if japanese_font else frozenset()))


@functools.lru_cache(maxsize=32)
def _coverage(path: str) -> frozenset[str]:
    """The characters a font file has (face 0 of a collection)."""
    return frozenset(map(chr, _charmap(path)))


def _charmap(path: str) -> dict[int, int]:
    from matplotlib.ft2font import FT2Font

    return FT2Font(path).get_charmap()


_LOCK = threading.RLock()
_REGISTERED: dict[str, str] = {}  # font file -> the family name it has in matplotlib
_SYSTEM_CHOICE: dict[str, Path | None] = {}  # character -> the first system font that has it
_WARNED: set[str] = set()  # characters a MissingGlyphsWarning has named in this process


@functools.lru_cache(maxsize=1)
def _system_fonts() -> list[str]:
    from matplotlib import font_manager

    return sorted(font_manager.findSystemFonts())


def _from_system(characters: set[str]) -> dict[str, Path | None]:
    """For each character the first system font that has it; each font's map is read once per new character."""
    with _LOCK:
        unknown = characters - _SYSTEM_CHOICE.keys()
        for path in _system_fonts() if unknown else []:
            try:
                charmap = _charmap(path)
            except (OSError, RuntimeError):
                continue
            found = {c for c in unknown if ord(c) in charmap}
            _SYSTEM_CHOICE.update(dict.fromkeys(found, Path(path)))
            unknown -= found
            if not unknown:
                break
        _SYSTEM_CHOICE.update(dict.fromkeys(unknown))
        return {c: _SYSTEM_CHOICE[c] for c in characters}
