"""Faithfulness metrics: checked against torchcam, pytorch-grad-cam and plain loops written here, and
on the trained ShapesNet, where Grad-CAM must beat a random map."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from mieruka import GradCAM
from mieruka.metrics import (
    average_drop,
    deletion,
    impute,
    increase_in_confidence,
    insertion,
    masked_confidence,
    road,
    substrate_of,
)
from synthetic import random_maps, threads

COUNT = 12  # held-out images used in the cross-checks


@pytest.fixture(scope="module")
def explained(shapes_net, held_out):
    """Images, their Grad-CAM maps (ties among the zeros broken by a tiny noise, so that threshold-
    and rank-based selections agree) and the labels."""
    images, labels, _ = held_out
    images, labels = images[:COUNT], labels[:COUNT]
    maps = GradCAM(shapes_net)(images, targets=labels).maps
    maps = maps + 1e-4 * torch.rand(maps.shape, generator=torch.Generator().manual_seed(1))
    return images, maps, labels


class _GivenMaps:
    """A torchcam CAM extractor that returns the maps it was given, so both libraries score the same."""

    def __init__(self, model, maps):
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **_):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    @contextlib.contextmanager
    def _hooks_off(self):
        yield


def straightforward_deletion(model, images, maps, labels, steps, substrate):
    """One image and one point at a time, pixels set by index: the curve as RISE describes it."""
    curves = []
    for image, saliency, label, background in zip(images, maps, labels, substrate):
        order = saliency.flatten().argsort(descending=True, stable=True)
        pixels = order.numel()
        step = -(-pixels // steps)
        points = []
        for count in [*range(0, pixels, step), pixels]:
            current = image.clone().flatten(1)
            current[:, order[:count]] = background.flatten(1)[:, order[:count]]
            with torch.no_grad():
                points.append(model(current.view(1, *image.shape)).softmax(1)[0, label].item())
        curves.append(points)
    return torch.tensor(curves)


def test_deletion_is_the_straightforward_loop(shapes_net, explained):
    images, maps, labels = explained
    curve = deletion(shapes_net, images, maps, labels, steps=16, substrate="blur", batch_size=7)
    expected = straightforward_deletion(shapes_net, images, maps, labels, 16, substrate_of(images, "blur"))
    assert curve.fractions.tolist() == pytest.approx([i / 16 for i in range(17)])
    torch.testing.assert_close(curve.scores, expected, atol=1e-5, rtol=0)
    assert curve.scores[:, 0].tolist() == pytest.approx(
        shapes_net(images).softmax(1)[range(COUNT), labels].tolist(), abs=1e-5
    )


def test_deletion_and_insertion_match_torchcam(shapes_net, explained):
    from torchcam.metrics import DeletionInsertionMetric

    images, maps, labels = explained
    reference = DeletionInsertionMetric(
        _GivenMaps(shapes_net, maps), lambda logits: logits.softmax(-1), steps=30, batch_size=64
    )
    reference.update(images, class_idx=labels.tolist())
    theirs = reference.summary()
    ours_deletion = deletion(shapes_net, images, maps, labels, steps=30).auc().mean().item()
    ours_insertion = (
        insertion(shapes_net, images, maps, labels, steps=30, substrate="zeros").auc().mean().item()
    )
    assert ours_deletion == pytest.approx(theirs["deletion_auc"], abs=1e-5)
    assert ours_insertion == pytest.approx(theirs["insertion_auc"], abs=1e-5)


def test_the_curves_do_not_depend_on_the_batch_size(shapes_net, explained):
    images, maps, labels = explained
    one = insertion(shapes_net, images, maps, labels, steps=8, batch_size=1).scores
    many = insertion(shapes_net, images, maps, labels, steps=8, batch_size=1000).scores
    torch.testing.assert_close(one, many, atol=1e-5, rtol=0)


def test_imputation_solves_the_system_pytorch_grad_cam_solves():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 40, 48, generator=generator)
    missing = torch.rand(3, 40, 48, generator=generator) < torch.tensor([0.1, 0.5, 0.9])[:, None, None]
    ours = impute(images, missing, noise=0.0)
    for image, hole, filled in zip(images, missing, ours):
        expected = NoisyLinearImputer(noise=0.0)(image, (~hole).float())
        torch.testing.assert_close(filled, expected, atol=1e-4, rtol=0)
    assert torch.equal(ours[~missing[:, None].expand_as(ours)], images[~missing[:, None].expand_as(images)])


def test_road_matches_pytorch_grad_cam(shapes_net, explained):
    """Their ROADMostRelevantFirst(q) keeps the pixels below the map's q-th percentile, so it removes
    the share 1 - q/100; LeastRelevantFirst(q) keeps those above it. numpy's interpolated percentile
    keeps ceil(q (n - 1) / 100) of n pixels, one fewer than round(q n / 100) at some q (here q = 80), so
    the shares are given as pixel counts; then, with the noise off, both sides agree."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (
        PerturbationConfidenceMetric,
        RemoveLeastRelevantFirst,
        RemoveMostRelevantFirst,
    )
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    images, maps, labels = explained
    images, maps, labels = images[:6], maps[:6], labels[:6]
    keeps = (10, 50, 80)
    pixels = maps[0].numel()
    removed = [pixels - math.ceil(q * (pixels - 1) / 100) for q in keeps]
    assert removed != [round((1 - q / 100) * pixels) for q in keeps]  # the one-pixel difference
    ours = road(shapes_net, images, maps, labels, fractions=[r / pixels for r in removed], noise=0.0)
    targets = [ClassifierOutputSoftmaxTarget(int(label)) for label in labels]
    for column, keep in enumerate(keeps):
        for removal, order in ((RemoveMostRelevantFirst, ours.morf), (RemoveLeastRelevantFirst, ours.lerf)):
            metric = PerturbationConfidenceMetric(removal(keep, NoisyLinearImputer(noise=0.0)))
            theirs = metric(images, maps.numpy(), targets, shapes_net, return_diff=False)
            np.testing.assert_allclose(order[:, column].numpy(), theirs, atol=1e-3)


def test_average_drop_is_relative_and_pytorch_grad_cams_is_absolute(shapes_net, explained):
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    from torchcam.metrics import ClassificationMetric

    images, maps, labels = explained
    original, masked = masked_confidence(shapes_net, images, maps, labels)
    drop, increase = average_drop(original, masked), increase_in_confidence(original, masked)
    targets = [ClassifierOutputSoftmaxTarget(int(label)) for label in labels]
    absolute = DropInConfidence()(images, maps.numpy(), targets, shapes_net)
    np.testing.assert_allclose((drop * original).numpy(), absolute, atol=1e-5)  # theirs = ours x Y
    assert (
        increase.tolist()
        == IncreaseInConfidence()(images, maps.numpy(), targets, shapes_net).astype(bool).tolist()
    )
    reference = ClassificationMetric(_GivenMaps(shapes_net, maps), lambda logits: logits.softmax(-1))
    reference.update(images, class_idx=labels.tolist())
    assert drop.mean().item() == pytest.approx(reference.summary()["avg_drop"], abs=1e-5)
    assert increase.float().mean().item() == pytest.approx(reference.summary()["conf_increase"], abs=1e-9)


def test_average_drop_by_hand():
    original, masked = torch.tensor([0.8, 0.5, 0.0]), torch.tensor([0.2, 0.9, 0.0])
    assert average_drop(original, masked).tolist() == pytest.approx([0.75, 0.0, 0.0])
    assert increase_in_confidence(original, masked).tolist() == [False, True, False]


def test_gradcam_beats_a_random_map_on_the_trained_net(shapes_net, held_out):
    images, labels, _ = held_out
    images, labels = images[:32], labels[:32]
    gradcam = GradCAM(shapes_net)(images, targets=labels).maps
    chance = random_maps(len(images))
    with threads(1):
        scores = {
            name: (
                deletion(shapes_net, images, maps, labels, steps=16).auc().mean().item(),
                insertion(shapes_net, images, maps, labels, steps=16).auc().mean().item(),
                road(shapes_net, images, maps, labels, fractions=(0.2, 0.5, 0.8)).score().mean().item(),
            )
            for name, maps in (("gradcam", gradcam), ("random", chance))
        }
    (deleted, inserted, debiased), (deleted_r, inserted_r, debiased_r) = scores["gradcam"], scores["random"]
    assert deleted < deleted_r - 0.1
    assert inserted > inserted_r + 0.1
    assert debiased > debiased_r + 0.1


def test_metrics_leave_the_model_and_inputs_as_they_were(shapes_net, explained):
    images, maps, labels = explained
    shapes_net.train()
    version = images._version
    try:
        deletion(shapes_net, images, maps, labels, steps=4)
        road(shapes_net, images[:2], maps[:2], labels[:2], fractions=(0.5,))
        assert shapes_net.training
    finally:
        shapes_net.eval()
    assert images._version == version


def test_bad_arguments_say_what_came():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    with pytest.raises(ValueError, match=r"one map \(N, h, w\) per input, got \(3, 2, 2\) for 2"):
        deletion(model, torch.zeros(2, 3, 2, 2), torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        road(model, torch.zeros(2, 3, 2, 2), torch.zeros(2, 2, 2), fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match="substrate must be"):
        insertion(model, torch.zeros(2, 3, 2, 2), torch.zeros(2, 2, 2), substrate="grey")


def test_progress_is_told_after_each_pass():
    """A long ROAD or deletion run says how far it is: (done, total) after each pass, ending at total."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images, maps = torch.rand(3, 3, 16, 16), torch.rand(3, 16, 16)
    for run in (
        lambda told: deletion(model, images, maps, steps=4, batch_size=4, progress=lambda *a: told.append(a)),
        lambda told: road(model, images, maps, fractions=(0.3, 0.6), progress=lambda *a: told.append(a)),
    ):
        told: list[tuple[int, int]] = []
        run(told)
        assert len(told) == 3 or len(told) == 4  # 15 curve points 4 a pass; ROAD one image a pass
        assert [done for done, _ in told] == sorted(done for done, _ in told)
        assert told[-1][0] == told[-1][1]
