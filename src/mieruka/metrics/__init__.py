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

__all__ = [
    "Curve",
    "Road",
    "average_drop",
    "deletion",
    "energy_inside",
    "impute",
    "increase_in_confidence",
    "insertion",
    "masked_confidence",
    "pointing_game",
    "road",
    "substrate_of",
]
