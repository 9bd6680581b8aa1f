"""Colouring and drawing: lookup tables on tensors, overlays only where the model looked, safe writes."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from mieruka.fonts import choose, measure
from mieruka.images import CropBox, Preprocess
from mieruka.maps import normalize, to_photo
from mieruka.panels import panel_layout
from mieruka.render import (
    classic,
    colorize,
    draw_on_device,
    encode_jpeg_on_device,
    heatmap,
    overlay,
    panel,
    save_png,
    show_on_photo,
)


def test_colorize_matches_matplotlib():
    values = torch.linspace(0, 1, 256).view(16, 16)
    ours = colorize(values, "viridis").permute(1, 2, 0).numpy().astype(int)
    theirs = (matplotlib.colormaps["viridis"](values.numpy())[..., :3] * 255).round().astype(int)
    assert np.abs(ours - theirs).max() <= 1


def test_unknown_colormap_is_named():
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        colorize(torch.zeros(2, 2), "nope")


def _scene():
    photo = torch.full((3, 4, 6), 100, dtype=torch.uint8)
    maps = torch.zeros(4, 6)
    maps[1, 2] = 1.0
    inside = torch.zeros(4, 6, dtype=torch.bool)
    inside[:, 1:5] = True
    return photo, maps, inside


def test_overlay_blends_inside_and_leaves_the_rest_untouched():
    photo, maps, inside = _scene()
    out = overlay(photo, maps, inside, alpha=0.5)
    assert torch.equal(out[:, :, 0], photo[:, :, 0]) and torch.equal(out[:, :, 5], photo[:, :, 5])
    hot = colorize(maps, "jet")[:, 1, 2].float()
    torch.testing.assert_close(out[:, 1, 2].float(), (0.5 * 100 + 0.5 * hot).round())


def test_classic_is_photo_plus_0_4_heat_rescaled():
    photo, maps, inside = _scene()
    out = classic(photo, maps, inside).float()
    summed = photo.float() + 0.4 * colorize(maps, "jet").float() * inside
    torch.testing.assert_close(out, (summed / summed.max() * 255).round())


def test_heatmap_is_gray_outside_the_crop():
    _, maps, inside = _scene()
    out = heatmap(maps, inside)
    assert (out[:, :, 0] == 96).all()


def test_panel_draws_three_pictures():
    photo, maps, inside = _scene()
    picture = panel(photo, maps, inside, "tabby (p = 0.9)")
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.shape[1] > 2 * picture.shape[0]


def test_save_png_writes_exactly_and_leaves_nothing_on_failure(tmp_path):
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    path = save_png(image, tmp_path / "out" / "a.png")
    assert np.array_equal(np.asarray(Image.open(path)), image.permute(1, 2, 0).numpy())
    with pytest.raises(TypeError):
        save_png(np.zeros((5, 7, 3), dtype=object), tmp_path / "out" / "b.png")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


@pytest.mark.parametrize(
    ("photo_size", "map_size", "preprocess"),
    [
        ((4000, 3000), (7, 7), Preprocess(256, 224)),
        ((451, 300), (14, 14), Preprocess(256, 224)),
        ((300, 451), (7, 9), Preprocess(256, 224)),
        ((180, 90), (7, 7), Preprocess(None, 224)),  # the crop is larger than the photo: black padding
        ((640, 480), (12, 12), Preprocess(384, None)),  # no crop: the box is the whole photo
    ],
)
def test_pillow_path_draws_the_same_pictures_as_the_tensor_path(photo_size, map_size, preprocess):
    generator = torch.Generator().manual_seed(sum(photo_size))
    width, height = photo_size
    photo = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    raw = torch.rand(map_size, generator=generator) - 0.2
    box = preprocess.crop_box(photo_size)
    on_photo, inside = to_photo(normalize(raw[None])[0], box, photo_size)
    image = Image.fromarray(photo.permute(1, 2, 0).numpy())
    for style, tensor_picture in (
        ("overlay", overlay(photo, on_photo[0], inside, colormap="turbo", alpha=0.3)),
        ("heatmap", heatmap(on_photo[0], inside, colormap="turbo")),
    ):
        drawn = np.asarray(show_on_photo(image, raw, box, style=style, colormap="turbo", alpha=0.3))
        expected = tensor_picture.permute(1, 2, 0).numpy()
        difference = np.abs(drawn.astype(int) - expected.astype(int))
        # one colormap step at most where rounding picks the neighbouring entry, and only rarely
        assert difference.max() <= 8 and (difference > 1).mean() < 1e-4, style
        outside = ~inside.numpy()
        if style == "overlay":
            assert np.array_equal(drawn[outside], expected[outside])


def test_tiny_photos_fall_back_to_the_tensor_path():
    photo = torch.randint(0, 256, (3, 5, 6), dtype=torch.uint8)
    raw = torch.rand(7, 7)
    box = CropBox(0, 0, 6, 5)
    on_photo, inside = to_photo(normalize(raw[None])[0], box, (6, 5))
    drawn = np.asarray(show_on_photo(photo, raw, box))
    assert np.array_equal(drawn, overlay(photo, on_photo[0], inside).permute(1, 2, 0).numpy())


def test_panels_shrink_large_photos_before_drawing():
    photo = Image.new("RGB", (4000, 3000), (20, 40, 60))
    picture = show_on_photo(photo, torch.rand(7, 7), Preprocess(256, 224).crop_box(photo.size), style="panel")
    assert picture.width < 2000 and picture.height < 1000


@pytest.mark.parametrize(
    ("size", "style"), [((451, 300), "overlay"), ((451, 300), "classic"), ((4000, 3000), "overlay")]
)
def test_the_title_goes_in_a_corner_box_and_nowhere_else(size, style):
    photo = Image.new("RGB", size, (128, 128, 128))
    raw, box = torch.rand(7, 7), Preprocess(256, 224).crop_box(size)
    plain = np.asarray(show_on_photo(photo, raw, box, style=style))
    labelled = np.asarray(show_on_photo(photo, raw, box, style=style, title="tabby  (p = 0.731)"))
    rows, columns = np.nonzero((labelled != plain).any(-1))
    short = min(size)
    assert rows.min() > 0 and rows.max() < short / 6 and columns.min() > 0 and columns.max() < size[0] * 0.6
    assert short / 25 < rows.max() - rows.min() < short / 8  # the letters grow with the photo
    corner = labelled[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    assert corner.min() < 80 and corner.max() > 240  # white letters on a dark box
    untitled = show_on_photo(photo, raw, box, style=style, title="tabby  (p = 0.731)", label=False)
    assert np.array_equal(np.asarray(untitled), plain)


@pytest.mark.parametrize("style", ["overlay", "classic", "heatmap", "panel"])
def test_a_picture_kept_on_the_device_is_the_picture_drawn_on_the_photo(style):
    """The GPU path of a folder run (draw_on_device, then a JPEG encoded there) draws what
    show_on_photo draws, title included: on the CPU the two differ only by Pillow's rounding."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8))
    raw, box = (
        torch.rand(7, 7, generator=torch.Generator().manual_seed(1)),
        Preprocess(256, 224).crop_box(photo.size),
    )
    title = "tabby  (p = 0.731)"
    kept = draw_on_device(photo, raw, box, style=style, title=title)
    assert kept.dtype == torch.uint8 and kept.shape[0] == 3
    shown = np.asarray(show_on_photo(photo, raw, box, style=style, title=title)).astype(int)
    difference = np.abs(kept.permute(1, 2, 0).numpy().astype(int) - shown)
    assert difference.max() <= 8 and (difference > 1).mean() < 1e-3, style
    if style == "panel":  # its title is its heading, not a corner label
        return
    labelled = (kept != draw_on_device(photo, raw, box, style=style)).any(0).nonzero()
    if style in ("overlay", "classic"):
        assert labelled[:, 0].max() < 300 / 6 and labelled[:, 1].max() < 451 * 0.6  # the corner only
    else:
        assert labelled.numel() == 0


def test_a_jpeg_encoded_from_a_tensor_is_as_faithful_as_pillows(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((400, 300)))
    (tmp_path / "tensor.jpg").write_bytes(
        encode_jpeg_on_device(torch.from_numpy(smooth.copy()).permute(2, 0, 1))
    )
    Image.fromarray(smooth).save(tmp_path / "pillow.jpg", quality=92)
    errors = {}
    for name in ("tensor", "pillow"):
        decoded = np.asarray(Image.open(tmp_path / f"{name}.jpg"))
        assert decoded.shape == smooth.shape
        errors[name] = np.abs(decoded.astype(int) - smooth).mean()
    assert errors["tensor"] < 1.25 * errors["pillow"] + 0.1, errors


def test_heatmaps_stay_bare():
    photo, raw = Image.new("RGB", (451, 300), (128, 128, 128)), torch.rand(7, 7)
    box = Preprocess(256, 224).crop_box(photo.size)
    heat = show_on_photo(photo, raw, box, style="heatmap", title="tabby  (p = 0.731)")
    assert np.array_equal(np.asarray(heat), np.asarray(show_on_photo(photo, raw, box, style="heatmap")))


def _ink_rows(band: np.ndarray) -> list[tuple[int, int]]:
    """The (first, last) rows of each run of rows with dark ink, top to bottom."""
    found: list[tuple[int, int]] = []
    for row in np.flatnonzero((band.astype(int).sum(-1) < 3 * 128).any(1)):
        if found and row == found[-1][1] + 1:
            found[-1] = (found[-1][0], row)
        else:
            found.append((row, row))
    return found


@pytest.mark.parametrize("size", [(48, 48), (640, 480), (4000, 3000)])
def test_panel_letters_and_colour_bar_stay_readable_at_any_photo_size(size):
    """A 48-pixel photo once made a panel of 14-pixel letters beside 340-pixel pictures, a 12-megapixel
    one the same; sizes now follow the pictures shown, with letters of 11 pixels at least."""
    title = "tabby  (p = 0.731)"
    photo = Image.new("RGB", size, (128, 128, 128))
    raw, box = (
        torch.rand(7, 7, generator=torch.Generator().manual_seed(0)),
        Preprocess(256, 224).crop_box(size),
    )
    drawn = np.asarray(show_on_photo(photo, raw, box, style="panel", title=title))
    layout = panel_layout(size, 3, title, choose(title))
    height, width = drawn.shape[:2]
    assert (width, height) == layout.size
    assert 256 <= max(layout.cell) <= 512
    assert 11 <= layout.text <= layout.heading <= 0.05 * height

    x0, y0, x1, y1 = layout.bar
    heading, labels = _ink_rows(drawn[:y0, :x0])  # two lines of text above the pictures
    heading_ink, label_ink = heading[1] - heading[0] + 1, labels[1] - labels[0] + 1
    assert 0.8 * layout.heading <= heading_ink <= 1.3 * layout.heading  # "(" to ")": about one em
    assert 0.8 * layout.text <= label_ink <= 1.2 * layout.text  # "photo heatmap overlay": h to p
    assert label_ink >= 10

    assert 10 <= x1 - x0 <= 0.03 * width and y1 - y0 == layout.cell[1] >= 0.6 * height
    jet = colorize(torch.tensor([[1.0, 0.0]]), "jet")[:, 0].T.numpy()  # (2, 3): 1, then 0
    assert np.array_equal(drawn[y0, x0:x1], np.repeat(jet[:1], x1 - x0, 0))  # 1 at the top
    assert np.array_equal(drawn[y1 - 1, x0:x1], np.repeat(jet[1:], x1 - x0, 0))  # 0 at the bottom
    assert (drawn[y0:y1, x0 - 1] == 255).all()  # the bar starts where the layout says
    ticks = np.flatnonzero((drawn[y0:y1, x1] != 255).any(-1)).tolist()  # just right of the bar
    assert len(ticks) == 3 and ticks[0] == 0 and ticks[2] == y1 - 1 - y0  # 1, 0.5 and 0, nothing else
    assert abs(ticks[1] - ticks[2] / 2) <= 0.5
    beside = drawn[y0:y1, -layout.margin - 2 * layout.text : -layout.margin].astype(int).sum(-1) < 3 * 128
    assert beside.sum() > 20  # "relevance" along the bar
    edge = layout.margin // 2  # nothing drawn into the outer margin: nothing cut at an edge
    assert (drawn[:edge] == 255).all() and (drawn[-edge:] == 255).all()
    assert (drawn[:, :edge] == 255).all() and (drawn[:, -edge:] == 255).all()


@pytest.mark.parametrize("size", [(48, 48), (64, 640)])
def test_a_long_japanese_title_is_wrapped_not_cut(size):
    title = "ゴールデン・レトリーバー（長毛種、スコットランド原産の大型の鳥猟犬）  (p = 0.731)"
    photo = Image.new("RGB", size, (40, 90, 140))
    drawn = panel(photo, None, None, title, columns=[("heatmap", photo), ("overlay", photo)])
    choice = choose(title)
    layout = panel_layout(size, 3, title, choice)
    height, width = drawn.shape[:2]
    assert (width, height) == layout.size and layout.heading >= 11
    assert "".join(layout.heading_lines).replace(" ", "") == title.replace(" ", "")  # every character
    for line in layout.heading_lines:
        assert measure(line, choice, layout.heading)[0] <= width - 2 * layout.margin
    lines = _ink_rows(drawn[: layout.cells[0][1], : layout.bar[0]])
    assert len(lines) == len(layout.heading_lines) + 1 >= 2  # the heading's lines, then the labels
    edge = layout.margin // 2
    assert (drawn[:edge] == 255).all() and (drawn[:, :edge] == 255).all() and (drawn[:, -edge:] == 255).all()


def test_show_on_photo_takes_one_map_and_names_the_pick_for_several():
    photo = Image.new("RGB", (40, 30), "white")
    box = CropBox(0, 0, 40, 30)
    single = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    drawn = np.asarray(show_on_photo(photo, single, box))
    assert np.array_equal(np.asarray(show_on_photo(photo, single[None, None], box)), drawn)  # (1, 1, h, w)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 7, 7\): pass one map, such as result.raw\[i\]"):
        show_on_photo(photo, single.expand(1, 3, 7, 7), box)
    with pytest.raises(ValueError, match=r"shape \(0, 7\)"):
        show_on_photo(photo, torch.zeros(0, 7), box)
    # a map saved with --save-maps, and one still attached to the graph, draw as the tensor does
    assert np.array_equal(np.asarray(show_on_photo(photo, single.numpy(), box)), drawn)
    assert np.array_equal(np.asarray(show_on_photo(photo, single.clone().requires_grad_(), box)), drawn)


def test_show_on_photo_takes_a_photo_in_any_usual_form_and_the_whole_photo_by_default():
    """PIL images of any mode are read as load_image reads files; tensors and arrays, uint8 or floats
    in [0, 1], (3, H, W) or (H, W, 3), draw the same picture; no box: the map covers the whole photo."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    photo = Image.fromarray(pixels)
    single = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    drawn = np.asarray(show_on_photo(photo, single, CropBox(0, 0, 40, 30)))
    as_tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    for same in (photo.convert("RGBA"), pixels, as_tensor, as_tensor[None], as_tensor.float() / 255):
        assert np.array_equal(np.asarray(show_on_photo(same, single)), drawn)
    grey = photo.convert("L")
    assert np.array_equal(
        np.asarray(show_on_photo(grey, single))[..., 0],
        np.asarray(show_on_photo(grey.convert("RGB"), single))[..., 0],
    )
    with pytest.raises(
        ValueError, match=r"float tensor must hold values in \[0, 1\].*normalized model input"
    ):
        show_on_photo(Preprocess(crop=30)(photo), single)
    with pytest.raises(ValueError, match=r"expected one picture .* got shape \(2, 3, 30, 40\)"):
        show_on_photo(as_tensor.expand(2, -1, -1, -1), single)


def test_a_methods_panel_column_whose_map_shows_no_place_says_so():
    from mieruka.render import _column_name

    assert _column_name("gradcam", torch.full((7, 7), 0.3)) == "gradcam (flat map)"
    assert _column_name("gradcam", -torch.rand(7, 7)) == "gradcam (empty map)"
    assert _column_name("gradcam", torch.rand(7, 7)) == "gradcam"


def test_a_picture_of_every_object_carries_its_title_in_the_corner_as_an_overlay_does():
    """--style boxes: the method and [random weights] are drawn, as on every other picture."""
    from mieruka.render import show_objects

    photo = Image.new("RGB", (320, 240), (128, 128, 128))
    raws = torch.rand(2, 7, 7, generator=torch.Generator().manual_seed(0))
    box = CropBox(0, 0, 320, 240)
    boxes = torch.tensor([[150.0, 120.0, 300.0, 220.0], [180.0, 140.0, 310.0, 230.0]])
    args = (photo, raws, box, (240, 320), boxes, ["cat", "dog"], [0.9, 0.8])
    plain = np.asarray(show_objects(*args))
    titled = np.asarray(show_objects(*args, title="gradcam  [random weights]"))
    rows, columns = np.nonzero((titled != plain).any(-1))
    assert len(rows) and rows.max() < 240 / 6 and columns.max() < 320 * 0.7  # the corner alone
