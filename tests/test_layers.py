"""Choosing the target layer: by name, by module, or the automatic rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import random_model
from mieruka.layers import LayerError, auto_layer, candidate_layers, resolve_layer

EXPECTED_AUTO = {
    "vgg16": "features.29",
    "resnet18": "layer4",
    "resnet50": "layer4",
    "densenet121": "features",
    "mobilenet_v2": "features",
    "mobilenet_v3_small": "features",
    "efficientnet_b0": "features",
    "convnext_tiny": "features",
    "regnet_y_400mf": "trunk_output",
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED_AUTO.items())
def test_automatic_layer_is_the_last_feature_map_before_global_pooling(name, expected):
    model = random_model(name)
    assert auto_layer(model, torch.randn(1, 3, 224, 224)) == expected


def test_automatic_layer_of_the_default_model(default_model):
    assert auto_layer(default_model.model, torch.randn(1, 3, 224, 224)) == "bn2"


def test_resolve_by_name_and_by_module():
    model = random_model("resnet18")
    assert resolve_layer(model, "layer4.1.conv2") == ("layer4.1.conv2", model.layer4[1].conv2)
    assert resolve_layer(model, model.layer3) == ("layer3", model.layer3)


def test_wrong_name_suggests_close_ones():
    with pytest.raises(LayerError, match=r"no layer named 'layer5'.*did you mean layer4"):
        resolve_layer(random_model("resnet18"), "layer5")


def test_foreign_module_is_refused():
    with pytest.raises(LayerError, match="not part of the model"):
        resolve_layer(random_model("resnet18"), nn.Conv2d(1, 1, 1))


def test_no_candidate_lists_what_there_is():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(LayerError, match=r"no feature map.*--layer.*1 \[1, 4\]"):
        auto_layer(mlp, torch.randn(1, 3, 2, 2))


def test_tracing_leaves_the_model_as_it_was():
    model = random_model("resnet18").train()
    auto_layer(model, torch.randn(1, 3, 64, 64))
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())


def test_candidates_are_the_feature_maps_that_run_once_with_their_layout():
    model = random_model("resnet18")
    found = {
        info.name: (info.shape, kind) for info, kind in candidate_layers(model, torch.zeros(1, 3, 224, 224))
    }
    assert found["layer4"] == ((1, 512, 7, 7), "channels-first") and "layer3.1.conv2" in found
    assert auto_layer(model, torch.zeros(1, 3, 224, 224)) in found
    assert "fc" not in found and "avgpool" not in found  # a vector, a 1x1 map
    assert "layer1.0.relu" not in found  # runs twice in its block: not one map per image


def test_token_candidates_say_their_grid():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(64, 16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64).eval()
    found = {info.name: kind for info, kind in candidate_layers(model, torch.zeros(1, 3, 64, 64))}
    assert found["encoder.layers.encoder_layer_1.ln_1"] == "tokens: 1 prefix + 4x4"
