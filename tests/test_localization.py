"""Localization on data with known ground truth: the map must point at the evidence."""

from __future__ import annotations

import pytest
import torch

from mieruka import GradCAM
from mieruka.metrics import energy_inside, pointing_game

TOLERANCE = 4  # the pointing game's 15 pixels at 224, scaled to these 64-pixel images


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
    random_maps = torch.rand(masks.shape, generator=torch.Generator().manual_seed(0))
    assert pointing_game(random_maps, masks, TOLERANCE).float().mean().item() < 0.3


def test_energy_inside_is_the_share_of_the_map_on_the_object():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 3, 3] = 2.0, 1.0, 1.0
    assert energy_inside(maps, masks).tolist() == [0.75, 0.0]  # an all-zero map puts nothing on the object


def test_energy_inside_refuses_maps_and_masks_of_different_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4, 4\) and \(2, 5, 5\)"):
        energy_inside(torch.zeros(2, 4, 4), torch.zeros(2, 5, 5, dtype=torch.bool))
