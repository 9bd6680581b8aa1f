"""The explainer users call: capture once, apply a CAM method, return maps with everything around them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .capture import capture
from .layers import auto_layer, resolve_layer
from .maps import normalize, upsample
from .methods import get_method
from .targets import TargetSpec, resolve_targets

LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None


@dataclass
class CAMResult:
    """Maps for a batch. With ``top_k`` every per-target field gains a K axis after N."""

    maps: torch.Tensor  # (N, H, W) in [0, 1] at the input's resolution
    raw: torch.Tensor  # (N, h, w) after ReLU, at the layer's resolution, not normalized
    empty: torch.Tensor  # (N,) bool: the map had no positive value, so it is all zero
    logits: torch.Tensor  # (N, classes)
    probs: torch.Tensor  # (N, classes) softmax of the logits
    targets: torch.Tensor | None  # (N,) class indices, None for a target function
    labels: list | None  # the targets' class names, shaped like `targets`
    layer: str  # dotted name(s) of the layer(s) used, comma-separated
    method: str

    @property
    def target_probs(self) -> torch.Tensor | None:
        """Probability of each explained class, shaped like `targets`."""
        if self.targets is None:
            return None
        flat = self.targets.reshape(self.targets.shape[0], -1)
        return self.probs.gather(1, flat).reshape(self.targets.shape)


class CAM:
    """Class activation maps of `model` at `target_layer` with a gradient-based `method`.

    `target_layer` is a dotted name, a module, a sequence of them (maps fused by averaging), or None
    for the automatic choice (see :mod:`mieruka.layers`). The model is never changed: it runs in
    eval mode for the call, and hooks live only during the call.

    >>> import torchvision
    >>> cam = CAM(torchvision.models.resnet18().eval())
    >>> result = cam(torch.randn(2, 3, 224, 224))
    >>> result.maps.shape, result.layer
    (torch.Size([2, 224, 224]), 'layer4')
    """

    method = "gradcam"

    def __init__(
        self,
        model: nn.Module,
        target_layer: LayerSpec = None,
        *,
        method: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.model = model
        self.method = method or self.method
        self._function = get_method(self.method)
        self.labels = list(labels) if labels is not None else None
        self._layers = self._resolve(target_layer) if target_layer is not None else None

    def _resolve(self, target_layer: LayerSpec) -> list[tuple[str, nn.Module]]:
        if isinstance(target_layer, str | nn.Module):
            specs: list = [target_layer]
            if isinstance(target_layer, str) and "," in target_layer:
                specs = [s.strip() for s in target_layer.split(",") if s.strip()]
        else:
            specs = list(target_layer or [])
        return [resolve_layer(self.model, spec) for spec in specs]

    def layers(self, inputs: torch.Tensor) -> list[tuple[str, nn.Module]]:
        """The (name, module) pairs explained, picking the automatic layer on first use."""
        if self._layers is None:
            self._layers = self._resolve(auto_layer(self.model, inputs))
        return self._layers

    def __call__(
        self, inputs: torch.Tensor, targets: TargetSpec = None, *, top_k: int | None = None
    ) -> CAMResult:
        """Maps for a preprocessed batch (N, C, H, W); `targets` as in :func:`mieruka.targets.resolve_targets`."""
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"expected a batch of images (N, C, H, W), got {shape}")
        inputs = _match_model(self.model, inputs)
        layers = self.layers(inputs)
        captured = capture(
            self.model,
            [module for _, module in layers],
            inputs,
            lambda logits: resolve_targets(targets, logits, self.labels, top_k),
            layer_names=[name for name, _ in layers],
        )
        assert captured.gradients is not None
        raw = self._combine(captured.activations, captured.gradients)  # (N, K, h, w)
        maps, empty = normalize(upsample(raw, tuple(inputs.shape[-2:])))
        logits = captured.logits.float()
        indices = captured.targets.indices
        squeeze = top_k is None

        def shaped(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.squeeze(1) if squeeze else tensor

        names = None
        if indices is not None and self.labels is not None:
            names = [[self.labels[i] for i in row] for row in indices.tolist()]
            names = [row[0] for row in names] if squeeze else names
        return CAMResult(
            maps=shaped(maps),
            raw=shaped(raw),
            empty=shaped(empty),
            logits=logits,
            probs=logits.softmax(dim=1),
            targets=shaped(indices) if indices is not None else None,
            labels=names,
            layer=",".join(name for name, _ in layers),
            method=self.method,
        )

    def _combine(self, activations: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
        """Apply the method per layer, ReLU, and fuse layers at the finest resolution: (N, K, h, w)."""
        per_layer = []
        for activation, gradient in zip(activations, gradients):
            spatial = activation.shape[2:]
            cam = self._function(activation.float().flatten(2), gradient.float().flatten(3))
            per_layer.append(cam.clamp_min(0).reshape(*cam.shape[:2], *spatial).transpose(0, 1))
        if len(per_layer) == 1:
            return per_layer[0]
        size = max((tuple(p.shape[-2:]) for p in per_layer), key=lambda s: s[0] * s[1])
        return torch.stack([normalize(upsample(p, size))[0] for p in per_layer]).mean(0)


class GradCAM(CAM):
    """Grad-CAM (Selvaraju et al., 2017): ReLU(sum_k mean(dS/dA_k) A_k), normalized by its maximum."""

    method = "gradcam"


def _match_model(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Move the batch to the model's device and floating dtype."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is None:
        return inputs
    return inputs.to(device=parameter.device, dtype=parameter.dtype)
