"""Table rows: bootstrap intervals and the best row by each metric's direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mieruka.metrics.summary import DIRECTIONS, best, bootstrap_ci


def test_bootstrap_interval_brackets_the_mean_and_matches_numpy():
    values = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.5, 0.45, 0.2, 0.9])
    estimate = bootstrap_ci(values, resamples=4000, seed=1)
    assert estimate.mean == pytest.approx(values.double().mean().item())
    assert estimate.low < estimate.mean < estimate.high
    rng = np.random.default_rng(0)
    means = values.numpy()[rng.integers(0, 8, (20000, 8))].mean(1)
    assert estimate.low == pytest.approx(np.quantile(means, 0.025), abs=0.02)
    assert estimate.high == pytest.approx(np.quantile(means, 0.975), abs=0.02)


def test_nan_values_are_left_out_and_counted():
    assert bootstrap_ci(torch.tensor([1.0, float("nan"), 1.0])) == (1.0, 1.0, 1.0, 2)
    empty = bootstrap_ci(torch.tensor([float("nan")]))
    assert all(math.isnan(v) for v in empty[:3]) and empty.count == 0


def test_the_bootstrap_repeats_with_its_seed():
    values = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.5])
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_best_follows_the_direction():
    assert DIRECTIONS["deletion"] == "lower" and DIRECTIONS["insertion"] == "higher"
    means = {"gradcam": 0.2, "random": 0.4, "broken": float("nan")}
    assert best(means, "deletion") == "gradcam"
    assert best(means, "insertion") == "random"
    # an undefined similarity (a map that became constant) is never the best sanity value
    assert best({"gradcam": 0.3, "collapsed": float("nan")}, "sanity") == "gradcam"


def test_no_row_is_best_where_all_tie_as_the_table_shows_them():
    """0.0071 and 0.0069 are both 0.007 in the table: neither is marked best, nor said to beat the other."""
    assert best({"gradcam": 0.0071, "layercam": 0.0069}, "deletion") is None
    assert best({"gradcam": 0.0, "layercam": 0.0, "hirescam": 0.0}, "pointing") is None
    assert (
        best({"gradcam": 0.0071, "layercam": 0.0069, "eigencam": 0.2}, "deletion") == "gradcam"
    )  # the first
    assert best({"gradcam": 0.5}, "deletion") == "gradcam"  # alone, it is the best there is
