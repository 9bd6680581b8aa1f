"""Colouring and drawing: lookup tables on tensors, overlays only where the model looked, safe writes."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from mieruka.images import CropBox, Preprocess
from mieruka.maps import normalize, to_photo
from mieruka.render import classic, colorize, heatmap, overlay, panel, save_png, show_on_photo


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


def test_heatmaps_stay_bare():
    photo, raw = Image.new("RGB", (451, 300), (128, 128, 128)), torch.rand(7, 7)
    box = Preprocess(256, 224).crop_box(photo.size)
    heat = show_on_photo(photo, raw, box, style="heatmap", title="tabby  (p = 0.731)")
    assert np.array_equal(np.asarray(heat), np.asarray(show_on_photo(photo, raw, box, style="heatmap")))
