"""Choosing the target layer: by name, by module, or the automatic rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import random_model
from mieruka.layers import LayerError, auto_layer, resolve_layer

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
