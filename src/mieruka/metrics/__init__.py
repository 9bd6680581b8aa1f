"""Measures of how good a map is, as plain functions on tensors."""

from .localization import pointing_game

__all__ = ["pointing_game"]
