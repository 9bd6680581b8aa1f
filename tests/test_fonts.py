"""Labels in any script are drawn as glyphs, not as empty boxes, without touching the user's rcParams."""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from mieruka import fonts
from mieruka.fonts import FontError, MissingGlyphsWarning, check_font, choose
from mieruka.images import Preprocess
from mieruka.render import methods_panel, panel, show_on_photo

NO_FONT_HAS = "\U0010fffd"  # the last private-use code point: drawn as □
BOLD = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


@pytest.fixture(autouse=True)
def _nothing_warned_yet(monkeypatch):
    """Each test starts as a new process does: no character named by an earlier warning."""
    monkeypatch.setattr(fonts, "_WARNED", set())


def _scene():
    generator = torch.Generator().manual_seed(0)
    photo = Image.fromarray(
        torch.randint(0, 256, (90, 120, 3), dtype=torch.uint8, generator=generator).numpy()
    )
    raw = torch.rand(7, 7, generator=generator)
    return photo, raw, Preprocess(96, 80).crop_box(photo.size)


def test_japanese_gets_the_packaged_font_and_latin_stays_in_dejavu_sans():
    assert [p.name for p in choose("tabby  (p = 0.731)").paths] == ["DejaVuSans.ttf"]
    assert [p.name for p in choose("犬  (p = 0.731)").paths] == ["DejaVuSans.ttf", "ipaexg.ttf"]
    assert [p.name for p in choose("犬", BOLD).paths] == ["DejaVuSans-Bold.ttf", "ipaexg.ttf"]
    choice = choose(f"猫{NO_FONT_HAS}\u0378")  # private use, unassigned
    assert choice.missing == f"{NO_FONT_HAS}\u0378" and choice.drawable(f"猫{NO_FONT_HAS}") == "猫□"


def test_korean_gets_nanum_gothic_from_the_korean_extra():
    """The dev extra installs `mieruka[korean]`; its font is the one Hangul needs after IPAexGothic."""
    choice = choose("고양이 猫 (p = 0.731)")
    assert [p.name for p in choice.paths] == ["DejaVuSans.ttf", "ipaexg.ttf", "NanumGothic.ttf"]
    assert choice.missing == ""
    assert [path.name for _, path in fonts.runs("고양이 猫", choice)] == [
        "NanumGothic.ttf",
        "DejaVuSans.ttf",
        "ipaexg.ttf",
    ]


def test_without_nanum_gothic_hangul_comes_from_the_chinese_font(monkeypatch):
    """Noto Sans CJK SC has Hangul as well."""
    monkeypatch.setattr(fonts, "korean", lambda: None)
    choice = choose("고양이")
    assert choice.missing == "" and choice.paths[-1].name == "NotoSansCJKsc-Regular.otf"


def test_without_a_korean_font_the_warning_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(fonts, "korean", lambda: None)
    monkeypatch.setattr(fonts, "chinese", lambda: None)
    monkeypatch.setattr(fonts, "_from_system", lambda characters: dict.fromkeys(characters))
    photo, raw, box = _scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show_on_photo(photo, raw, box, title="고양이")
        show_on_photo(photo, raw, box, title=f"cat {NO_FONT_HAS}")
    korean, other = (str(w.message) for w in caught)
    assert "U+ACE0" in korean and "mieruka[korean]" in korean and "--font" in korean
    assert "mieruka[korean]" not in other and "--font" in other


def test_chinese_that_no_font_has_is_named_with_the_extra_that_has_it(monkeypatch):
    monkeypatch.setattr(fonts, "chinese", lambda: None)
    monkeypatch.setattr(fonts, "_from_system", lambda characters: dict.fromkeys(characters))
    photo, raw, box = _scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show_on_photo(photo, raw, box, title="鸟 猫")  # simplified 鸟: not in IPAexGothic; 猫 is
    (message,) = (str(w.message) for w in caught)
    assert "鸟 (U+9E1F)" in message and "猫" not in message and "mieruka[chinese]" in message


def test_chinese_is_drawn_in_the_chinese_font_throughout_and_japanese_stays_japanese():
    """The dev extra installs `mieruka[fonts]`: a label with a simplified character IPAexGothic lacks
    is Chinese, so its 猫 is not drawn in Japanese letterforms beside a Chinese 鸟; kana make it Japanese."""
    chinese = choose("小鸟 猫 (p = 0.5)")
    assert [p.name for p in chinese.paths] == ["DejaVuSans.ttf", "NotoSansCJKsc-Regular.otf"]
    assert {path.name for piece, path in fonts.runs("小鸟 猫", chinese) if piece.strip()} == {
        "NotoSansCJKsc-Regular.otf"
    }
    japanese = choose("ねこ 猫 鸟")
    assert [(piece, path.name) for piece, path in fonts.runs("ねこ 猫 鸟", japanese) if piece.strip()] == [
        ("ねこ", "ipaexg.ttf"),
        ("猫", "ipaexg.ttf"),
        ("鸟", "NotoSansCJKsc-Regular.otf"),  # only where the Japanese font has no glyph
    ]
    assert [p.name for p in choose("犬 猫").paths] == ["DejaVuSans.ttf", "ipaexg.ttf"]  # kanji as well


@pytest.mark.parametrize(
    "word, font",
    [
        ("แมวน้ำ", "NotoSansThai"),
        ("बिल्ली", "NotoSansDevanagari"),
        ("பூனை", "NotoSansTamil"),
        ("పిల్లి", "NotoSansTelugu"),
        ("ឆ្មា", "NotoSansKhmer"),
    ],
)
def test_scripts_of_the_fonts_extra_get_their_noto_font(word, font):
    choice = choose(f"{word} (p = 0.5)")
    assert choice.missing == ""
    assert [(piece, path.name.split("[")[0]) for piece, path in fonts.runs(word, choice)] == [(word, font)]


def test_a_script_the_fonts_extra_covers_is_named_in_the_warning_when_it_is_missing(monkeypatch):
    monkeypatch.setattr(fonts, "script_fonts", lambda: ())
    monkeypatch.setattr(fonts, "_from_system", lambda characters: dict.fromkeys(characters))
    photo, raw, box = _scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show_on_photo(photo, raw, box, title="แมว")
        show_on_photo(photo, raw, box, title="বিড়াল")  # Bengali: no font in the extra
    thai, bengali = (str(w.message) for w in caught)
    assert "U+0E41" in thai and "Thai with pip install 'mieruka[fonts]'" in thai and "--font" in thai
    assert "mieruka[fonts]" not in bengali and "--font" in bengali


def test_thai_and_devanagari_are_shaped_not_drawn_letter_by_letter():
    """Devanagari's vowel sign i is drawn before the consonant it follows in the text: a shaped word
    is narrower than its letters side by side, and differs from them."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    def ink(text: str, each: bool) -> np.ndarray:
        choice = choose(text)
        picture = PILImage.new("L", (400, 80), 255)
        pen, x = ImageDraw.Draw(picture), 5.0
        for piece in list(text) if each else [text]:
            fonts.draw_line(pen, (x, 60), piece, choice, 40, 0)
            x += fonts.measure(piece, choice, 40)[0]
        return np.asarray(picture) < 128

    for word in ("बिल्ली", "แมวน้ำ"):
        shaped, apart = ink(word, False), ink(word, True)
        assert not np.array_equal(shaped, apart), word
        assert np.flatnonzero(shaped.any(0)).max() <= np.flatnonzero(apart.any(0)).max(), word


def _runs(flags: np.ndarray, gap: int = 1) -> list[slice]:
    """The runs of True in a 1-D mask, joined across gaps shorter than `gap`."""
    found: list[slice] = []
    for index in np.flatnonzero(flags):
        if found and index - found[-1].stop < gap:
            found[-1] = slice(found[-1].start, index + 1)
        else:
            found.append(slice(index, index + 1))
    return found


def _word(picture: np.ndarray, line: int, word: int) -> np.ndarray:
    """The ink of one word of text above a panel's pictures: lines top to bottom, words left to right."""
    crossing = (picture != 255).any(-1).mean(1) > 0.2  # rows through the pictures
    ink = picture[: int(np.argmax(crossing))].astype(int).sum(-1) < 3 * 160
    rows = _runs(ink.any(1))[line]
    columns = _runs(ink[rows].any(0), gap=8)[word]
    word_rows = _runs(ink[rows, columns].any(1), gap=100)[0]
    return ink[rows, columns][word_rows]


def _differ(a: np.ndarray, b: np.ndarray) -> bool:
    high, wide = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    return not np.array_equal(
        np.pad(a, ((0, high - a.shape[0]), (0, wide - a.shape[1]))),
        np.pad(b, ((0, high - b.shape[0]), (0, wide - b.shape[1]))),
    )


@pytest.mark.parametrize("where", ["title", "column", "method"])
def test_panels_draw_each_kanji_as_its_own_glyph(where):
    """犬, 猫, 鳥, two Hangul syllables and a character no font has, each drawn alone: six different
    glyphs.

    Before fonts.py all four came out as the same missing-glyph box.
    """
    photo, raw, box = _scene()

    def glyph(character: str) -> np.ndarray:
        if where == "title":
            picture = np.asarray(show_on_photo(photo, raw, box, style="panel", title=character))
            return _word(picture, 0, 0)
        if where == "column":
            picture = panel(photo, None, None, "tabby", columns=[(character, photo), ("overlay", photo)])
        else:
            picture = np.asarray(methods_panel(photo, {character: raw, "gradcam": raw}, box, "tabby"))
        return _word(picture, 1, 1)  # under the title: photo | character | the other column

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingGlyphsWarning)
        glyphs = {character: glyph(character) for character in ["犬", "猫", "鳥", "개", "새", NO_FONT_HAS]}
    for character, ink in glyphs.items():
        assert 5 <= ink.shape[0] <= 20 and 5 <= ink.shape[1] <= 20, (character, ink.shape)  # one glyph
    for (a, first), (b, second) in itertools.combinations(glyphs.items(), 2):
        assert _differ(first, second), f"{a!r} and {b!r} are drawn alike"


def test_one_warning_names_every_character_no_font_has_once():
    photo, raw, box = _scene()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        methods_panel(photo, {f"a{NO_FONT_HAS}": raw, "b\u0378": raw}, box, f"犬 {NO_FONT_HAS}")
        show_on_photo(photo, raw, box, title="猫\u0378\u0378")  # named already: no second warning
        show_on_photo(photo, raw, box, title="\u0379\u0379 \u0378")
    assert [w.category for w in caught] == [MissingGlyphsWarning, MissingGlyphsWarning]
    first, second = (str(w.message) for w in caught)
    assert "U+10FFFD" in first and "U+0378" in first and "--font" in first and "犬" not in first
    assert second.count("U+0379") == 1 and "U+0378" not in second
    assert "Chinese" not in first


def test_a_font_file_is_checked_and_used(tmp_path):
    photo, raw, box = _scene()
    (tmp_path / "notes.ttf").write_text("not a font")
    for path, message in [
        (tmp_path / "nowhere.ttf", "font .*nowhere.ttf: no such file"),
        (tmp_path / "notes.ttf", "font .*notes.ttf: not a font file"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(FontError, match=message):
            show_on_photo(photo, raw, box, title="tabby", font=path)
    assert check_font(BOLD, "--font") == BOLD
    for style in ("overlay", "panel"):
        regular = np.asarray(show_on_photo(photo, raw, box, style=style, title="tabby"))
        bold = np.asarray(show_on_photo(photo, raw, box, style=style, title="tabby", font=BOLD))
        if style == "overlay":
            assert regular.shape == bold.shape
        # a panel is laid out around its letters: the wider bold ones may widen it
        assert regular.shape != bold.shape or not np.array_equal(regular, bold), style


def test_drawing_leaves_rcparams_alone_and_never_imports_the_font_packages():
    """matplotlib-fontja and koreanize-matplotlib set rcParams when imported: their font files are used
    without importing them."""
    photo = _scene()[0]
    before = {key: matplotlib.rcParams[key] for key in ("font.family", "font.sans-serif")}
    panel(photo, None, None, "犬  (p = 0.731)", columns=[("猫", photo), ("고양이", photo)])
    assert {key: matplotlib.rcParams[key] for key in before} == before
    assert "matplotlib_fontja" not in sys.modules and "koreanize_matplotlib" not in sys.modules
    panel(photo, None, None, "小鸟 · แมว", columns=[("बिल्ली", photo)])
    assert {key: matplotlib.rcParams[key] for key in before} == before
    assert not {"mplfonts", "fontpkg", "fontpkg_noto_sans_thai"} & set(sys.modules)


def test_the_fonts_extra_named_in_warnings_is_the_one_pyproject_installs():
    """A warning advises `pip install 'mieruka[fonts]'` for the scripts in FONTS_EXTRA_SCRIPTS: exactly
    those whose fontpkg package the extra lists."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["fonts"]
    packaged = {
        item.split(">")[0].removeprefix("fontpkg-noto-sans-").upper()
        for item in extra
        if item.startswith("fontpkg-noto-sans-")
    }
    assert packaged == set(fonts.FONTS_EXTRA_SCRIPTS)
