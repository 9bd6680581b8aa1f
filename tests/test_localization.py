"""Localization on data with known ground truth: the map must point at the evidence."""

from __future__ import annotations

import pytest
import torch

from mieruka import CAM, GradCAM
from mieruka.metrics import energy_inside, pointing_game
from synthetic import centre_prior, random_maps

TOLERANCE = 4  # the pointing game's 15 pixels at 224, scaled to these 64-pixel images


def pointing(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """The share of maps whose maximum falls on the object (grown by TOLERANCE pixels)."""
    return pointing_game(maps, masks, TOLERANCE).float().mean().item()


def test_the_trained_net_classifies_held_out_shapes(shapes_net, held_out):
    images, labels, _ = held_out
    with torch.no_grad():
        accuracy = (shapes_net(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9


def test_gradcam_wins_the_pointing_game(shapes_net, held_out):
    images, labels, masks = held_out
    result = GradCAM(shapes_net)(images, targets=labels)
    assert result.layer == "features"
    hits = pointing_game(result.maps, masks, TOLERANCE)
    assert hits.float().mean().item() >= 0.9


def test_a_random_map_loses_the_pointing_game(held_out):
    """The bar is meaningful: objects cover a small part of the image, so chance is far below 0.9."""
    _, _, masks = held_out
    assert pointing(random_maps(len(masks)), masks) == pytest.approx(0.09, abs=0.01)


def test_a_centre_prior_loses_the_pointing_game(held_out):
    """Objects lie anywhere, so knowing only that they tend to the middle wins about a quarter."""
    _, _, masks = held_out
    assert pointing(centre_prior(len(masks)), masks) == pytest.approx(0.28, abs=0.01)


def test_the_trained_vit_classifies_held_out_shapes(shapes_vit, held_out):
    images, labels, _ = held_out
    with torch.no_grad():
        accuracy = (shapes_vit(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95


def test_gradcam_on_a_class_token_vit_points_at_the_object(shapes_vit, held_out):
    """At the automatic layer, the tokens entering the last block, read as an 8 x 8 map: far above both
    baselines, though not at the CNN's 0.9 (see the next test)."""
    images, labels, masks = held_out
    result = GradCAM(shapes_vit)(images, targets=labels)
    assert result.layer == f"blocks.{len(shapes_vit.blocks) - 1}.norm1" == "blocks.3.norm1"
    assert result.layout == "tokens: 1 prefix + 8x8"
    assert pointing(result.maps, masks) >= 0.7
    assert pointing(result.maps, masks) >= pointing(centre_prior(len(masks)), masks) + 0.4


@pytest.mark.parametrize("method", ["hirescam", "layercam"])
def test_token_wise_gradients_on_a_vit_point_at_the_object_as_on_a_cnn(shapes_vit, held_out, method):
    """Grad-CAM averages the gradient over the patches. At the last block of a class-token head that
    average is the class's direction through the value projection, one for all patches (plus a term in
    the class token's attention to itself, near zero), so it shows what each token would add if read,
    not which tokens are read. Weighting each token by its own gradient follows the reading."""
    images, labels, masks = held_out
    result = CAM(shapes_vit, method=method)(images, targets=labels)
    assert result.layer == "blocks.3.norm1"
    assert pointing(result.maps, masks) >= 0.9


def test_energy_inside_is_the_share_of_the_map_on_the_object():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 3, 3] = 2.0, 1.0, 1.0
    assert energy_inside(maps, masks).tolist() == [0.75, 0.0]  # an all-zero map puts nothing on the object


def test_energy_inside_refuses_maps_and_masks_of_different_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4, 4\) and \(2, 5, 5\)"):
        energy_inside(torch.zeros(2, 4, 4), torch.zeros(2, 5, 5, dtype=torch.bool))


def test_centre_energy_is_the_share_of_the_map_in_the_central_quarter():
    from mieruka.metrics import centre_energy

    maps = torch.zeros(2, 3, 8, 8)
    maps[0, 0] = 1.0  # uniform: a quarter of the area, a quarter of the energy
    maps[0, 1, 2:6, 2:6] = 5.0  # all of it in the middle half of each side
    maps[0, 2, :2, :2] = 1.0  # all of it in a corner
    maps[1, 0, 3, 3], maps[1, 0, 0, 0] = 3.0, 1.0
    maps[1, 1, 0, 0], maps[1, 1, 4, 4] = -9.0, 1.0  # negative values count for nothing
    expected = torch.tensor([[0.25, 1.0, 0.0], [0.75, 1.0, 0.0]])  # an all-zero map: 0
    assert torch.allclose(centre_energy(maps), expected)
