"""Localization in the photo's own pixels from a boxes file, and the control maps."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

import pytest
import torch
from PIL import Image

from mieruka.boxes import (
    EDGE_TOLERANCE,
    BoxesError,
    Truth,
    check_boxes,
    ground_truth,
    photo_truth,
    read_boxes,
    read_mask,
)
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


def test_a_byte_order_mark_as_spreadsheets_write_is_not_part_of_the_header(tmp_path):
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbfphoto,x0,y0,x1,y1\r\ncat.jpg,10,20,110,220\r\n")
    (tmp_path / "bom.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"cat.jpg": [[10, 20, 110, 220]]}).encode()
    )
    expected = {"cat.jpg": [(10.0, 20.0, 110.0, 220.0)]}
    assert read_boxes(tmp_path / "excel.csv") == read_boxes(tmp_path / "bom.json") == expected


def test_bad_boxes_files_say_what_is_wrong(tmp_path):
    (tmp_path / "bad.json").write_text('{"cat.jpg": [[1, 2, 3]]}')
    with pytest.raises(BoxesError, match=r"not four numbers \[x0, y0, x1, y1\]"):
        read_boxes(tmp_path / "bad.json")
    with pytest.raises(BoxesError, match="no such boxes file"):
        read_boxes(tmp_path / "missing.json")
    with pytest.raises(BoxesError, match="is a folder, expected a boxes file"):
        read_boxes(tmp_path)
    (tmp_path / "bad.csv").write_text("name,a,b\n")
    with pytest.raises(BoxesError, match="header photo,x0,y0,x1,y1"):
        read_boxes(tmp_path / "bad.csv")
    with pytest.raises(
        BoxesError, match=r"cat.jpg: box \[0.0, 0.0, 50.0, 90.0\] lies outside the 40x100 photo"
    ):
        check_boxes([(0.0, 0.0, 50.0, 90.0)], (40, 100), "cat.jpg")
    (tmp_path / "object.json").write_text('{"cat.jpg": {"boxes": [], "bbox": [1, 2, 3, 4]}}')
    with pytest.raises(BoxesError, match=r"the entry of cat.jpg has \['bbox'\]: expected \"boxes\" and/or"):
        read_boxes(tmp_path / "object.json")


def test_a_box_a_little_past_the_edge_is_clipped_and_one_further_out_refused():
    """COCO's float widths run boxes a fraction of a pixel over the edge: up to 1 px is clipped."""
    assert EDGE_TOLERANCE == 1.0
    assert check_boxes([(-0.5, 0.0, 40.6, 101.0), (2.0, 3.0, 4.0, 5.0)], (40, 100), "cat.jpg") == [
        (0.0, 0.0, 40.0, 100.0),
        (2.0, 3.0, 4.0, 5.0),
    ]
    with pytest.raises(BoxesError, match=r"lies outside the 40x100 photo \(more than 1 px past its edge\)"):
        check_boxes([(0.0, 0.0, 41.5, 10.0)], (40, 100), "cat.jpg")
    with pytest.raises(BoxesError, match="lies outside"):  # within the slack, but nothing of it inside
        check_boxes([(40.0, 0.0, 40.8, 10.0)], (40, 100), "cat.jpg")
    with pytest.raises(BoxesError, match=r"cat.jpg: box \[5.0, 0.0, 5.0, 10.0\] is empty"):
        check_boxes([(5.0, 0.0, 5.0, 10.0)], (40, 100), "cat.jpg")


def _found(*paths: str) -> list[tuple[Path, PurePath]]:
    """Photos as find_images_relative gives them: `root:relative` is found in the folder root."""
    found = []
    for text in paths:
        root, _, relative = text.rpartition(":")
        found.append((Path(root, relative), PurePath(relative)))
    return found


def test_each_name_goes_to_one_photo_never_shared(tmp_path):
    boxes = tmp_path / "boxes.json"
    box = [[1, 2, 3, 4]]
    # the same relative path under two folders given together: the bare name is ambiguous for both
    photos = _found("x:cat.jpg", "y:cat.jpg", "x:a/dog.jpg", "x:b/dog.jpg", "x:bird.jpg")
    boxes.write_text(json.dumps({"cat.jpg": box, "dog.jpg": box, "bird.jpg": box, "ghost.jpg": box}))
    truth, notes = ground_truth(photos, boxes)
    assert (
        truth[0].error
        == truth[1].error
        == (
            f"--boxes {boxes}: cat.jpg names both x/cat.jpg and y/cat.jpg: name each photo by a longer "
            "path, such as x/cat.jpg"
        )
    )
    assert (
        "dog.jpg names both x/a/dog.jpg and x/b/dog.jpg" in truth[2].error
        and truth[2].error == truth[3].error
    )
    assert truth[4] == Truth(((1.0, 2.0, 3.0, 4.0),), named=f"--boxes {boxes}: bird.jpg", photo="x/bird.jpg")
    assert notes == [f"--boxes {boxes} names 1 photo (ghost.jpg), not among the photos given: left out"]
    # longer paths tell them apart: each photo its own boxes
    boxes.write_text(json.dumps({"x/cat.jpg": [[0, 0, 1, 1]], "y/cat.jpg": box, "a/dog.jpg": box}))
    truth, notes = ground_truth(photos, boxes)
    assert [t.boxes if t else None for t in truth] == [
        ((0.0, 0.0, 1.0, 1.0),), ((1.0, 2.0, 3.0, 4.0),), ((1.0, 2.0, 3.0, 4.0),), None, None
    ]  # fmt: skip
    assert notes == ["2 photos (b/dog.jpg, bird.jpg) without ground truth: not scored on localization"]
    # the place as found wins over the end of another photo's path; two names of one photo are refused
    photos = _found("p:cat.jpg", "p:a/cat.jpg")
    boxes.write_text(json.dumps({"cat.jpg": box, "a/cat.jpg": [[0, 0, 1, 1]]}))
    truth, _ = ground_truth(photos, boxes)
    assert truth[0].boxes == ((1.0, 2.0, 3.0, 4.0),) and truth[1].boxes == ((0.0, 0.0, 1.0, 1.0),)
    boxes.write_text(json.dumps({"a/cat.jpg": box, "p/a/cat.jpg": box}))
    truth, _ = ground_truth(_found("p:a/cat.jpg"), boxes)
    assert truth[0].error == f"--boxes {boxes}: both a/cat.jpg and p/a/cat.jpg name p/a/cat.jpg: keep one"


def test_masks_are_found_by_the_photos_paths_and_read_nonzero_as_object(tmp_path):
    masks = tmp_path / "masks"
    (masks / "a").mkdir(parents=True)
    pixels = torch.zeros(6, 8, dtype=torch.uint8)
    pixels[1:3, 2:5] = 1  # 1 of 255: black to the eye, object all the same
    Image.fromarray(pixels.numpy()).save(masks / "a" / "cat.png")
    Image.fromarray(pixels.numpy()).save(masks / "spare.png")
    photos = _found("p:a/cat.jpg", "p:dog.jpg")
    truth, notes = ground_truth(photos, masks=masks)
    assert truth[0].mask == masks / "a" / "cat.png" and truth[1] is None
    assert notes[0] == f"--masks {masks} holds 1 mask (spare.png) of no photo given: left out"
    assert torch.equal(photo_truth(truth[0], (8, 6)), pixels.bool())
    with pytest.raises(
        BoxesError, match=r"^p/a/cat.jpg: .*cat.png: the mask is 8x6 but its photo is 9x6: a mask"
    ):
        photo_truth(truth[0], (9, 6))
    # a mask named in the JSON beside boxes wins over them; its path is relative to the JSON file
    (tmp_path / "boxes.json").write_text(
        json.dumps({"dog.jpg": {"boxes": [[0, 0, 1, 1]], "mask": "masks/a/cat.png"}})
    )
    truth, _ = ground_truth(photos, tmp_path / "boxes.json")
    assert truth[1].mask == masks / "a" / "cat.png" and torch.equal(
        photo_truth(truth[1], (8, 6)), pixels.bool()
    )
    # two photos a mask would fit, or two masks for one photo: an error for the photo
    truth, _ = ground_truth(_found("p:a/cat.jpg", "p:a/cat.png"), masks=masks)
    assert "a/cat.png names both p/a/cat.jpg and p/a/cat.png" in truth[0].error
    truth, _ = ground_truth(_found("p:dog.jpg"), tmp_path / "boxes.json", masks)
    assert truth is not None  # spare.png does not fit dog.jpg: no clash
    (masks / "dog.png").write_bytes((masks / "spare.png").read_bytes())
    truth, _ = ground_truth(_found("p:dog.jpg"), tmp_path / "boxes.json", masks)
    assert truth[0].error.endswith(f"in --masks {masks}: keep one")
    with pytest.raises(BoxesError, match="no such folder"):
        ground_truth(photos, masks=tmp_path / "nowhere")


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "I;16"])
def test_a_mask_is_nonzero_in_any_colour_band(tmp_path, mode):
    image = Image.new(mode, (5, 4), 0)
    image.putpixel((3, 1), (0, 0, 7) if mode == "RGB" else (0, 0, 9, 0) if mode == "RGBA" else 1)
    if mode == "RGBA":
        image.putpixel((0, 0), (0, 0, 0, 255))  # opaque black: alpha is not the object
    image.save(tmp_path / "m.png")
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[1, 3] = True
    assert torch.equal(read_mask(tmp_path / "m.png", (5, 4)), expected)


def test_a_mask_is_upright_as_its_exif_says(tmp_path):
    image = Image.new("L", (5, 4), 0)
    image.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: 4 wide, 5 high
    image.save(tmp_path / "m.png", exif=exif)
    mask = read_mask(tmp_path / "m.png", (4, 5))
    assert mask.shape == (5, 4) and mask[0, 3] and mask.sum() == 1
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(BoxesError, match=r"bad.png: cannot read this mask"):
        read_mask(tmp_path / "bad.png")


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


def test_mask_pointing_game_and_energy_agree_with_quantus():
    """A mask in the photo's pixels (not a box): the maps put back onto the photo by the crop mapping,
    then Quantus's PointingGame and RelevanceMassAccuracy (energy inside) on the same pixels."""
    from quantus import PointingGame, RelevanceMassAccuracy

    from mieruka.maps import to_photo

    generator = torch.Generator().manual_seed(1)
    size = (60, 40)
    crop = Preprocess(resize=32, crop=32).crop_box(size)
    maps = torch.rand(12, 7, 7, generator=generator)
    maps[:, :, [0, -1]] *= 0.5  # peaks inside: at an edge cell the photo's border pixels tie, and
    maps[:, [0, -1]] *= 0.5  # then Quantus counts a hit on any of them where argmax takes the first
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(60.0), indexing="ij")
    hits, energies, theirs_hits, theirs_energies = [], [], [], []
    for i in range(12):
        cx, cy = torch.randint(12, 48, (2,), generator=generator).tolist()
        mask = ((xs - cx) ** 2 + (ys - cy) ** 2 < 64) | ((xs - cy) < 3) & (ys > 30)  # a disc and a bar
        hit, energy = localize_in_photo(maps[i : i + 1], crop, size, mask, tolerance=0)
        photo_maps = to_photo(maps[i : i + 1], crop, size)[0]
        assert (photo_maps == photo_maps.max()).sum() == 1
        hits.append(bool(hit[0]))
        energies.append(float(energy[0]))
        a, s = photo_maps.reshape(1, -1).numpy(), mask.reshape(1, -1).numpy().astype(float)
        theirs_hits.append(bool(PointingGame(disable_warnings=True).evaluate_batch(a_batch=a, s_batch=s)[0]))
        theirs_energies.append(float(RelevanceMassAccuracy(disable_warnings=True).evaluate_batch(a, s)[0]))
    assert hits == theirs_hits and 0 < sum(hits) < 12  # both outcomes occur
    assert energies == pytest.approx(theirs_energies, abs=1e-6)
    # the tolerance grows the mask as it grows a box
    far = torch.zeros(40, 60, dtype=torch.bool)
    far[:, :2] = True
    peak = to_photo(maps[:1], crop, size)[0][0].flatten().argmax()
    column = int(peak % 60)
    assert localize_in_photo(maps[:1], crop, size, far, tolerance=column - 1)[0].tolist() == [True]
    assert localize_in_photo(maps[:1], crop, size, far, tolerance=column - 2)[0].tolist() == [False]
    with pytest.raises(ValueError, match=r"expected a mask \(H, W\) of the 60x40 photo, got \(60, 40\)"):
        localize_in_photo(maps[:1], crop, size, far.T, tolerance=0)


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
