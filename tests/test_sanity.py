"""Sanity checks: Spearman and SSIM as scipy and scikit-image compute them, the randomized models as
Quantus's MPRT makes them, and Adebayo et al.'s result on the trained ShapesNet."""

from __future__ import annotations

import pytest
import torch

from mieruka import CAM
from mieruka.metrics import parameter_randomization, randomizable_blocks, spearman, ssim


@pytest.fixture(scope="module")
def pairs():
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(4, 20, 24, generator=generator)
    b = (a + torch.rand(4, 20, 24, generator=generator)).clamp(max=1.2)  # ties at the top
    a[0, :10] = 0  # ties at the bottom, as after a ReLU
    b[1, 5:] = 0.3
    return a, b


def test_spearman_is_quantus_and_scipys_with_ties(pairs):
    from quantus.functions.similarity_func import correlation_spearman

    a, b = pairs
    expected = [correlation_spearman(x.flatten().numpy(), y.flatten().numpy()) for x, y in zip(a, b)]
    assert spearman(a, b).tolist() == pytest.approx(expected, abs=1e-6)
    assert spearman(a, a).tolist() == pytest.approx([1.0] * 4)
    assert spearman(torch.zeros(1, 3, 3), a[:1, :3, :3]).tolist() == [0.0]  # constant: no ranks


def test_ssim_is_quantus_and_scikit_images(pairs):
    from quantus.functions.similarity_func import ssim as quantus_ssim

    a, b = pairs
    expected = [quantus_ssim(x.numpy(), y.numpy()) for x, y in zip(a, b)]
    assert ssim(a, b).tolist() == pytest.approx(expected, abs=1e-6)
    assert ssim(torch.ones(1, 8, 8), torch.ones(1, 8, 8)).tolist() == [1.0]


@pytest.mark.parametrize("cascading", [True, False])
def test_the_randomized_models_are_quantus_mprts(shapes_net, cascading):
    """Same layers, same order, same seeds: Quantus's generator and ours make the same weights."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    seen = []

    def explain(model, inputs):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return torch.rand(len(inputs), 8, 8)

    check = parameter_randomization(shapes_net, torch.zeros(1, 3, 64, 64), explain, cascading=cascading)
    wrapper = PyTorchModel(shapes_net, channel_first=True)
    order = "top_down" if cascading else "independent"
    ours = dict(zip(check.blocks, seen[1:]))
    names = []
    # their generator yields one model, changed in place: compare at each step
    for name, model in wrapper.get_random_layer_generator(order=order, seed=42):
        names.append(name)
        for key, value in model.state_dict().items():
            assert torch.equal(value, ours[name][key]), (name, key)
    # the same blocks; Quantus's independent order is bottom-up, ours top-down (the order does not
    # matter when each block is randomized alone)
    assert check.blocks == (names if cascading else names[::-1])
    assert check.blocks == [b[0] for b in randomizable_blocks(shapes_net)]
    assert check.blocks[0] == "fc"


def test_parameter_randomization_works_on_a_copy(shapes_net):
    before = {k: v.clone() for k, v in shapes_net.state_dict().items()}
    state = torch.random.get_rng_state()
    parameter_randomization(shapes_net, torch.zeros(1, 3, 64, 64), lambda m, x: torch.ones(1, 8, 8))
    assert all(torch.equal(v, before[k]) for k, v in shapes_net.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), state)  # the seeding happened in a fork
    with pytest.raises(ValueError, match="no module named 'head'"):
        parameter_randomization(
            shapes_net, torch.zeros(1, 3, 64, 64), lambda m, x: torch.rand(1, 4, 4), blocks=["head"]
        )


def test_gradcam_decorrelates_and_guided_backprop_stays_similar(shapes_net, held_out):
    """Adebayo et al. (NeurIPS 2018), Fig. 2: with the head randomized, Grad-CAM's maps change while
    Guided Backpropagation's barely do; Grad-CAM passes the check and Guided Backprop is flagged."""
    images, labels, _ = held_out
    images, labels = images[:16], labels[:16]
    checks = {
        method: parameter_randomization(
            shapes_net, images, lambda m, x, method=method: CAM(m, method=method)(x, targets=labels).maps
        )
        for method in ("gradcam", "guidedbackprop")
    }
    gradcam, guided = checks["gradcam"], checks["guidedbackprop"]
    assert gradcam.spearman.mean(1).max() < 0.6  # the unrandomized model's maps correlate 1.0
    assert gradcam.spearman[-1].mean() < 0.1
    assert guided.spearman[0].mean() > gradcam.spearman[0].mean() + 0.2
    assert guided.spearman.mean() > gradcam.spearman.mean() + 0.1
    assert not gradcam.flagged() and guided.flagged()
