"""Measures of how good a map is, as plain functions on tensors."""

from .faithfulness import (
    Curve,
    Road,
    average_drop,
    deletion,
    impute,
    increase_in_confidence,
    insertion,
    masked_confidence,
    road,
    substrate_of,
)
from .localization import energy_inside, pointing_game
from .sanity import Randomization, parameter_randomization, randomizable_blocks, spearman, ssim

__all__ = [
    "Curve",
    "Randomization",
    "Road",
    "average_drop",
    "deletion",
    "energy_inside",
    "impute",
    "increase_in_confidence",
    "insertion",
    "masked_confidence",
    "parameter_randomization",
    "pointing_game",
    "randomizable_blocks",
    "road",
    "spearman",
    "ssim",
    "substrate_of",
]
