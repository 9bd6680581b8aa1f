"""Sanity checks: Spearman and SSIM as scipy and scikit-image compute them, the randomized models as
Quantus's MPRT makes them, and Adebayo et al.'s result on the trained ShapesNet."""

from __future__ import annotations

import math

import pytest
import torch

from mieruka import CAM
from mieruka.metrics import parameter_randomization, randomizable_blocks, spearman, ssim
from mieruka.metrics.sanity import Randomization


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


def test_a_constant_map_has_no_rank_correlation_as_in_scipy():
    """A constant map has no ranking: scipy (and so Quantus, which calls it) gives NaN, not 0, which
    would read as a perfect decorrelation and win the sanity column."""
    import warnings

    from scipy.stats import spearmanr

    flat, varied = torch.zeros(2, 3, 3), torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning
        expected = spearmanr(flat[0].flatten().numpy(), varied[0].flatten().numpy())[0]
    assert math.isnan(expected)
    assert spearman(flat, varied).isnan().all() and spearman(varied, flat).isnan().all()
    assert spearman(torch.stack([flat[0], varied[0]]), varied).isnan().tolist() == [True, False]


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

    check = parameter_randomization(
        shapes_net, torch.zeros(1, 3, 64, 64), explain, cascading=cascading, seed=42
    )
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


def test_the_cascade_starts_with_the_head_alone_then_groups():
    """Adebayo et al.'s cascade starts at the logits layer: with groups, the head stays its own first
    block and only the layers below it are grouped; the blocks cover every layer once, head first."""
    from synthetic import ShapesNet

    model = ShapesNet()
    each = [b[0] for b in randomizable_blocks(model)]
    assert each[0] == "fc" and len(each) == 9
    for groups in (1, 2, 4):
        blocks = randomizable_blocks(model, groups=groups)
        assert blocks[0] == ["fc"] and len(blocks) == groups + 1
        assert [name for block in blocks for name in block] == each
    assert randomizable_blocks(model, groups=20) == [[name] for name in each]
    with pytest.raises(ValueError, match="groups must be at least 1"):
        randomizable_blocks(model, groups=0)


def test_the_same_seed_randomizes_the_same_way(shapes_net):
    def explain(model, inputs):
        return model.features[:3](inputs).sum(1)

    inputs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    one, two = (parameter_randomization(shapes_net, inputs, explain, seed=7) for _ in range(2))
    other = parameter_randomization(shapes_net, inputs, explain, seed=8)
    assert torch.equal(one.spearman, two.spearman) and torch.equal(one.ssim, two.ssim)
    assert not torch.equal(one.spearman, other.spearman)


def test_a_map_that_becomes_constant_is_undefined_not_decorrelated():
    """A randomized model whose map is constant (a ReLU'd Grad-CAM of a dead layer) has no ranking:
    its similarity is NaN and counted as constant; the flag reads the defined values only."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    inputs = torch.rand(3, 64, generator=torch.Generator().manual_seed(0))
    trained = model[1].weight.detach().clone()

    def explain(net, x):
        maps = (x * 1.0).view(3, 8, 8)
        if not torch.equal(net[1].weight, trained):  # randomized: photo 0's map collapses
            maps = maps.clone()
            maps[0] = 0.25
        return maps

    check = parameter_randomization(model, inputs, explain)
    assert check.blocks == ["1"]
    assert check.constant.tolist() == [[True, False, False]]
    assert check.spearman[0, 0].isnan() and check.spearman_abs[0, 0].isnan()
    assert check.spearman_abs[0, 1:].tolist() == pytest.approx([1.0, 1.0])
    assert check.flagged()  # the two defined values say the map did not change
    collapsed = Randomization(
        ["1"], *[torch.full((1, 3), torch.nan)] * 2, torch.ones(1, 3), check.constant, True
    )
    assert not collapsed.flagged()  # nothing defined: no evidence either way, no flag


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
    # maps that became constant (Grad-CAM's ReLU of a dead layer, deep in the cascade) have no ranking
    assert gradcam.spearman.isnan().equal(gradcam.constant) and not guided.constant.any()
    assert gradcam.spearman.nanmean(1).max() < 0.6  # the unrandomized model's maps correlate 1.0
    assert gradcam.spearman[-1].nanmean() < 0.1
    assert guided.spearman[0].mean() > gradcam.spearman[0].mean() + 0.2
    assert guided.spearman.mean() > gradcam.spearman.nanmean() + 0.1
    assert not gradcam.flagged() and guided.flagged()
