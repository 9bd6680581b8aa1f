"""Per-image values to a table cell: the mean, a bootstrap confidence interval, the count of values
behind them, and which way is better."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..metric_names import SEED

# which direction is better for each metric's per-image value
DIRECTIONS = {
    "deletion": "lower",  # area under the deletion curve
    "insertion": "higher",  # area under the insertion curve
    "road": "higher",  # (LeRF - MoRF) / 2, averaged over the shares removed
    "drop": "lower",  # Average Drop (relative)
    "increase": "higher",  # Increase in Confidence
    "pointing": "higher",  # pointing game hit rate
    "energy": "higher",  # share of the map's energy inside the boxes
    "sanity": "lower",  # Spearman of |maps| with the head (the logits layer) alone randomized
}


class Estimate(NamedTuple):
    mean: float
    low: float
    high: float
    count: int = 0  # the values (images) the mean is over, NaN ones left out


def bootstrap_ci(
    values: torch.Tensor, resamples: int = 1000, level: float = 0.95, seed: int = SEED
) -> Estimate:
    """The mean of per-image `values` (N,) and its percentile bootstrap interval (Efron 1979): the
    means of `resamples` resamples of N images drawn with replacement, all drawn in one tensor op.
    NaN values (an image a metric could not score) are left out of it and of the count; no values
    give NaN."""
    values = values.double().flatten()
    values = values[~values.isnan()]
    if len(values) == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, 0)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, len(values), (resamples, len(values)), generator=generator).to(values.device)
    means = values[draws].mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=means.dtype, device=means.device))
    return Estimate(values.mean().item(), low.item(), high.item(), len(values))


def best(means: dict[str, float], metric: str, places: int = 3) -> str | None:
    """The row with the best mean for `metric` (NaN rows ignored), by the metric's direction, as the
    table shows means (rounded to `places` decimals): None where every row ties there, since none is
    better; of rows that tie for best, the first."""
    scored = {row: round(value, places) for row, value in means.items() if value == value}
    if not scored:
        return None
    pick = max if DIRECTIONS[metric] == "higher" else min
    top = pick(scored.values())
    if len(scored) > 1 and all(value == top for value in scored.values()):
        return None
    return next(row for row, value in scored.items() if value == top)
