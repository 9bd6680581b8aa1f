"""Agreement with independent implementations and with the classic hand-written recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import random_model
from mieruka import GradCAM
from mieruka.maps import upsample

captum_attr = pytest.importorskip("captum.attr")
pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

MODELS = ["vgg16", "resnet18", "resnet50", "densenet121", "mobilenet_v3_small", "efficientnet_b0", "default"]


def _model(name: str, default_model) -> nn.Module:
    return default_model.model if name == "default" else random_model(name)


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    low, high = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
    return (maps - low) / (high - low)


def _amplified_head(model: nn.Module) -> nn.Module:
    """Random-weight maps can span ~1e-15; pytorch-grad-cam's additive 1e-7 epsilon would flatten them.

    Scaling the last linear layer scales every map by one constant, which our normalization ignores.
    """
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e9)
        last.bias.mul_(1e9)
    return model


@pytest.mark.parametrize("name", MODELS)
def test_raw_maps_agree_with_captum_layer_gradcam(name, default_model):
    model = _model(name, default_model)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ours = GradCAM(model)(x)
    layer = dict(model.named_modules())[ours.layer]
    theirs = captum_attr.LayerGradCam(model, layer).attribute(
        x, target=ours.targets.tolist(), relu_attributions=True
    )[:, 0]
    assert not ours.empty.any()
    relative = (theirs - ours.raw).abs().max() / ours.raw.abs().max()
    assert relative < 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_normalized_maps_agree_with_pytorch_grad_cam(name, default_model):
    model = _model(name, default_model)
    if name != "default":
        model = _amplified_head(model)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    ours = GradCAM(model)(x)
    layer = dict(model.named_modules())[ours.layer]
    with pytorch_grad_cam.GradCAM(model=model, target_layers=[layer]) as reference:
        theirs = reference(input_tensor=x, targets=[ClassifierOutputTarget(i) for i in ours.targets.tolist()])
    theirs = torch.from_numpy(theirs)
    if name == "densenet121":
        # DenseNet's forward applies F.relu(inplace=True) to the output of `features`. pytorch-grad-cam
        # keeps a reference to that tensor, so it weights the post-ReLU activations (a bug of the
        # reference; captum and mieruka use the layer's real output). Check we understand it exactly.
        relu_raw = _gradcam_from_capture(model, ours.layer, x, ours.targets, lambda a: a.relu())
        assert (
            torch.from_numpy(_min_max(upsample(relu_raw, (224, 224))).numpy()) - theirs
        ).abs().max() < 1e-3
        assert (_min_max(ours.maps) - theirs).abs().max() > 1e-2
        return
    assert (_min_max(ours.maps) - theirs).abs().max() < 1e-3


def _gradcam_from_capture(model, layer_name, x, targets, transform):
    from mieruka.capture import capture
    from mieruka.targets import resolve_targets

    layer = dict(model.named_modules())[layer_name]
    captured = capture(model, [layer], x, lambda logits: resolve_targets(targets, logits))
    activations, gradients = captured.activations[0], captured.gradients[0][0]
    return (gradients.mean((2, 3))[:, :, None, None] * transform(activations)).sum(1).clamp_min(0)


def _tutorial_gradcam(features: nn.Module, head, x: torch.Tensor) -> torch.Tensor:
    """The classic recipe by hand: split the net, back-propagate the top class, mean over channels."""
    activations = features(x)
    activations.retain_grad()
    logits = head(activations)
    logits[0, logits.argmax(1)].backward()
    pooled = activations.grad.mean(dim=(0, 2, 3))
    weighted = activations.detach()[0] * pooled[:, None, None]
    heatmap = weighted.mean(dim=0).clamp_min(0)
    return heatmap / heatmap.max()


def test_vgg16_features_29_matches_the_tutorial():
    model = random_model("vgg16")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    expected = _tutorial_gradcam(
        model.features[:30], lambda a: model.classifier(model.avgpool(model.features[30](a)).flatten(1)), x
    )
    ours = GradCAM(model, "features.29")(x)
    assert ours.raw.shape == (1, 14, 14)
    torch.testing.assert_close(ours.raw[0] / ours.raw.max(), expected, rtol=0, atol=1e-5)


def test_resnet18_layer4_matches_the_tutorial():
    model = random_model("resnet18")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    body = nn.Sequential(*list(model.children())[:-2])
    expected = _tutorial_gradcam(body, lambda a: model.fc(model.avgpool(a).flatten(1)), x)
    ours = GradCAM(model, "layer4")(x)
    assert ours.raw.shape == (1, 7, 7)
    torch.testing.assert_close(ours.raw[0] / ours.raw.max(), expected, rtol=0, atol=1e-5)
