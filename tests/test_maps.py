"""Upsampling, normalization and mapping maps back onto the original photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mieruka.images import CropBox, Preprocess
from mieruka.maps import is_flat, normalize, to_photo, upsample


def test_normalize_divides_by_the_maximum_and_flags_empty_maps():
    maps = torch.tensor([[[0.0, 2e-4], [1e-4, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[-1.0, -2.0], [-3.0, -4.0]]])
    scaled, empty = normalize(maps)
    torch.testing.assert_close(scaled[0], torch.tensor([[0.0, 1.0], [0.5, 0.0]]))
    assert torch.equal(scaled[1:], torch.zeros(2, 2, 2)) and empty.tolist() == [False, True, True]


def test_a_map_with_one_value_everywhere_is_flagged_flat():
    maps = torch.stack(
        [
            torch.full((7, 7), 0.3),  # flat: normalized, every pixel would be 1
            torch.full((7, 7), 0.3) + torch.rand(7, 7) * 1e-7,  # flat but for float rounding
            torch.zeros(7, 7),  # empty, not flat
            torch.full((7, 7), -2.0),  # nothing positive: empty
            torch.eye(7) + 0.3,  # a place
            torch.full((7, 7), 0.3).index_put_((torch.tensor([3]), torch.tensor([3])), torch.tensor(0.3001)),
        ]
    )
    assert is_flat(maps).tolist() == [True, True, False, False, False, False]
    assert is_flat(maps.view(2, 3, 7, 7)).shape == (2, 3)


def test_upsample_is_bilinear_with_half_pixel_centres():
    maps = torch.tensor([[[0.0, 1.0]]])
    assert upsample(maps, (1, 4)).tolist() == [[[0.0, 0.25, 0.75, 1.0]]]


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (1000, 750)])
def test_a_map_of_the_input_lands_back_on_the_photo(size):
    """Use the preprocessed photo itself as the 'map': mapped back, it must reproduce the photo."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    photo = ((np.sin(x / 37.0) + np.cos(y / 23.0) + 2) * 60).astype(np.uint8)
    preprocess = Preprocess(mean=(0, 0, 0), std=(1, 1, 1))
    model_input = preprocess(Image.fromarray(np.stack([photo] * 3, -1)))[0]
    box = preprocess.crop_box(size)
    on_photo, inside = to_photo(model_input[None], box, size)
    expected = torch.from_numpy(photo).float() / 255
    error = (on_photo[0] - expected).abs()[inside]
    assert error.mean() < 0.01 and error.max() < 0.1
    assert torch.equal(on_photo[0][~inside], torch.zeros(int((~inside).sum())))
    columns = torch.nonzero(inside.any(0)).flatten()
    assert abs(columns.min().item() - box.left) <= 1 and abs(columns.max().item() + 1 - box.right) <= 1


def test_to_photo_handles_one_by_one_maps_and_batches():
    maps = torch.tensor([[[2.0]], [[3.0]]])
    on_photo, inside = to_photo(maps, CropBox(0, 0, 10, 5), (10, 5))
    assert on_photo.shape == (2, 5, 10) and bool(inside.all())
    assert torch.equal(on_photo[1], torch.full((5, 10), 3.0))
