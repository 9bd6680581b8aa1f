"""The CAM family: each method against independent implementations, all of them from one capture."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import random_model
from mieruka import CAM
from mieruka.methods import GRADIENT_METHODS, METHODS, get_method, parse_methods
from mieruka.metrics import pointing_game

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction  # noqa: E402

PEER_CLASSES = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigengradcam": "EigenGradCAM",
    "eigencam": "EigenCAM",
}


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    maps = torch.as_tensor(maps).float()
    low, high = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-30)


def _amplified(model: nn.Module) -> nn.Module:
    """Random heads give maps spanning ~1e-15 that the peers' additive epsilons flatten; scaling the
    last linear layer scales every gradient by one constant, which normalization removes."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e9)
        last.bias.mul_(1e9)
    return model


def _model(name: str, default_model) -> nn.Module:
    """Random-weight models, or a copy of the trained default model, with an amplified head: even the
    trained model's gradients at bn2 (~1e-3) meet pytorch-grad-cam's Grad-CAM++ epsilon of 1e-6."""
    return _amplified(copy.deepcopy(default_model.model) if name == "default" else random_model(name))


def _peer_maps(method: str, model: nn.Module, layer: nn.Module, x: torch.Tensor, targets) -> torch.Tensor:
    peer = getattr(pytorch_grad_cam, PEER_CLASSES[method])
    with peer(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
        if method.startswith("eigen"):
            # pytorch-grad-cam's EigenCAM keeps the arbitrary sign of the SVD; apply the sign rule we
            # document, using pytorch-grad-cam's own implementation of it, on its own capture.
            activations = cam.activations_and_grads.activations[0].numpy()
            if method == "eigengradcam":
                activations = activations * cam.activations_and_grads.gradients[0].numpy()
            raw = torch.from_numpy(get_2d_projection_with_sign_correction(activations)).clamp_min(0)
            upsampled = nn.functional.interpolate(raw[:, None], size=x.shape[-2:], mode="bilinear")[:, 0]
            return _min_max(upsampled)
    return torch.from_numpy(maps)


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "default"])
@pytest.mark.parametrize("method", list(PEER_CLASSES))
def test_gradient_methods_agree_with_pytorch_grad_cam(name, method, default_model):
    model = _model(name, default_model)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    ours = CAM(model, method=method)(x)
    layer = model.get_submodule(ours.layer)
    theirs = _peer_maps(method, model, layer, x, ours.targets.tolist())
    assert (_min_max(ours.maps) - theirs).abs().max() < 1e-3


class PostReLU(nn.Module):
    """A layer followed by ReLU: what pytorch-grad-cam sees at DenseNet's `features.norm5`."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.relu(self.inner(x))


def _with_post_relu(model: nn.Module, method: str, x: torch.Tensor, **options) -> torch.Tensor:
    """Our maps at DenseNet's norm5 as pytorch-grad-cam computes them: on the post-ReLU activations.

    DenseNet's forward applies F.relu(inplace=True) to the layer's output, and pytorch-grad-cam keeps a
    reference to that very tensor, so it weights (and, for Score-CAM, masks with) ReLU(norm5).
    """
    norm5 = model.features.norm5
    model.features.norm5 = PostReLU(norm5)
    try:
        return CAM(model, "features.norm5", method=method, **options)(x).maps
    finally:
        model.features.norm5 = norm5


@pytest.mark.parametrize("method", list(PEER_CLASSES))
def test_densenet_differs_from_pytorch_grad_cam_only_by_its_in_place_relu(method):
    model = _amplified(random_model("densenet121"))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    ours = CAM(model, "features.norm5", method=method)(x)
    theirs = _peer_maps(method, model, model.features.norm5, x, ours.targets.tolist())
    assert (_min_max(_with_post_relu(model, method, x)) - theirs).abs().max() < 1e-3


@pytest.mark.parametrize("method", ["gradcam", "xgradcam", "layercam"])
def test_agree_with_torchcam(method):
    torchcam_methods = pytest.importorskip("torchcam.methods")
    model = _amplified(random_model("resnet18"))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    ours = CAM(model, "layer4", method=method)(x)
    peer = {"gradcam": "GradCAM", "xgradcam": "XGradCAM", "layercam": "LayerCAM"}[method]
    with getattr(torchcam_methods, peer)(model, "layer4") as extractor:
        raw = extractor(ours.targets.tolist(), model(x), normalized=False)[0]
    torch.testing.assert_close(
        raw.clamp_min(0) / raw.amax((1, 2), keepdim=True),
        ours.raw / ours.raw.amax((1, 2), keepdim=True),
        rtol=1e-4,
        atol=1e-5,
    )


def test_many_methods_at_once_equal_each_alone():
    model = random_model("resnet18")
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(8))
    cam = CAM(model, "layer4")
    together = cam.compare(x, GRADIENT_METHODS, top_k=2)
    for name in GRADIENT_METHODS:
        alone = CAM(model, "layer4", method=name)(x, top_k=2)
        torch.testing.assert_close(together[name].raw, alone.raw, rtol=1e-5, atol=1e-7)
        assert torch.equal(together[name].targets, alone.targets)


def test_gradient_methods_share_one_forward_pass():
    model = random_model("resnet18")
    calls = []
    hook = model.conv1.register_forward_hook(lambda *args: calls.append(1))
    try:
        CAM(model, "layer4").compare(torch.randn(2, 3, 64, 64), GRADIENT_METHODS)
    finally:
        hook.remove()
    assert len(calls) == 1


PERTURBATION_INPUT = {"resnet18": 64, "vgg16": 32, "densenet121": 64, "default": 64}  # >= 2x2 maps


@pytest.mark.parametrize("name", list(PERTURBATION_INPUT))
@pytest.mark.parametrize("method", ["scorecam", "ablationcam"])
def test_perturbation_methods_agree_with_pytorch_grad_cam(name, method, default_model, monkeypatch):
    """Score-CAM: pytorch-grad-cam upsamples its masks with align_corners=True (nn.UpsamplingBilinear2d);
    we use the half-pixel convention of every other resize here (and of torchcam). With its resize
    aligned to ours, the maps agree. Ablation-CAM agrees as it is."""
    model = copy.deepcopy(default_model.model) if name == "default" else random_model(name)
    size = PERTURBATION_INPUT[name]
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(9))
    ours = CAM(model, method=method, batch_size=256)(x)
    layer = model.get_submodule(ours.layer)
    monkeypatch.setattr(
        torch.nn,
        "UpsamplingBilinear2d",
        lambda size: nn.Upsample(size=size, mode="bilinear", align_corners=False),
    )
    peer = {"scorecam": pytorch_grad_cam.ScoreCAM, "ablationcam": pytorch_grad_cam.AblationCAM}[method]
    with peer(model=model, target_layers=[layer]) as reference:
        reference.batch_size = 256
        theirs = reference(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in ours.targets])
    maps = _with_post_relu(model, method, x, batch_size=256) if name == "densenet121" else ours.maps
    assert (maps.amax((-2, -1)) - maps.amin((-2, -1)) > 0).all()  # a map with something to compare
    assert (_min_max(maps) - torch.from_numpy(theirs)).abs().max() < 1e-3


def test_score_cam_agrees_with_torchcam_up_to_where_it_normalizes(monkeypatch):
    """The Score-CAM paper normalizes each upsampled activation to [0, 1] before masking (so do we and
    pytorch-grad-cam); torchcam normalizes at the layer's resolution, then upsamples. With its order
    switched to the paper's, the maps agree; as it is, they differ only by that order."""
    torchcam_methods = pytest.importorskip("torchcam.methods")
    model = random_model("resnet18")
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(11))
    ours = CAM(model, "layer4", method="scorecam", batch_size=256)(x)

    def torchcam_maps() -> torch.Tensor:
        with torchcam_methods.ScoreCAM(model, "layer4", batch_size=256) as extractor:
            raw = extractor(ours.targets.tolist(), model(x), normalized=False)[0]
        return _min_max(nn.functional.interpolate(raw[:, None], size=(96, 96), mode="bilinear")[:, 0].relu())

    as_it_is = torchcam_maps()
    normalize = torchcam_methods.ScoreCAM._normalize
    upsample = torchcam_methods.ScoreCAM._upsample
    monkeypatch.setattr(torchcam_methods.ScoreCAM, "_normalize", staticmethod(lambda cams, *args: cams))
    monkeypatch.setattr(
        torchcam_methods.ScoreCAM, "_upsample", lambda self, masks: normalize(upsample(self, masks), 2)
    )
    assert (_min_max(ours.maps) - torchcam_maps()).abs().max() < 1e-3
    assert (_min_max(ours.maps) - as_it_is).abs().max() < 2e-2


def test_torchcam_grad_cam_plus_plus_never_divides_alpha():
    """torchcam's Grad-CAM++ divides a boolean-indexed copy of alpha in place, so the division by the
    denominator is lost and its weights are sum(grad^2 * relu(grad)). We follow the paper (and agree
    with pytorch-grad-cam above); this pins torchcam's difference exactly."""
    torchcam_methods = pytest.importorskip("torchcam.methods")
    from mieruka.capture import capture
    from mieruka.targets import resolve_targets

    model = _amplified(random_model("resnet18"))
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(12))
    ours = CAM(model, "layer4", method="gradcam++")(x)
    with torchcam_methods.GradCAMpp(model, "layer4") as extractor:
        theirs = extractor(ours.targets.tolist(), model(x), normalized=False)[0].relu()
    captured = capture(model, [model.layer4], x, lambda logits: resolve_targets(ours.targets, logits))
    activations, gradients = captured.activations[0], captured.gradients[0][0]
    undivided = (gradients.pow(2) * gradients.relu()).sum((2, 3))
    expected = (undivided[:, :, None, None] * activations).sum(1).relu()
    torch.testing.assert_close(_min_max(theirs), _min_max(expected), rtol=1e-4, atol=1e-5)
    assert (_min_max(ours.raw) - _min_max(theirs)).abs().max() > 1e-2


def test_score_cam_batching_and_empty_channel_skipping_change_nothing(shapes_net, held_out):
    images, labels, _ = held_out
    x, targets = images[:3], labels[:3]
    reference = CAM(shapes_net, "features", method="scorecam", batch_size=1000, skip_empty_channels=False)(
        x, targets
    )
    for options in ({"batch_size": 7}, {"batch_size": 64, "skip_empty_channels": True}):
        other = CAM(shapes_net, "features", method="scorecam", **options)(x, targets)
        torch.testing.assert_close(other.maps, reference.maps, rtol=1e-4, atol=1e-5)


def test_score_cam_fast_option_uses_fewer_passes(shapes_net, held_out):
    images, labels, _ = held_out
    seen = []
    hook = shapes_net.fc.register_forward_hook(lambda m, args, out: seen.append(out.shape[0]))
    try:
        CAM(shapes_net, "features", method="scorecam", score_channels=8, skip_empty_channels=False)(
            images[:1], labels[:1]
        )
    finally:
        hook.remove()
    assert sum(seen) == 1 + 8  # the capture, then one masked pass per kept channel


@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_ablation_cam_agrees_with_pytorch_grad_cam_and_reruns_only_the_tail(name):
    model = random_model(name)
    layer = "layer4" if name == "resnet18" else "features.29"
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(10))
    first = model.conv1 if name == "resnet18" else model.features[0]
    calls = []
    hook = first.register_forward_hook(lambda *args: calls.append(1))
    try:
        ours = CAM(model, layer, method="ablationcam", batch_size=100)(x)
    finally:
        hook.remove()
    assert len(calls) == 2  # the capture and the head of the split, never once per ablation
    with pytorch_grad_cam.AblationCAM(model=model, target_layers=[model.get_submodule(layer)]) as peer:
        peer.batch_size = 256
        theirs = peer(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in ours.targets])
    assert (_min_max(ours.maps) - torch.from_numpy(theirs)).abs().max() < 1e-3


def test_ablation_cam_batching_changes_nothing(shapes_net, held_out):
    images, labels, _ = held_out
    one = CAM(shapes_net, "features", method="ablationcam", batch_size=1)(images[:2], labels[:2])
    many = CAM(shapes_net, "features", method="ablationcam", batch_size=1000)(images[:2], labels[:2])
    torch.testing.assert_close(one.raw, many.raw, rtol=1e-4, atol=1e-6)


def test_guided_backprop_agrees_with_pytorch_grad_cam_and_leaves_the_model_alone():
    model = random_model("resnet18")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        before = model(x)
    modules_before = [(name, type(m), m.forward) for name, m in model.named_modules()]
    ours = CAM(model, "layer4", method="guidedbackprop")(x)
    assert [(name, type(m), m.forward) for name, m in model.named_modules()] == modules_before
    assert not any("forward" in vars(m) for m in model.modules())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x), before)
    reference = pytorch_grad_cam.GuidedBackpropReLUModel(model=model, device="cpu")
    theirs = torch.from_numpy(reference(x, target_category=int(ours.targets[0]))).permute(2, 0, 1)
    assert (_min_max(ours.maps) - _min_max(theirs.abs().amax(0))).abs().max() < 1e-3


def test_guided_gradcam_is_guided_backprop_times_gradcam():
    model = random_model("resnet18")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(12))
    results = CAM(model, "layer4").compare(x, ["gradcam", "guidedgradcam"])
    from mieruka.methods import guided_backprop

    guided = guided_backprop(model, x, lambda logits: logits.gather(1, results["gradcam"].targets[:, None]))[
        0
    ]
    expected = (guided * results["gradcam"].maps[:, None]).abs().amax(1)
    torch.testing.assert_close(
        results["guidedgradcam"].maps, expected / expected.amax(), rtol=1e-4, atol=1e-5
    )


def test_every_method_beats_a_random_map_at_the_pointing_game(shapes_net, held_out):
    images, labels, masks = held_out
    x, y, m = images[:60], labels[:60], masks[:60]
    results = CAM(shapes_net, "features").compare(x, parse_methods("all"), y)
    chance = (
        pointing_game(torch.rand(m.shape, generator=torch.Generator().manual_seed(0)), m, 4).float().mean()
    )
    for name, result in results.items():
        score = pointing_game(result.maps, m, 4).float().mean()
        assert score > chance + 0.2, (name, score.item(), chance.item())


def test_layers_fuse(shapes_net, held_out):
    images, labels, _ = held_out
    result = CAM(shapes_net, "features.5,features.11", method="layercam")(images[:2], labels[:2])
    assert result.layer == "features.5,features.11" and result.raw.shape == (2, 32, 32)
    assert result.maps.max() == 1


def test_aug_smooth_commutes_with_mirroring(shapes_net, held_out):
    images, labels, _ = held_out
    cam = CAM(shapes_net, "features", aug_smooth=True)
    straight = cam(images[:2], labels[:2]).maps
    mirrored = cam(images[:2].flip(-1), labels[:2]).maps
    torch.testing.assert_close(mirrored.flip(-1), straight, rtol=1e-4, atol=1e-4)


def test_eigen_smooth_uses_the_principal_component(shapes_net, held_out):
    images, labels, _ = held_out
    smooth = CAM(shapes_net, "features", method="gradcam", eigen_smooth=True)(images[:2], labels[:2])
    eigengrad = CAM(shapes_net, "features", method="hirescam", eigen_smooth=True)(images[:2], labels[:2])
    assert smooth.maps.shape == (2, 64, 64) and not torch.equal(smooth.maps, eigengrad.maps)


def test_method_names_are_forgiving_and_all_expands():
    assert get_method("Grad-CAM++").name == "gradcam++" and get_method("layer_cam").name == "layercam"
    assert [m.name for m in parse_methods("gradcam, layercam,gradcam")] == ["gradcam", "layercam"]
    assert len(parse_methods("all")) == len(METHODS) - 2 == 11  # attention methods are for transformers
    with pytest.raises(ValueError, match="unknown method 'gradkam'"):
        get_method("gradkam")


def test_the_registry_summaries_are_the_functions_first_docstring_lines():
    # the registry is plain data (listing methods imports no torch); it must not drift from the code
    for method in METHODS.values():
        if method.contributions is not None:
            assert method.summary == method.contributions.__doc__.strip().splitlines()[0]
