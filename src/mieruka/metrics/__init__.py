"""Measures of how good a map is, as plain functions on tensors."""

from .controls import CONTROLS, centre_prior, random_map
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
from .localization import box_mask, centre_energy, energy_inside, localize_in_photo, pointing_game
from .sanity import Randomization, parameter_randomization, randomizable_blocks, spearman, ssim

__all__ = [
    "CONTROLS",
    "Curve",
    "Randomization",
    "Road",
    "average_drop",
    "box_mask",
    "centre_energy",
    "centre_prior",
    "deletion",
    "energy_inside",
    "impute",
    "increase_in_confidence",
    "insertion",
    "localize_in_photo",
    "masked_confidence",
    "parameter_randomization",
    "pointing_game",
    "random_map",
    "randomizable_blocks",
    "road",
    "spearman",
    "ssim",
    "substrate_of",
]
