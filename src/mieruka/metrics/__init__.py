"""Measures of how good a map is, as plain functions on tensors."""

from .localization import energy_inside, pointing_game

__all__ = ["energy_inside", "pointing_game"]
