"""Contact sheets: a run's pictures as captioned tiles in a grid, on pages of bounded size.

A folder of 10,000 photos makes pages of a few dozen tiles each, not one gigantic image: a
:class:`ContactSheet` keeps one page in memory, pastes each tile as it comes and writes the page
(atomically) as soon as it is full. Captions are drawn in the fonts of :mod:`mieruka.fonts`, so labels
in any script show; a line too long for its tile keeps its start and its end around an ellipsis.

>>> contact_sheet([overlay_a, overlay_b], ["a.jpg\\ntabby  0.731", "b.jpg\\n猫  0.402"], columns=2).save("s.png")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from . import fonts
from .panels import fit
from .render import save_image, to_image

TILE = 256  # each picture is fitted into a square of this many pixels
COLUMNS = 6
TILES_PER_PAGE = 48  # about: whole rows of `columns`, 2 to 12 of them
CAPTION_LINES = 2
PAPER, INK, MAT = (255, 255, 255), (0, 0, 0), (236, 236, 236)


def page_rows(columns: int) -> int:
    """Rows a page holds with `columns` tiles a row: about :data:`TILES_PER_PAGE` tiles, 2 to 12 rows."""
    return max(2, min(12, -(-TILES_PER_PAGE // columns)))


@dataclass(frozen=True)
class SheetLayout:
    """Where tiles go on a page, in pixels: a heading line, then rows of pictures with captions under."""

    columns: int
    rows: int
    tile: int  # the square each picture is fitted into
    text: int  # letter size of the captions
    heading: int  # letter size of the heading; 0: no heading
    line: int  # height of a caption line
    ascent: int  # from a caption line's top to its baseline
    heading_line: int  # height of the heading line (0 without one)
    margin: int
    gap: int

    @property
    def cell(self) -> tuple[int, int]:
        """(width, height) of one tile with its caption, the gap after it included."""
        return self.tile + self.gap, self.tile + 2 + CAPTION_LINES * self.line + self.gap

    def corner(self, index: int) -> tuple[int, int]:
        """The top-left corner of the `index`-th picture square on its page."""
        row, column = divmod(index % (self.columns * self.rows), self.columns)
        top = self.margin + (self.heading_line + self.gap if self.heading else 0)
        return self.margin + column * self.cell[0], top + row * self.cell[1]

    def size(self, count: int, narrow: bool = False) -> tuple[int, int]:
        """(width, height) of a page that holds `count` tiles: as tall as its rows; `narrow`: as wide as
        its tiles when they do not fill a row (a sheet of one page)."""
        rows = max(1, min(self.rows, -(-count // self.columns)))
        columns = max(1, min(self.columns, count)) if narrow else self.columns
        width = 2 * self.margin + columns * self.cell[0] - self.gap
        return width, self.corner(0)[1] + rows * self.cell[1] - self.gap + self.margin


def sheet_layout(
    columns: int = COLUMNS,
    rows: int | None = None,
    tile: int = TILE,
    title: str = "",
    font: str | os.PathLike | None = None,
) -> SheetLayout:
    """The layout of pages of `columns` x `rows` tiles (rows: :func:`page_rows`) of `tile` pixels."""
    if columns < 1:
        raise ValueError(f"a contact sheet needs at least 1 column, got {columns}")
    if rows is not None and rows < 1:
        raise ValueError(f"a contact sheet page needs at least 1 row, got {rows}")
    if tile < 16:
        raise ValueError(f"tiles of at least 16 pixels, got {tile}")
    text = max(11, round(tile / 20))
    heading = round(text * 1.25) if title else 0
    choice = fonts.choose(title or "x", font)
    _, ascent, descent = fonts.measure("", choice, text)
    heading_line = sum(fonts.measure("", choice, heading)[1:]) if heading else 0
    return SheetLayout(
        columns=columns,
        rows=rows or page_rows(columns),
        tile=tile,
        text=text,
        heading=heading,
        line=ascent + descent,
        ascent=ascent,
        heading_line=heading_line,
        margin=max(8, tile // 16),
        gap=max(6, tile // 24),
    )


class _Page:
    """One page being filled: a canvas of the full page, cut to the tiles it holds when done."""

    def __init__(self, layout: SheetLayout, title: str, font: str | os.PathLike | None) -> None:
        self.layout, self.title, self.font, self.count = layout, title, font, 0
        self.canvas = Image.new("RGB", layout.size(layout.columns * layout.rows), PAPER)
        self.pen = ImageDraw.Draw(self.canvas)

    @property
    def full(self) -> bool:
        return self.count >= self.layout.columns * self.layout.rows

    def add(self, picture: Image.Image, caption: str) -> None:
        layout = self.layout
        x, y = layout.corner(self.count)
        self.pen.rectangle((x, y, x + layout.tile - 1, y + layout.tile - 1), fill=MAT)
        shown = fit(to_image(picture).convert("RGB"), (layout.tile, layout.tile))
        self.canvas.paste(
            shown, (x + (layout.tile - shown.width) // 2, y + (layout.tile - shown.height) // 2)
        )
        choice = fonts.choose(caption + fonts.ELLIPSIS, self.font)
        fonts.warn_missing(choice, stacklevel=4)
        for number, line in enumerate(choice.drawable(caption).split("\n")[:CAPTION_LINES]):
            line = fonts.shorten(line, layout.tile, choice, layout.text)
            baseline = y + layout.tile + 2 + number * layout.line + layout.ascent
            fonts.draw_line(self.pen, (x, baseline), line, choice, layout.text, INK)
        self.count += 1

    def image(self, narrow: bool = False) -> Image.Image:
        """The page cut to its tiles, headed with its title (shortened to the page's width)."""
        layout, page = self.layout, self.canvas.crop((0, 0, *self.layout.size(self.count, narrow)))
        if self.title and layout.heading:
            choice = fonts.choose(self.title + fonts.ELLIPSIS, self.font)
            fonts.warn_missing(choice, stacklevel=4)
            line = choice.drawable(self.title).replace("\n", " ")
            line = fonts.shorten(line, page.width - 2 * layout.margin, choice, layout.heading)
            ascent = fonts.measure("", choice, layout.heading)[1]
            pen = ImageDraw.Draw(page)
            fonts.draw_line(pen, (layout.margin, layout.margin + ascent), line, choice, layout.heading, INK)
        return page


def contact_sheet(
    pictures: list[Image.Image],
    captions: list[str],
    *,
    columns: int = COLUMNS,
    tile: int = TILE,
    title: str = "",
    font: str | os.PathLike | None = None,
) -> Image.Image:
    """One page with every picture fitted into a `tile`-pixel square, `columns` to a row, its caption
    (lines split at newlines, two at most) under it. For a run of many photos use :class:`ContactSheet`,
    which pages them."""
    if len(pictures) != len(captions):
        raise ValueError(
            f"one caption per picture: got {len(pictures)} pictures and {len(captions)} captions"
        )
    columns = max(1, min(columns, len(pictures)))
    layout = sheet_layout(columns, max(1, -(-len(pictures) // columns)), tile, title, font)
    page = _Page(layout, title, font)
    for picture, caption in zip(pictures, captions):
        page.add(picture, caption)
    return page.image(narrow=True)


class ContactSheet:
    """Pages of captioned tiles, written as they fill: `folder`/`name`-001.png, -002.png, ...

    Memory holds one page, whatever the number of tiles. Each page is written atomically (a temporary
    file renamed), in the format of `suffix` (.png or .jpg); :meth:`close` writes the last, partial one.

    >>> with ContactSheet("out", columns=6, title="resnet18 - gradcam") as sheet:
    ...     for picture, caption in tiles:
    ...         page = sheet.add(picture, caption)  # the page it lands on
    >>> sheet.pages
    [PosixPath('out/sheet-001.png'), PosixPath('out/sheet-002.png')]
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        name: str = "sheet",
        suffix: str = ".png",
        columns: int = COLUMNS,
        rows: int | None = None,
        tile: int = TILE,
        title: str = "",
        font: str | os.PathLike | None = None,
    ) -> None:
        if suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise ValueError(f"contact sheet pages are .png or .jpg, got {suffix!r}")
        self.folder, self.name, self.suffix = Path(folder), name, suffix
        self.title, self.font = title, font
        self.layout = sheet_layout(columns, rows, tile, title, font)
        self.pages: list[Path] = []  # the pages written so far
        self._page: _Page | None = None

    def path(self, number: int) -> Path:
        """The file of page `number` (from 1)."""
        return self.folder / f"{self.name}-{number:03d}{self.suffix}"

    def add(self, picture: Image.Image, caption: str) -> Path:
        """Add one tile; returns the file of the page it lands on (written once that page is full)."""
        if self._page is None:
            number = len(self.pages) + 1
            title = f"{self.title}  (page {number})" if self.title else ""
            self._page = _Page(self.layout, title, self.font)
        page = self._page
        page.add(picture, caption)
        path = self.path(len(self.pages) + 1)
        if page.full:
            self._write(page)
        return path

    def close(self) -> list[Path]:
        """Write the last page if it holds any tile; the pages written."""
        if self._page is not None and self._page.count:
            self._write(self._page, narrow=not self.pages)
        return self.pages

    def _write(self, page: _Page, narrow: bool = False) -> None:
        """Write `page` as the next page; a page that cannot be written is dropped, and the error raised."""
        self._page = None
        path = self.path(len(self.pages) + 1)
        save_image(page.image(narrow), path)
        self.pages.append(path)

    def __enter__(self) -> ContactSheet:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
