"""Localization in the photo's own pixels from a boxes file, and the control maps."""

from __future__ import annotations

import json

import pytest
import torch

from mieruka.boxes import BoxesError, check_boxes, read_boxes
from mieruka.images import CropBox, Preprocess
from mieruka.metrics import (
    box_mask,
    centre_prior,
    localize_in_photo,
    pointing_game,
    random_map,
)
from synthetic import centre_prior as synthetic_centre_prior


def test_the_three_layouts_read_the_same(tmp_path):
    (tmp_path / "boxes.json").write_text(json.dumps({"cat.jpg": [[10, 20, 110, 220]], "a/dog.png": []}))
    coco = {
        "images": [{"id": 7, "file_name": "cat.jpg"}, {"id": 8, "file_name": "a/dog.png"}],
        "annotations": [{"image_id": 7, "bbox": [10, 20, 100, 200], "category_id": 1}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    (tmp_path / "boxes.csv").write_text("photo,x0,y0,x1,y1\ncat.jpg,10,20,110,220\n")
    expected = {"cat.jpg": [(10.0, 20.0, 110.0, 220.0)], "a/dog.png": []}
    assert read_boxes(tmp_path / "boxes.json") == expected
    assert read_boxes(tmp_path / "coco.json") == expected
    assert read_boxes(tmp_path / "boxes.csv") == {"cat.jpg": expected["cat.jpg"]}


def test_bad_boxes_files_say_what_is_wrong(tmp_path):
    (tmp_path / "bad.json").write_text('{"cat.jpg": [[1, 2, 3]]}')
    with pytest.raises(BoxesError, match=r"not four numbers \[x0, y0, x1, y1\]"):
        read_boxes(tmp_path / "bad.json")
    with pytest.raises(BoxesError, match="no such boxes file"):
        read_boxes(tmp_path / "missing.json")
    (tmp_path / "bad.csv").write_text("name,a,b\n")
    with pytest.raises(BoxesError, match="header photo,x0,y0,x1,y1"):
        read_boxes(tmp_path / "bad.csv")
    with pytest.raises(
        BoxesError, match=r"cat.jpg: box \[0.0, 0.0, 50.0, 90.0\] lies outside the 40x100 photo"
    ):
        check_boxes([(0.0, 0.0, 50.0, 90.0)], (40, 100), "cat.jpg")


def test_box_mask_takes_the_pixels_whose_centres_are_inside():
    mask = box_mask([(1, 0, 3, 1.4), (4.5, 2.5, 5, 3)], (5, 3))  # edges inclusive, as in to_photo
    assert mask.int().tolist() == [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]


def test_pointing_game_agrees_with_quantus():
    from quantus import PointingGame

    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(20, 16, 16, generator=generator)
    masks = torch.zeros(20, 16, 16, dtype=torch.bool)
    for i in range(20):
        x, y = torch.randint(0, 10, (2,), generator=generator).tolist()
        masks[i, y : y + 6, x : x + 6] = True
    theirs = PointingGame(disable_warnings=True).evaluate_batch(
        a_batch=maps.reshape(20, -1).numpy(), s_batch=masks.reshape(20, -1).numpy().astype(float)
    )
    assert pointing_game(maps, masks, tolerance=0).tolist() == [bool(h) for h in theirs]


def test_localization_happens_in_the_photo_not_the_crop():
    """A 400 x 200 photo, resized to 128 x 64 then centre-cropped to 64 x 64: the crop covers photo
    columns 100 to 300. A map peaking at the crop's left edge points at photo column ~100."""
    preprocess = Preprocess(resize=64, crop=64)
    crop = preprocess.crop_box((400, 200))
    assert crop == CropBox(100.0, 0.0, 300.0, 200.0)
    maps = torch.zeros(1, 8, 8)
    maps[0, 4, 0] = 1.0  # crop cell centred at (12.5, 112.5) in photo pixels... left column
    left = [(90.0, 100.0, 120.0, 140.0)]
    right = [(280.0, 100.0, 300.0, 140.0)]
    hit, energy = localize_in_photo(maps, crop, (400, 200), left, tolerance=0)
    assert hit.tolist() == [True] and energy.item() > 0.5
    hit, energy = localize_in_photo(maps, crop, (400, 200), right, tolerance=0)
    assert hit.tolist() == [False] and energy.item() == 0.0
    # outside the crop the map is zero: a box the model never saw gets nothing
    hit, energy = localize_in_photo(maps, crop, (400, 200), [(0.0, 0.0, 90.0, 200.0)], tolerance=0)
    assert hit.tolist() == [False] and energy.item() == 0.0
    # the 15-pixel tolerance reaches a box just beside the peak
    near = [(60.0, 100.0, 95.0, 140.0)]
    assert localize_in_photo(maps, crop, (400, 200), near, tolerance=0)[0].tolist() == [False]
    assert localize_in_photo(maps, crop, (400, 200), near, tolerance=15)[0].tolist() == [True]


def test_controls_are_the_baselines_of_the_synthetic_tests():
    assert torch.allclose(centre_prior(3, (64, 64)), synthetic_centre_prior(3))
    chance = random_map(2, (5, 7), seed=3)
    assert chance.shape == (2, 5, 7) and torch.equal(chance, random_map(2, (5, 7), seed=3))
    assert not torch.equal(chance[0], chance[1])
