"""The CAM family, each method a small function, all on the one capture of :mod:`mieruka.capture`.

Gradient-based methods (and Eigen-CAM) turn activations A (N, C, P) and gradients G (K, N, C, P) into
channel contributions (K, N, C, P) -- P the flattened spatial size, K the targets -- so all of them
come from ONE forward/backward capture. Perturbation methods measure channel weights by running the
model again; guided methods need the gradient at the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .gradient import (
    eigencam,
    eigengradcam,
    first_component,
    gradcam,
    gradcam_plus_plus,
    hirescam,
    layercam,
    xgradcam,
)
from .guided import guided_backprop, guided_relus
from .perturbation import ablationcam_weights, scorecam_weights

Contributions = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """A CAM method: how it is computed and what it needs."""

    name: str
    kind: str  # "gradient", "activation", "perturbation" or "guided"
    summary: str
    contributions: Contributions | None = None
    projection: bool = False  # reduce channels by the first principal component instead of a sum


def _summary(function: Callable) -> str:
    return (function.__doc__ or "").strip().splitlines()[0]


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("gradcam", "gradient", _summary(gradcam), gradcam),
        Method("gradcam++", "gradient", _summary(gradcam_plus_plus), gradcam_plus_plus),
        Method("xgradcam", "gradient", _summary(xgradcam), xgradcam),
        Method("hirescam", "gradient", _summary(hirescam), hirescam),
        Method("layercam", "gradient", _summary(layercam), layercam),
        Method("eigengradcam", "gradient", _summary(eigengradcam), eigengradcam, projection=True),
        Method("eigencam", "activation", _summary(eigencam), eigencam, projection=True),
        Method(
            "scorecam",
            "perturbation",
            "Score-CAM (Wang et al., CVPR-W 2020): channel weights from the target score of inputs masked "
            "by each channel; one forward pass per channel.",
        ),
        Method(
            "ablationcam",
            "perturbation",
            "Ablation-CAM (Desai & Ramaswamy, WACV 2020): channel weight = relative score drop when the "
            "channel is zeroed; re-runs only the part after the layer.",
        ),
        Method(
            "guidedbackprop",
            "guided",
            "Guided Backpropagation (Springenberg et al., 2015): input gradient through guided ReLUs; "
            "class-agnostic detail.",
        ),
        Method(
            "guidedgradcam",
            "guided",
            "Guided Grad-CAM (Selvaraju et al., 2017): Guided Backpropagation times the upsampled "
            "Grad-CAM map; high-resolution and class-discriminative.",
        ),
    )
}
GRADIENT_METHODS = [name for name, m in METHODS.items() if m.kind in ("gradient", "activation")]
_ALIASES = {
    "gradcampp": "gradcam++",
    "gradcamplusplus": "gradcam++",
    "ablation": "ablationcam",
    "score": "scorecam",
}


def get_method(name: str) -> Method:
    """A method by name, forgiving case, '-' and '_' (``Grad-CAM++``, ``grad_cam``, ``LayerCAM``...)."""
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)} (or 'all')")
    return METHODS[key]


def parse_methods(text: str) -> list[Method]:
    """'gradcam,layercam' or 'all' -> methods, in the order given, without repeats."""
    if text.strip().lower() == "all":
        return list(METHODS.values())
    chosen: list[Method] = []
    for part in text.split(","):
        if part.strip():
            method = get_method(part.strip())
            if method not in chosen:
                chosen.append(method)
    if not chosen:
        raise ValueError("no method given; choose from " + ", ".join(METHODS))
    return chosen


__all__ = [
    "GRADIENT_METHODS",
    "METHODS",
    "Method",
    "ablationcam_weights",
    "eigencam",
    "eigengradcam",
    "first_component",
    "get_method",
    "gradcam",
    "gradcam_plus_plus",
    "guided_backprop",
    "guided_relus",
    "hirescam",
    "layercam",
    "parse_methods",
    "scorecam_weights",
    "xgradcam",
]
