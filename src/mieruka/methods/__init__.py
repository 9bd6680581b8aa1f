"""The CAM methods: each a small function of captured activations and gradients.

Every gradient-based method takes activations ``A`` (N, C, P) and gradients ``G`` (K, N, C, P) --
spatial positions flattened to P, K targets -- and returns the map (K, N, P) before the final ReLU,
which the engine applies once for all methods.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .gradient import gradcam

CamFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

GRADIENT_METHODS: dict[str, CamFunction] = {
    "gradcam": gradcam,
}


def get_method(name: str) -> CamFunction:
    """The function of a method by its name (case-insensitive, '-' and '_' ignored)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in GRADIENT_METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(GRADIENT_METHODS)}")
    return GRADIENT_METHODS[key]


__all__ = ["GRADIENT_METHODS", "CamFunction", "get_method", "gradcam"]
