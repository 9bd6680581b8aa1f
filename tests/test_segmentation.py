"""Segmentation targets: a class's score summed over a region, against pytorch-grad-cam and ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import model_state
from mieruka import CAM, GradCAM
from mieruka.layers import auto_layer
from mieruka.metrics.localization import pointing_game
from mieruka.targets import SegmentationTarget, TargetError
from synthetic import CLASSES, make_shape_pairs, threads


class ShapesSegmenter(nn.Module):
    """A small segmenter shaped like torchvision's: a backbone at 1/4 resolution, a 1x1 class-score
    head, upsampled to the input, returned as ``{"out": ...}``; class 0 is the background."""

    def __init__(self) -> None:
        super().__init__()

        def block(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
            conv = nn.Conv2d(inputs, outputs, 3, stride, padding=dilation, dilation=dilation)
            return [conv, nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]

        self.backbone = nn.Sequential(
            *block(3, 24, 2), *block(24, 32, 2), *block(32, 48), *block(48, 64, dilation=2)
        )
        self.classifier = nn.Conv2d(64, 1 + len(CLASSES), 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        scores = self.classifier(self.backbone(x))
        return {"out": F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def pixel_classes(masks: torch.Tensor) -> torch.Tensor:
    """Per-class masks (N, 5, H, W) -> a class per pixel (N, H, W): 0 background, 1 + shape class."""
    return torch.where(masks.any(1), masks.float().argmax(1) + 1, 0)


@pytest.fixture(scope="session")
def shapes_segmenter() -> ShapesSegmenter:
    """Trained on 1000 two-shape images for 6 epochs on one thread (about 30 s)."""
    torch.manual_seed(0)
    images, _, masks = make_shape_pairs(1000, seed=1)
    truth = pixel_classes(masks)
    model = ShapesSegmenter()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    with threads(1):
        for _ in range(6):
            order = torch.randperm(len(images))
            for start in range(0, len(images), 64):
                batch = order[start : start + 64]
                loss = F.cross_entropy(model(images[batch])["out"], truth[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model.eval()


def _deeplab(seed: int = 0) -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(seed)
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None).eval()


def _pgc_raw(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list) -> torch.Tensor:
    """pytorch-grad-cam's Grad-CAM before its min-max scaling and cv2 resize: ReLU(sum_k w_k A_k) at
    the layer's resolution. Its targets read one image's output, so the model is wrapped to return
    the ``"out"`` tensor, as its segmentation tutorial does."""
    from pytorch_grad_cam import GradCAM as PGC

    class Out(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)["out"]

    raws = []

    class Raw(PGC):
        def get_cam_image(self, *args, **kwargs):
            cam = super().get_cam_image(*args, **kwargs)
            raws.append(cam)
            return cam

    with Raw(model=Out(), target_layers=[layer]) as cam:
        cam(input_tensor=x, targets=targets)
    return torch.from_numpy(raws[0]).clamp_min(0)


def _by_max(maps: torch.Tensor) -> torch.Tensor:
    return maps / maps.flatten(-2).amax(-1)[..., None, None]


@pytest.mark.parametrize(("region", "seed"), [("predicted", 1), ("mask", 1)])
def test_gradcam_agrees_with_pytorch_grad_cam(region, seed):
    """torchvision's DeepLabV3 (random weights: it predicts one class everywhere), one class per call."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    model = _deeplab(seed)
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        predicted = model(x)["out"].argmax(1)
    category = int(predicted[0].flatten().mode().values)  # the class covering most of image 0
    if region == "mask":
        mask = torch.zeros(128, 128, dtype=torch.bool)
        mask[20:70, 40:110] = True
        target, masks = SegmentationTarget(category, mask=mask), [mask, mask]
    else:
        target, masks = SegmentationTarget(category), list(predicted == category)
    ours = GradCAM(model)(x, target)
    assert ours.layer == "backbone.16" and ours.raw.shape == (2, 8, 8) and not ours.empty.any()
    expected = _pgc_raw(
        model,
        model.backbone.get_submodule("16"),
        x,
        [SemanticSegmentationTarget(category, m.float().numpy()) for m in masks],
    )
    # both normalized by their maximum, at the layer's resolution (pgc then min-max scales and resizes
    # with cv2; mieruka's maps are the same raw maps upsampled bilinearly)
    error = (_by_max(ours.raw) - _by_max(expected)).abs().max()
    assert error < 1e-3, error
    torch.testing.assert_close(ours.regions, torch.stack(masks))
    assert ours.details[0]["area"] == int(masks[0].sum())


def test_default_regions_agree_with_pytorch_grad_cam(shapes_segmenter):
    """Every predicted class of each image at once, against one pgc call per class with the
    predicted pixels as its mask (the regions differ from class to class and image to image)."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    images, _, _ = make_shape_pairs(4, seed=3)
    ours = GradCAM(shapes_segmenter, "backbone")(images, SegmentationTarget())
    assert ours.valid.sum() >= 8  # at least the two shapes of each image
    with torch.no_grad():
        predicted = shapes_segmenter(images)["out"].argmax(1)
    for k in range(ours.valid.shape[1]):
        rows = ours.valid[:, k].nonzero().flatten()
        classes = ours.targets[rows, k].tolist()
        expected = _pgc_raw(
            shapes_segmenter,
            shapes_segmenter.backbone,
            images[rows],
            [
                SemanticSegmentationTarget(c, (predicted[n] == c).float().numpy())
                for n, c in zip(rows, classes)
            ],
        )
        error = (_by_max(ours.raw[rows, k]) - _by_max(expected)).abs().max()
        assert error < 1e-3, (k, error)


@pytest.mark.parametrize(("method", "count"), [("gradcam", 80), ("scorecam", 24), ("ablationcam", 24)])
def test_per_class_maps_point_at_their_own_object(shapes_segmenter, method, count):
    """Ground truth: two shapes of different classes per image; each class's map (region: the pixels
    predicted as that class, the default) peaks on its own shape and not on the other one. Score-CAM
    and Ablation-CAM run the model again: the regions stay those of the first pass."""
    images, labels, masks = make_shape_pairs(count, seed=2)
    result = CAM(shapes_segmenter, "backbone", method=method)(images, SegmentationTarget())
    own, other = [], []
    for n in range(len(images)):
        present = labels[n].nonzero().flatten().tolist()
        for j, kind in enumerate(present):
            found = ((result.targets[n] == kind + 1) & result.valid[n]).nonzero().flatten()
            if len(found) == 0:  # the model did not predict the class: the map cannot point at it
                own.append(False)
                other.append(False)
                continue
            peak = result.maps[n, int(found[0])][None]
            own.append(bool(pointing_game(peak, masks[n, kind][None], tolerance=4)))
            other.append(bool(pointing_game(peak, masks[n, present[1 - j]][None], tolerance=0)))
    assert sum(own) / len(own) >= 0.8, sum(own) / len(own)
    assert sum(other) / len(other) <= 0.1, sum(other) / len(other)


def test_default_explains_each_predicted_class_but_the_background():
    model = _TwoRegions().eval()
    x = torch.zeros(2, 1, 8, 8)
    x[1, :, :, 3:] = 1.0  # image 1 holds class 2 on its right five columns; image 0 only class 1
    result = CAM(model, "conv")(x, SegmentationTarget())
    assert result.targets.tolist() == [[1, 0], [2, 1]]  # most pixels first, padded after
    assert result.valid.tolist() == [[True, False], [True, True]]
    assert [[d["area"] for d in row] for row in result.details] == [[64, 0], [40, 24]]
    assert result.regions[1, 0, :, 3:].all() and not result.regions[1, 0, :, :3].any()
    assert not result.regions[0, 1].any() and (result.maps[0, 1] == 0).all()  # padding: no region, no map
    assert result.task == "segment" and result.labels[1] == ["class 2", "class 1"]
    with_background = CAM(model, "conv")(x, SegmentationTarget(background=None))
    assert with_background.targets.tolist() == [[1, 0], [2, 1]]  # class 0 is never predicted here


class _TwoRegions(nn.Module):
    """Class 0 (background) is never predicted; class 1 scores 1 everywhere, class 2 twice the input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[0.0]]], [[[2.0]]]]))
            self.conv.bias.copy_(torch.tensor([1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = self.conv(x)
        return torch.cat([ones[:, :1] * 0 - 5, ones], 1)  # (N, 3, H, W)


def test_a_box_and_names_choose_the_region_and_class():
    model = _TwoRegions().eval()
    x = torch.zeros(1, 1, 8, 8)
    x[0, :, :, 4:] = 1.0
    target = SegmentationTarget("right", box=(4, 0, 8, 4))
    result = CAM(model, "conv", labels=["background", "left", "right"])(x, target)
    assert result.targets.tolist() == [2] and result.labels == ["right"]  # one class given: no K axis
    assert result.details == [{"area": 16}] and result.regions[0, :4, 4:].all()
    assert result.regions.sum() == 16
    # the score is the class's logit summed over the box: 2 * 16
    assert torch.allclose(result.logits, torch.tensor([[32.0]]))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            SegmentationTarget(1, mask=torch.ones(7, 8, dtype=torch.bool)),
            "the mask is 7x8, but the model's output is 8x8",
        ),
        (SegmentationTarget(3), "class index out of range: the model has 3 classes"),
        (SegmentationTarget("cat"), "is a name, but the model has no class names"),
        (SegmentationTarget(1, box=(20, 20, 30, 30)), "holds no pixel of the model's 8x8 output"),
    ],
)
def test_bad_targets_say_what_is_wrong_in_one_line(target, message):
    with pytest.raises(TargetError, match=message) as caught:
        CAM(_TwoRegions().eval(), "conv")(torch.zeros(1, 1, 8, 8), target)
    assert "\n" not in str(caught.value)


def test_a_model_without_per_pixel_scores_is_refused():
    classifier = nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(
        TargetError, match=r"needs class scores per pixel \(N, classes, H, W\).*a tensor \(1, 2\)"
    ):
        CAM(classifier, "0")(torch.zeros(1, 1, 8, 8), SegmentationTarget())
    with pytest.raises(TargetError, match="a mask or a box, not both"):
        SegmentationTarget(mask=torch.ones(2, 2, dtype=torch.bool), box=(0, 0, 1, 1))


@pytest.mark.parametrize("raises", [False, True])
def test_no_side_effects_on_a_segmenter(raises):
    model = _deeplab()
    model.train()
    model.backbone.eval()  # a mixed mode comes back mixed
    model.classifier.requires_grad_(False)
    before = model_state(model)
    x = torch.randn(1, 3, 64, 64)
    version = x._version
    target = SegmentationTarget(0, mask=torch.ones(32, 32, dtype=torch.bool) if raises else None)
    if raises:
        with pytest.raises(TargetError, match="the mask is 32x32"):
            GradCAM(model, "backbone.16")(x, target)
    else:
        GradCAM(model, "backbone.16")(x, target)
    assert model_state(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert x._version == version and torch.is_grad_enabled()


def test_auto_layer_of_torchvision_segmenters_is_the_backbones_last_stage():
    from torchvision.models.segmentation import fcn_resnet50

    x = torch.rand(1, 3, 64, 64)
    assert auto_layer(_deeplab(), x) == "backbone.16"
    assert auto_layer(fcn_resnet50(weights=None, weights_backbone=None).eval(), x) == "backbone.layer4"
    assert auto_layer(ShapesSegmenter().eval(), x) == "backbone"
    # no backbone: the last feature map before the trailing class-score layers (one channel per class)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))
    assert auto_layer(plain.eval(), x) == "1"


def test_the_explained_region_is_outlined_on_the_photo():
    from PIL import Image

    from mieruka import CropBox
    from mieruka.render import outline_region

    photo = Image.new("RGB", (200, 100), (0, 0, 0))
    region = torch.zeros(10, 10, dtype=torch.bool)
    region[2:6, 2:6] = True  # of a 10 x 10 input covering the photo's middle square: x 70..110, y 20..60
    picture = outline_region(photo, region, CropBox(50, 0, 150, 100), color=(0, 255, 0), width=2)
    pixels = torch.from_numpy(np.array(picture))
    green, black = [0, 255, 0], [0, 0, 0]
    assert pixels[40, 69].tolist() == green and pixels[40, 110].tolist() == green  # just outside
    assert pixels[19, 90].tolist() == green and pixels[60, 90].tolist() == green
    assert pixels[40, 90].tolist() == black and pixels[40, 66].tolist() == black  # inside; farther out
