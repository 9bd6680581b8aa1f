"""The capture engine: exact gradients, no side effects on the caller's model, any calling context."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from conftest import hook_count, random_model
from mieruka import GradCAM
from mieruka.capture import capture
from mieruka.layers import LayerError
from mieruka.targets import resolve_targets


def test_gradcam_closed_form_on_hand_weighted_net(tiny_net):
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]])  # channel 0 = ReLU(x), channel 1 = ReLU(-x)
    activations = torch.stack([x.clamp_min(0)[0, 0], (-x).clamp_min(0)[0, 0]])
    for target, weights in [(0, [2.0, 0.0]), (1, [0.0, 3.0])]:
        result = GradCAM(tiny_net, "relu")(x, targets=target)
        expected = (torch.tensor(weights)[:, None, None] / 4 * activations).sum(0).clamp_min(0)
        torch.testing.assert_close(result.raw[0], expected, rtol=0, atol=1e-7)


def test_all_zero_map_is_zero_and_flagged_not_nan(tiny_net):
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.0]]]])
    result = GradCAM(tiny_net, "relu")(x, targets=2)  # class 2 weighs every channel negatively
    assert result.empty.tolist() == [True]
    assert torch.equal(result.maps, torch.zeros_like(result.maps))
    assert not torch.isnan(result.maps).any()


def test_a_map_that_shows_no_place_is_named_for_the_pictures(tiny_net):
    """What a picture's title adds: 'empty map' (no positive value), 'flat map' (one value), else ''."""
    varied, even = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]]), torch.full((1, 1, 2, 2), 2.0)
    cam = GradCAM(tiny_net, "relu")
    assert cam(varied, targets=2).shows_no_place_at(0) == "empty map"
    assert cam(even, targets=0).shows_no_place_at(0) == "flat map"
    assert cam(varied, targets=0).shows_no_place_at(0) == ""


def test_tiny_maps_keep_their_shape_under_normalization(tiny_net):
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    big = GradCAM(tiny_net, "relu")(x, targets=0).maps
    small = GradCAM(tiny_net, "relu")(x * 1e-6, targets=0).maps  # range ~1e-6: an epsilon would flatten it
    torch.testing.assert_close(small, big, rtol=1e-5, atol=1e-6)
    assert small.max() == 1.0


def _state(model: nn.Module):
    return (
        [(m, m.training) for m in model.modules()],
        [(p, p.requires_grad, p.grad) for p in model.parameters()],
    )


def test_model_and_inputs_are_left_as_they_were():
    model = random_model("resnet18")
    model.train()
    model.layer2.eval()  # a mixed mode, as with frozen BatchNorm, must come back mixed
    model.fc.weight.requires_grad_(False)
    before = _state(model)
    x = torch.randn(2, 3, 64, 64)
    version = x._version
    GradCAM(model)(x)
    after = _state(model)
    assert [t for _, t in before[0]] == [t for _, t in after[0]]
    assert [(r, g) for _, r, g in before[1]] == [(r, g) for _, r, g in after[1]]
    assert all(p.grad is None for p in model.parameters())
    assert hook_count(model) == 0
    assert x._version == version and not x.requires_grad


def test_hooks_removed_and_mode_restored_when_forward_raises():
    class Exploding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            x = self.conv(x)
            raise RuntimeError("boom")

    model = Exploding().train()
    with pytest.raises(RuntimeError, match="boom"):
        GradCAM(model, "conv")(torch.randn(1, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert hook_count(model) == 0
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("context", ["no_grad", "inference_mode", "frozen"])
def test_works_whatever_the_calling_context(context):
    model = random_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    expected = GradCAM(model)(x).raw
    if context == "frozen":
        model.requires_grad_(False)
        result = GradCAM(model)(x)
        assert not any(p.requires_grad for p in model.parameters())
    else:
        manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
        with manager:
            result = GradCAM(model)(x.clone())
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    torch.testing.assert_close(result.raw, expected)


def test_no_graph_is_built_before_the_target_layer():
    """Only modules after the layer may see inputs that require grad: the rest ran like inference."""
    model = random_model("resnet18")
    seen: dict[str, bool] = {}
    hooks = [
        module.register_forward_pre_hook(
            lambda m, args, name=name: seen.__setitem__(name, args[0].requires_grad)
        )
        for name, module in model.named_children()
    ]
    try:
        GradCAM(model, "layer3")(torch.randn(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == {
        "conv1": False, "bn1": False, "relu": False, "maxpool": False, "layer1": False, "layer2": False,
        "layer3": False, "layer4": True, "avgpool": True, "fc": True,
    }  # fmt: skip


def test_in_place_change_after_a_nested_layer_does_not_corrupt_the_capture():
    """ResNet's BasicBlock adds the identity in place onto bn2's output; compare with a hand split."""
    model = random_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    result = GradCAM(model, "layer4.1.bn2")(x, targets=[3, 7])

    block = model.layer4[1]
    with torch.no_grad():
        h = model.layer4[0](
            model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))
        )
        a = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))
    a = a.detach().requires_grad_()
    logits = model.fc(model.avgpool(torch.relu(a + h)).flatten(1))
    (grad,) = torch.autograd.grad(logits[0, 3] + logits[1, 7], a)
    expected = (grad.mean((2, 3))[:, :, None, None] * a.detach()).sum(1).clamp_min(0)
    torch.testing.assert_close(result.raw, expected, rtol=1e-5, atol=1e-6)


def test_a_layer_that_runs_twice_is_refused():
    model = random_model("resnet18")  # each BasicBlock calls its ReLU module twice
    with pytest.raises(LayerError, match="runs 2 times"):
        GradCAM(model, "layer4.1.relu")(torch.randn(1, 3, 64, 64))
    assert hook_count(model) == 0


def test_batch_equals_per_image_results():
    model = random_model("vgg11")
    x = torch.randn(3, 3, 64, 64)
    batch = GradCAM(model, "features.18")(x, targets=[1, 2, 3])
    for i in range(3):
        single = GradCAM(model, "features.18")(x[i : i + 1], targets=i + 1)
        torch.testing.assert_close(batch.raw[i], single.raw[0], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(batch.maps[i], single.maps[0], rtol=1e-4, atol=1e-5)


def test_top_k_gives_one_map_per_class_from_one_forward():
    model = random_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    calls = []
    hook = model.conv1.register_forward_hook(lambda *args: calls.append(1))
    try:
        result = GradCAM(model, "layer4")(x, top_k=3)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert result.maps.shape == (2, 3, 64, 64) and result.targets.shape == (2, 3)
    assert torch.equal(result.targets, result.logits.topk(3, dim=1).indices)
    for k in range(3):
        single = GradCAM(model)(x, targets=result.targets[:, k])
        torch.testing.assert_close(result.raw[:, k], single.raw, rtol=1e-4, atol=1e-6)


def test_channels_last_and_low_precision_give_the_same_maps():
    model = random_model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    reference = GradCAM(model)(x)
    channels_last = GradCAM(model.to(memory_format=torch.channels_last))(
        x.to(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(channels_last.raw, reference.raw, rtol=1e-4, atol=1e-5)
    for dtype in (torch.bfloat16, torch.float16):
        low = GradCAM(random_model("resnet18").to(dtype))(x, targets=reference.targets)
        assert low.maps.dtype == torch.float32 and low.raw.dtype == torch.float32
        assert (low.maps - reference.maps).abs().mean() < 0.05


def test_capture_without_gradients_keeps_only_activations(tiny_net):
    x = torch.randn(2, 1, 4, 4)
    captured = capture(
        tiny_net, [tiny_net.relu], x, lambda logits: resolve_targets(None, logits), gradients=False
    )
    assert captured.gradients is None
    torch.testing.assert_close(captured.activations[0], torch.cat([x, -x], 1).clamp_min(0))


def test_layer_not_on_the_path_to_the_output_is_reported():
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Conv2d(3, 2, 1)
            self.unused = nn.Conv2d(3, 2, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            self.unused(x)
            return self.fc(self.used(x).mean((2, 3)))

    with pytest.raises(LayerError, match="does not depend"):
        GradCAM(TwoHeads(), "unused")(torch.randn(1, 3, 4, 4))


def test_model_on_device(torch_device):
    model = torchvision.models.resnet18().eval().to(torch_device)
    result = GradCAM(model)(torch.randn(2, 3, 64, 64, device=torch_device))
    assert result.maps.device.type == torch_device.type


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: __import__("PIL.Image").Image.new("RGB", (64, 64)),
            r"PIL image.*preprocess\(photo\)\[None\]",
        ),
        (lambda: __import__("numpy").zeros((64, 64, 3)), r"numpy array \(64, 64, 3\).*preprocess"),
        (lambda: torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "uint8 tensor: raw pixels"),
        (lambda: torch.zeros(64, 64), r"got \(64, 64\)"),
        (lambda: torch.zeros(2, 64, 64, 3), r"channels last.*permute\(0, 3, 1, 2\)"),
    ],
)
def test_inputs_that_were_not_preprocessed_get_an_error_that_says_what_to_do(make, message):
    with pytest.raises(ValueError, match=message):
        GradCAM(random_model("resnet18"))(make())


def test_a_single_image_tensor_is_a_batch_of_one():
    model = random_model("resnet18")
    x = torch.randn(3, 64, 64)
    single, batch = GradCAM(model)(x), GradCAM(model)(x[None])
    assert single.maps.shape == (1, 64, 64)
    torch.testing.assert_close(single.maps, batch.maps)


def test_a_torchscript_module_is_refused_with_what_to_explain_instead(tiny_net):
    """Hooks cannot attach to a scripted module's compiled layers: one line, not torch's RuntimeError."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; its modules still exist
        scripted = torch.jit.script(tiny_net)
    with pytest.raises(LayerError, match=r"TorchScript module cannot be hooked .*load_state_dict"):
        GradCAM(scripted)
