"""Detection targets: one map per detected object, through the detector's own resize, against
pytorch-grad-cam's box-score target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import model_state
from mieruka import CAM, CropBox, GradCAM
from mieruka.geometry import Frame, recording, to_input
from mieruka.layers import auto_layer, seen_size
from mieruka.maps import normalize, upsample
from mieruka.render import combine, draw_boxes, photo_boxes, show_objects
from mieruka.targets import DetectionTarget, TargetError

LABELS = [f"thing {i}" for i in range(91)]
LAYER = "backbone.body.16"  # the automatic layer, named to save the trace


def build_detector(seed: int = 0) -> nn.Module:
    """torchvision's Faster R-CNN (MobileNetV3 FPN) with random weights, small and quick: 160-pixel
    images, 100 proposals, every detection kept (``box_score_thresh=0``).

    Straight from initialization its features are about 1e-8, so every detection has the same score;
    batch-norm statistics taken from one batch of noise and a class head scaled down give a detector
    whose objects differ in score and class, as a trained one's do.
    """
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(seed)
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None,
        weights_backbone=None,
        min_size=160,
        max_size=160,
        box_score_thresh=0.0,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=100,
        box_detections_per_img=20,
    )
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.momentum = 1.0
    model.backbone.train()
    with torch.no_grad():
        model.backbone(torch.rand(4, 3, 160, 160, generator=torch.Generator().manual_seed(1)))
        model.roi_heads.box_predictor.cls_score.weight.mul_(0.02)
    return model.eval()


@pytest.fixture(scope="module")
def detector() -> nn.Module:
    return build_detector()


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Two 120 x 100 inputs: the detector resizes them to 160 x 133 and pads them to 160 x 160."""
    return torch.rand(2, 3, 120, 100, generator=torch.Generator().manual_seed(0))


def _pgc_raw(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: list) -> torch.Tensor:
    """pytorch-grad-cam's Grad-CAM before its min-max scaling and cv2 resize: ReLU(sum_k w_k A_k) at
    the layer's resolution, here over the detector's padded batch."""
    from pytorch_grad_cam import GradCAM as PGC

    raws = []

    class Raw(PGC):
        def get_cam_image(self, *args, **kwargs):
            cam = super().get_cam_image(*args, **kwargs)
            raws.append(cam)
            return cam

    with Raw(model=model, target_layers=[layer]) as cam:
        cam(input_tensor=x, targets=targets)
    return torch.from_numpy(raws[0]).clamp_min(0)


def test_gradcam_agrees_with_pytorch_grad_cam(detector, photos):
    """Every object of both images from one call, against one pytorch-grad-cam call per object rank.

    pytorch-grad-cam stretches its map over the input, padding included; for a like-for-like
    comparison its raw map (before that resize) is carried back through the detector's resize with
    mieruka's geometry, then both are normalized by their maximum.
    """
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    ours = GradCAM(detector)(photos, DetectionTarget(min_score=0.05, max_objects=3))
    assert ours.layer == "backbone.body.16" and ours.task == "detect"
    assert ours.maps.shape == ours.raw.shape == (2, 3, 120, 100) and ours.valid.all()
    with torch.no_grad(), recording(detector) as frames:
        detections = detector(photos)
    assert frames == [Frame((160, 160), ((160, 133), (160, 133)))]
    for n, found in enumerate(detections):  # the highest-scoring objects, in order
        torch.testing.assert_close(ours.target_probs[n], found["scores"][:3])
        assert ours.targets[n].tolist() == found["labels"][:3].tolist()
        assert ours.details[n][0]["box"] == [round(v, 2) for v in found["boxes"][0].tolist()]
    errors = []
    for k in range(3):
        targets = [
            FasterRCNNBoxScoreTarget([found["labels"][k]], [found["boxes"][k]]) for found in detections
        ]
        raw = _pgc_raw(detector, detector.backbone.body.get_submodule("16"), photos, targets)
        expected = normalize(to_input(raw[:, None], frames[0], (120, 100)))[0][:, 0]
        errors.append(float((ours.maps[:, k] - expected).abs().max()))
    assert max(errors) < 1e-3, errors
    assert not ours.empty.all()


def test_each_object_is_normalized_on_its_own(detector, photos):
    result = CAM(detector, LAYER)(photos, DetectionTarget(min_score=0.0, max_objects=4))
    peaks = result.raw.flatten(2).amax(-1)
    assert peaks.max() / peaks[peaks > 0].min() > 1.5  # the objects' raw maps differ in strength...
    full = result.maps.flatten(2).amax(-1)
    assert torch.equal(full[~result.empty], torch.ones(int((~result.empty).sum())))  # ...each peaks at 1
    assert torch.equal(combine(result.maps[0], result.valid[0]), result.maps[0].amax(0))


def test_fewer_objects_are_padded_and_classes_filter(detector, photos):
    with torch.no_grad():
        counts = [int((found["scores"] >= 0.2).sum()) for found in detector(photos)]
    assert counts[0] != counts[1]  # the two images have different numbers of objects
    result = CAM(detector, LAYER, labels=LABELS)(photos, DetectionTarget(min_score=0.2))
    k = max(counts)
    assert result.valid.tolist() == [[j < c for j in range(k)] for c in counts]
    padded = ~result.valid
    assert (result.maps[padded] == 0).all() and result.empty[padded].all()
    assert all(result.labels[n][j] == "" and result.details[n][j] == {} for n, j in padded.nonzero().tolist())
    assert result.labels[0][0] == LABELS[int(result.targets[0, 0])]
    kind = result.labels[0][0]
    only = CAM(detector, LAYER, labels=LABELS)(photos, DetectionTarget(0.0, max_objects=2, classes=[kind]))
    assert (only.targets[only.valid] == LABELS.index(kind)).all()


def test_an_image_without_detections_gives_empty_padded_maps(detector, photos):
    result = CAM(detector, LAYER)(photos, DetectionTarget(min_score=0.99))
    assert result.maps.shape == (2, 1, 120, 100)
    assert not result.valid.any() and result.empty.all() and (result.maps == 0).all()
    assert result.labels == [[""], [""]] and result.details == [[{}], [{}]]


def test_score_cam_follows_each_object_through_masked_passes(detector, photos):
    """Score-CAM's masks are the channels carried back through the detector's resize, each object
    matched in every masked pass (8 channels: the Faster Score-CAM approximation, to stay quick)."""
    result = CAM(detector, LAYER, method="scorecam", score_channels=8)(
        photos[:1], DetectionTarget(min_score=0.0, max_objects=2)
    )
    assert result.maps.shape == (1, 2, 120, 100) and result.maps.isfinite().all()
    assert not result.empty.any()


def test_objects_are_matched_by_label_and_iou_across_passes():
    """The score of a later pass (Score-CAM's, Ablation-CAM's) is that of the detection with the
    object's label whose box overlaps the object's most, if its IoU is above the threshold."""
    first = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10]]),
            "labels": torch.tensor([3]),
            "scores": torch.tensor([0.9]),
        }
    ]
    chosen = DetectionTarget(min_score=0.5, iou=0.5).select(first, None)
    later = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 10, 10], [0.0, 0, 5, 10]]),
        "labels": torch.tensor([7, 3, 3]),
        "scores": torch.tensor([0.99, 0.6, 0.8]),
    }
    # same box, other label: no; IoU 0.9, same label: yes; IoU 0.5 is not above the threshold
    assert chosen.scores([later], torch.tensor([0])).tolist() == [[pytest.approx(0.6)]]
    moved = dict(later, boxes=later["boxes"] + 6)
    assert chosen.scores([moved], torch.tensor([0])).tolist() == [[0.0]]
    nothing = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.long),
        "scores": torch.zeros(0),
    }
    assert chosen.scores([nothing], torch.tensor([0])).tolist() == [[0.0]]


def test_maps_are_carried_back_through_the_detectors_resize():
    """A map that grows linearly down the padded batch, one cell per 16 pixels: bilinear sampling
    gives every input pixel the padded-batch row its centre lands on, (y + 0.5) * 48 / 96 here."""
    frame = Frame((64, 64), ((48, 64),))  # a 96 x 128 input resized by 1/2, padded 16 rows below
    rows = (torch.arange(4.0) + 0.5) * 16  # the cells' centre rows in padded pixels
    ramp = rows[:, None].expand(4, 4)[None, None]
    mapped = to_input(ramp, frame, (96, 128))[0, 0]
    expected = (torch.arange(96.0) + 0.5) * 48 / 96
    inside = (expected >= rows[0]) & (expected <= rows[-1])  # between the outer cell centres
    torch.testing.assert_close(mapped[inside, 5], expected[inside])
    assert mapped.max() < rows[-1]  # the padding's cells are never reached
    # without resizing and padding this is plain upsampling
    same = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(
        to_input(same, Frame((64, 64), ((64, 64),) * 2), (64, 64)), upsample(same, (64, 64))
    )


def test_automatic_layers_of_torchvision_detectors(detector, photos):
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    assert auto_layer(detector, photos) == "backbone.body.16"
    assert seen_size(detector, photos) == (160, 160)
    ssd = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    assert auto_layer(ssd, photos) == "backbone.features.1"


@pytest.mark.parametrize("raises", [False, True])
def test_no_side_effects_on_a_detector(raises):
    model = build_detector()
    model.train()
    model.backbone.body.eval()  # a mixed mode comes back mixed
    model.roi_heads.requires_grad_(False)
    before = model_state(model)
    x = torch.rand(1, 3, 96, 96)
    version = x._version
    cam = CAM(model, LAYER, labels=LABELS)
    if raises:
        with pytest.raises(TargetError, match="unicorn"):
            cam(x, DetectionTarget(classes=["unicorn"]))
    else:
        cam(x, DetectionTarget(min_score=0.0, max_objects=2))
    assert model_state(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert x._version == version and torch.is_grad_enabled()


def test_outputs_that_are_not_detections_are_refused_in_one_line():
    classifier = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(TargetError, match=r"needs a detector's output.*returns a tensor \(1, 2\)") as caught:
        CAM(classifier, "0")(torch.rand(1, 3, 8, 8), DetectionTarget())
    assert "\n" not in str(caught.value)
    with pytest.raises(TargetError, match="out of range: the model has 91 classes"):
        DetectionTarget(classes=[91]).select(
            [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}], LABELS
        )
    with pytest.raises(TargetError, match="cannot be combined with a DetectionTarget"):
        CAM(classifier, "0", aug_smooth=True)(torch.rand(1, 3, 8, 8), DetectionTarget())


def test_boxes_are_drawn_on_the_photo_where_the_input_lies():
    photo = Image.new("RGB", (200, 100), (0, 0, 0))
    crop = CropBox(50, 0, 150, 100)  # the 100 x 100 input is the middle of the photo, 1:1
    boxes = photo_boxes(torch.tensor([[10.0, 20, 60, 80]]), crop, (100, 100))
    assert boxes.tolist() == [[60.0, 20.0, 110.0, 80.0]]
    picture = draw_boxes(photo, boxes, ["dog"], [0.87], colors=[(255, 0, 0)])
    pixels = torch.from_numpy(np.array(picture))
    assert pixels[50, 60].tolist() == [255, 0, 0] and pixels[50, 80].tolist() == [0, 0, 0]
    assert pixels[:20, 60:110].any()  # the tag above the box
    maps = torch.zeros(2, 100, 100)
    maps[0, 30:40, 30:40], maps[1, 70:80, 70:80] = 5.0, 0.1
    everything = show_objects(
        photo,
        maps,
        crop,
        (100, 100),
        torch.tensor([[25.0, 25, 45, 45], [65, 65, 85, 85]]),
        ["a", "b"],
        [0.9, 0.2],
    )
    assert everything.size == photo.size
    heat = torch.from_numpy(np.array(everything)).float()
    # the weak object is as hot as the strong one: each map is normalized on its own
    assert (heat[35, 85] - heat[75, 125]).abs().max() <= 2
