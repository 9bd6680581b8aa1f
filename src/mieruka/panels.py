"""Panels: pictures side by side under a heading, with a colour bar, laid out in pixels, drawn by Pillow.

Every length follows the size the pictures are shown at, within readable bounds. Each picture is shown
256 to 512 pixels on its long side (a 48-pixel photo is enlarged pixel by pixel, a 12-megapixel one
reduced); letters are 1/22 of a picture's short side, never under 11 nor over 24 pixels; the colour
bar, margins and gaps follow the letters. A heading too wide for the panel is wrapped, never cut.

>>> layout = panel_layout((640, 480), 3, "tabby  (p = 0.731)", fonts.choose("tabby  (p = 0.731)"))
>>> layout.cell, layout.text, layout.size
((512, 384), 17, (1687, 479))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from . import fonts

SHOWN = (256, 512)  # the long side of each picture in a panel, in pixels: least and most
TEXT = (11, 24)  # letter sizes (the em; a capital is about 3/4 of it) in pixels: least and most
PER_ROW = 4
BAR_LABEL = "relevance"
TICKS = ((0.0, "0"), (0.5, "0.5"), (1.0, "1"))
PAPER, INK = (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class PanelLayout:
    """Where everything of a panel goes, in pixels from its top-left corner."""

    size: tuple[int, int]  # (width, height) of the panel
    cell: tuple[int, int]  # (width, height) each picture is shown at
    cells: tuple[tuple[int, int], ...]  # the top-left corner of each picture, in order
    text: int  # letter size of the pictures' labels and of the colour bar's
    heading: int  # letter size of the heading
    heading_lines: tuple[str, ...]  # the heading, wrapped to the panel's width
    margin: int
    gap: int
    bar: tuple[int, int, int, int]  # the colour bar's box (x0, y0, x1, y1), the ends exclusive
    ticks: tuple[tuple[float, str], ...]  # the values marked beside the bar and their labels
    bar_label: bool  # whether "relevance" fits along the bar


def panel_layout(
    picture_size: tuple[int, int],
    count: int,
    title: str,
    choice: fonts.FontChoice,
    per_row: int = PER_ROW,
) -> PanelLayout:
    """The layout of a panel of `count` pictures of (width, height) `picture_size`, at most `per_row`
    to a row, under `title` drawn in the fonts of `choice`."""
    if count < 1:
        raise ValueError(f"a panel needs at least one picture, got {count}")
    width, height = picture_size
    longest = max(width, height, 1)
    scale = min(max(longest, SHOWN[0]), SHOWN[1]) / longest
    cell = (max(1, round(width * scale)), max(1, round(height * scale)))
    text = min(max(round(min(cell) / 22), TEXT[0]), TEXT[1])
    margin, gap = text, max(4, round(text * 0.6))
    per_row = min(per_row, count)
    rows = -(-count // per_row)
    _, ascent, descent = fonts.measure("", choice, text)
    line = ascent + descent

    bar_width = min(max(round(text * 1.2), 10), 28)
    tick_room = (
        max(3, bar_width // 3) + 2 + math.ceil(max(fonts.measure(t, choice, text)[0] for _, t in TICKS))
    )
    bar_x = margin + per_row * cell[0] + (per_row - 1) * gap + gap
    total_width = bar_x + bar_width + tick_room + gap + line + margin

    heading, lines = round(text * 1.25), []
    if title.strip():
        lines = fonts.wrap(title, total_width - 2 * margin, choice, heading)
        smaller = fonts.wrap(title, total_width - 2 * margin, choice, text)
        if len(smaller) < len(lines):  # one size down rather than one more line
            heading, lines = text, smaller
    _, heading_ascent, heading_descent = fonts.measure("", choice, heading)
    top = margin + len(lines) * (heading_ascent + heading_descent) + (gap if lines else 0)

    cells = []
    for row in range(rows):
        picture_top = top + row * (line + gap // 2 + cell[1] + gap) + line + gap // 2
        for column in range(min(per_row, count - row * per_row)):
            cells.append((margin + column * (cell[0] + gap), picture_top))
    bar = (bar_x, cells[0][1], bar_x + bar_width, cells[-1][1] + cell[1])
    bar_height = bar[3] - bar[1]
    ticks = TICKS if bar_height >= 4 * line else (TICKS[0], TICKS[-1])
    return PanelLayout(
        size=(total_width, bar[3] + margin),
        cell=cell,
        cells=tuple(cells),
        text=text,
        heading=heading,
        heading_lines=tuple(lines),
        margin=margin,
        gap=gap,
        bar=bar,
        ticks=ticks,
        bar_label=fonts.measure(BAR_LABEL, choice, text)[0] <= bar_height,
    )


def compose(
    pictures: list[tuple[str, Image.Image]],
    title: str,
    colors: np.ndarray,
    *,
    per_row: int = PER_ROW,
    font: str | os.PathLike | None = None,
) -> Image.Image:
    """Labelled pictures side by side under `title`, with a colour bar of `colors` ((256, 3) uint8, a
    colormap's table) from 0 at the bottom to 1 at the top. Pictures are shown at the first one's size."""
    labels = [label for label, _ in pictures]
    choice = fonts.choose("\n".join([title, BAR_LABEL, *labels, fonts.ELLIPSIS]), font)
    fonts.warn_missing(choice, stacklevel=4)
    layout = panel_layout(pictures[0][1].size, len(pictures), choice.drawable(title), choice, per_row)
    canvas = Image.new("RGB", layout.size, PAPER)
    pen = ImageDraw.Draw(canvas)

    y = layout.margin
    for line in layout.heading_lines:
        width, ascent, descent = fonts.measure(line, choice, layout.heading)
        fonts.draw_line(pen, ((layout.size[0] - width) / 2, y + ascent), line, choice, layout.heading, INK)
        y += ascent + descent

    cell_width, cell_height = layout.cell
    for (label, picture), (x, top) in zip(pictures, layout.cells):
        shown = fit(picture.convert("RGB"), layout.cell)
        canvas.paste(shown, (x + (cell_width - shown.width) // 2, top + (cell_height - shown.height) // 2))
        label = fonts.shorten(choice.drawable(label).replace("\n", " "), cell_width, choice, layout.text)
        width, _, descent = fonts.measure(label, choice, layout.text)
        baseline = top - layout.gap // 2 - descent
        fonts.draw_line(pen, (x + (cell_width - width) / 2, baseline), label, choice, layout.text, INK)

    _colour_bar(canvas, pen, layout, colors, choice)
    return canvas


def _colour_bar(canvas, pen, layout: PanelLayout, colors: np.ndarray, choice: fonts.FontChoice) -> None:
    """The colormap from 0 (bottom) to 1 (top), its ticks and their values, and "relevance" along it."""
    x0, y0, x1, y1 = layout.bar
    steps = np.linspace(len(colors) - 1, 0, y1 - y0).round().astype(int)
    canvas.paste(
        Image.fromarray(np.ascontiguousarray(np.repeat(colors[steps][:, None], x1 - x0, 1))), (x0, y0)
    )
    tick = max(3, (x1 - x0) // 3)
    _, ascent, descent = fonts.measure("", choice, layout.text)
    right = x1
    for value, text in layout.ticks:
        y = round(y1 - 1 - value * (y1 - 1 - y0))
        pen.line([(x1, y), (x1 + tick - 1, y)], fill=INK)
        fonts.draw_line(pen, (x1 + tick + 2, y + (ascent - descent) / 2), text, choice, layout.text, INK)
        right = max(right, x1 + tick + 2 + math.ceil(fonts.measure(text, choice, layout.text)[0]))
    if layout.bar_label:
        width = math.ceil(fonts.measure(BAR_LABEL, choice, layout.text)[0])
        strip = Image.new("RGB", (width, ascent + descent), PAPER)
        fonts.draw_line(ImageDraw.Draw(strip), (0, ascent), BAR_LABEL, choice, layout.text, INK)
        upright = strip.transpose(Image.Transpose.ROTATE_90)  # read from the bottom up
        canvas.paste(upright, (right + layout.gap, (y0 + y1 - upright.height) // 2))


def fit(picture: Image.Image, box: tuple[int, int]) -> Image.Image:
    """The picture scaled to fit (width, height) `box`, its shape kept: enlarged pixel by pixel (a small
    photo shows its own pixels, not a blur), reduced with antialiasing."""
    scale = min(box[0] / picture.width, box[1] / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    if size == picture.size:
        return picture
    if scale > 1:
        return picture.resize(size, Image.Resampling.NEAREST)
    return picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
