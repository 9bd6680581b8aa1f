"""Contact sheets: tiles where the layout says, captions in any script, pages written as they fill."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mieruka.fonts import ELLIPSIS, choose, measure
from mieruka.sheet import MAT, ContactSheet, contact_sheet, page_rows, sheet_layout

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def _tiles(sizes=((48, 48), (640, 480), (30, 300), (4000, 500), (256, 256))) -> list[Image.Image]:
    return [Image.new("RGB", size, COLOURS[k % len(COLOURS)]) for k, size in enumerate(sizes)]


def _ink(region: np.ndarray) -> np.ndarray:
    return region.astype(int).sum(-1) < 3 * 128


def test_tiles_go_where_the_layout_says_with_their_caption_under_them():
    tiles = _tiles()
    captions = [f"photo_{k}.jpg\nlabel {k}  0.{k}00" for k in range(len(tiles))]
    page = np.asarray(contact_sheet(tiles, captions, columns=2, tile=128))
    layout = sheet_layout(2, 3, 128)
    assert page.shape[:2][::-1] == layout.size(5)  # 3 rows of 2, the last one half full
    for k, colour in enumerate(COLOURS):
        x, y = layout.corner(k)
        assert tuple(page[y + 64, x + 64]) == colour  # each picture fitted, centred in its square
        caption = _ink(page[y + layout.tile : y + layout.cell[1], x : x + layout.tile])
        rows = np.flatnonzero(caption.any(1))
        assert len(rows) and rows.max() < 2 * layout.line + 4  # two lines right under the picture
    wide = layout.corner(3)  # a 4000x500 panorama: a strip in the middle, the mat above and below
    assert (
        tuple(page[wide[1] + 2, wide[0] + 64]) == MAT and tuple(page[wide[1] + 64, wide[0] + 2]) == COLOURS[3]
    )
    x, y = layout.corner(5)  # no sixth tile: paper
    assert (page[y : y + layout.tile, x : x + layout.tile] == 255).all()


def test_captions_in_japanese_are_drawn_and_long_ones_shortened_within_their_tile():
    long = "ゴールデン・レトリーバー（長毛種、スコットランド原産の大型の鳥猟犬）  0.731"
    captions = ["犬.jpg\n犬  0.9", "猫.jpg\n猫  0.8", "a_very_long_folder/a_very_long_file_name.jpg\n" + long]
    page = np.asarray(contact_sheet(_tiles()[:3], captions, columns=3, tile=128))
    layout = sheet_layout(3, 1, 128)

    def caption(k: int) -> np.ndarray:
        x, y = layout.corner(k)
        return _ink(page[y + layout.tile : y + layout.cell[1], x : x + layout.cell[0]])

    assert not np.array_equal(caption(0), caption(1))  # 犬 and 猫: two glyphs, not two empty boxes
    third = caption(2)
    assert third.any() and not third[:, layout.tile :].any()  # nothing past the tile's right edge
    choice = choose(long + ELLIPSIS)
    assert measure(long, choice, layout.text)[0] > layout.tile  # it had to be shortened


def test_pages_are_written_as_they_fill_and_the_last_one_is_cut_to_its_rows(tmp_path):
    tiles = _tiles()
    with ContactSheet(tmp_path, columns=3, rows=2, tile=64, title="resnet18 · gradcam") as sheet:
        landed = []
        for k in range(14):
            landed.append(sheet.add(tiles[k % 5], f"{k}.jpg\n猫  0.5").name)
            if k == 5:  # six tiles fill page 1: on disk before the run ends, and out of memory
                assert (tmp_path / "sheet-001.png").is_file() and sheet._page is None
    assert landed == ["sheet-001.png"] * 6 + ["sheet-002.png"] * 6 + ["sheet-003.png"] * 2
    assert [path.name for path in sheet.pages] == ["sheet-001.png", "sheet-002.png", "sheet-003.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [path.name for path in sheet.pages]
    first, last = (Image.open(path) for path in (sheet.pages[0], sheet.pages[2]))
    layout = sheet.layout
    assert first.size == layout.size(6) and last.size == layout.size(2) and last.width == first.width


def test_a_sheet_of_one_short_page_is_as_narrow_as_its_tiles_and_keeps_its_heading(tmp_path):
    title = "efficientnet_lite0 · gradcam, layercam · bn2  [random weights]"
    with ContactSheet(tmp_path, suffix=".jpg", title=title) as sheet:
        sheet.add(_tiles()[0], "a.jpg\ntabby  0.731")
    page = Image.open(sheet.pages[0])
    assert sheet.pages[0].name == "sheet-001.jpg" and page.format == "JPEG"
    assert page.size == sheet.layout.size(1, narrow=True) and page.width < sheet.layout.size(6)[0]
    heading = _ink(np.asarray(page)[: sheet.layout.corner(0)[1]])
    assert heading.any() and not heading[:, -sheet.layout.margin // 2 :].any()  # shortened, not cut


def test_rows_per_page_keep_pages_bounded_whatever_the_columns():
    assert [page_rows(columns) for columns in (1, 4, 6, 10, 32)] == [12, 12, 8, 5, 2]
    layout = sheet_layout(32)
    assert max(layout.size(32 * layout.rows)) < 10_000


def test_a_page_that_cannot_be_written_leaves_nothing_and_says_why(tmp_path):
    (tmp_path / "taken").write_text("a file where the pages' folder should be")
    sheet = ContactSheet(tmp_path / "taken", columns=1, rows=1, tile=32)
    with pytest.raises(OSError):
        sheet.add(_tiles()[0], "a.jpg")
    assert sheet.pages == [] and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: contact_sheet(_tiles()[:2], ["one caption"]), "one caption per picture"),
        (lambda: sheet_layout(0), "at least 1 column"),
        (lambda: ContactSheet(".", suffix=".gif"), r"\.png or \.jpg"),
    ],
)
def test_wrong_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_tile_caption_says_when_its_map_shows_no_place():
    from mieruka.batch import _shown

    record = {"label": "tabby", "probability": 0.7312, "empty": False, "flat": True}
    assert _shown(record, "gradcam") == "tabby  0.731  [flat map]"
    several = {
        "label": "tabby",
        "probability": None,
        "empty": {"gradcam": True, "hirescam": False},
        "flat": {},
    }
    assert _shown(several, "gradcam") == "tabby  [empty map]" and _shown(several, "hirescam") == "tabby"
