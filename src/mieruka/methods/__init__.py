"""The CAM family, each method a small function, all on the one capture of :mod:`mieruka.capture`.

Gradient-based methods (and Eigen-CAM) turn activations A (N, C, P) and gradients G (K, N, C, P) into
channel contributions (K, N, C, P) -- P the flattened spatial size, K the targets -- so all of them
come from ONE forward/backward capture. Perturbation methods measure channel weights by running the
model again; guided methods need the gradient at the input. Attention methods read a vision
transformer's attention matrices instead of a layer (:mod:`mieruka.methods.attention`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    Contributions = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Method:
    """A CAM method: how it is computed and what it needs.

    The registry is plain data so that listing methods (``mieruka methods``, argument checks) never
    imports torch; `function` names the contributions function in :mod:`mieruka.methods.gradient`.
    """

    name: str
    kind: str  # "gradient", "activation", "perturbation", "guided" or "attention"
    summary: str
    function: str | None = None
    projection: bool = False  # reduce channels by the first principal component instead of a sum

    @property
    def contributions(self) -> Contributions | None:
        """(activations (N, C, P), gradients (K, N, C, P)) -> contributions (K, N, C, P), or None."""
        if self.function is None:
            return None
        from . import gradient

        return getattr(gradient, self.function)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "gradcam",
            "gradient",
            "Grad-CAM (Selvaraju et al., ICCV 2017): channel weight = spatial mean of dS/dA.",
            "gradcam",
        ),
        Method(
            "gradcam++",
            "gradient",
            "Grad-CAM++ (Chattopadhay et al., WACV 2018): weights = sum of alpha * ReLU(dS/dA), eq. 19.",
            "gradcam_plus_plus",
        ),
        Method(
            "xgradcam",
            "gradient",
            "XGrad-CAM (Fu et al., BMVC 2020): weight = sum of dS/dA * A / sum(A), axiom-based.",
            "xgradcam",
        ),
        Method(
            "hirescam",
            "gradient",
            "HiResCAM (Draelos & Carin, 2020): element-wise dS/dA * A, faithful to the model's computation.",
            "hirescam",
        ),
        Method(
            "layercam",
            "gradient",
            "LayerCAM (Jiang et al., IEEE TIP 2021): element-wise ReLU(dS/dA) * A, sharp on shallow layers too.",
            "layercam",
        ),
        Method(
            "eigengradcam",
            "gradient",
            "EigenGrad-CAM (pytorch-grad-cam): first principal component of dS/dA * A, class-discriminative.",
            "eigengradcam",
            projection=True,
        ),
        Method(
            "eigencam",
            "activation",
            "Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): first principal component of A; needs no gradient.",
            "eigencam",
            projection=True,
        ),
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
        Method(
            "rollout",
            "attention",
            "Attention rollout (Abnar & Zuidema, ACL 2020): attention with the residual, multiplied "
            "through a vision transformer's blocks; class-agnostic.",
        ),
        Method(
            "gae",
            "attention",
            "Generic Attention-model Explainability (Chefer, Gur & Wolf, ICCV 2021): attention weighted "
            "by its positive gradient, accumulated through a vision transformer's blocks.",
        ),
    )
}
GRADIENT_METHODS = [name for name, m in METHODS.items() if m.kind in ("gradient", "activation")]
_ALIASES = {
    "gradcampp": "gradcam++",
    "gradcamplusplus": "gradcam++",
    "ablation": "ablationcam",
    "score": "scorecam",
    "attentionrollout": "rollout",
    "chefer": "gae",
    "genericattention": "gae",
}


def get_method(name: str) -> Method:
    """A method by name, forgiving case, '-' and '_' (``Grad-CAM++``, ``grad_cam``, ``LayerCAM``...)."""
    key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)} (or 'all')")
    return METHODS[key]


def parse_methods(text: str) -> list[Method]:
    """'gradcam,layercam' or 'all' -> methods, in the order given, without repeats.

    'all' is the CAM family, which runs on any layer; attention methods, for vision transformers
    only, are named one by one.
    """
    if text.strip().lower() == "all":
        return [m for m in METHODS.values() if m.kind != "attention"]
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
    "attention_maps",
    "eigencam",
    "eigengradcam",
    "first_component",
    "gae",
    "get_method",
    "gradcam",
    "gradcam_plus_plus",
    "guided_backprop",
    "guided_relus",
    "hirescam",
    "layercam",
    "parse_methods",
    "rollout",
    "scorecam_weights",
    "xgradcam",
]

# the method functions live in modules that need torch: imported on first use
_FUNCTIONS = {
    "ablationcam_weights": "perturbation",
    "scorecam_weights": "perturbation",
    "guided_backprop": "guided",
    "guided_relus": "guided",
    "attention_maps": "attention",
    "gae": "attention",
    "rollout": "attention",
    **{
        name: "gradient"
        for name in (
            "eigencam",
            "eigengradcam",
            "first_component",
            "gradcam",
            "gradcam_plus_plus",
            "hirescam",
            "layercam",
            "xgradcam",
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _FUNCTIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'mieruka.methods' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
