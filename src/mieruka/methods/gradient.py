"""Gradient-based CAM methods: each turns activations A (N, C, P) and gradients G (K, N, C, P) into
channel contributions (K, N, C, P); the engine sums them over channels (or projects them on their first
principal component) and applies one ReLU. P is the flattened spatial size, K the number of targets.
"""

from __future__ import annotations

import torch


def _spatial_sum(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.sum(-1, keepdim=True)


def gradcam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017): channel weight = spatial mean of dS/dA."""
    return gradients.mean(-1, keepdim=True) * activations


def gradcam_plus_plus(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al., WACV 2018): weights = sum of alpha * ReLU(dS/dA), eq. 19.

    alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), set to 0 where g = 0; no additive epsilon (the peers add
    1e-6 or 1e-8, which distorts small gradients).
    """
    squared = gradients.pow(2)
    denominator = 2 * squared + _spatial_sum(activations) * squared * gradients
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where((gradients != 0) & (denominator != 0), squared / safe, torch.zeros_like(squared))
    weights = _spatial_sum(alpha * gradients.clamp_min(0))
    return weights * activations


def xgradcam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM (Fu et al., BMVC 2020): weight = sum of dS/dA * A / sum(A), axiom-based."""
    total = _spatial_sum(activations)
    safe = torch.where(total != 0, total, torch.ones_like(total))
    weights = _spatial_sum(gradients * activations) / safe
    return torch.where(total != 0, weights, torch.zeros_like(weights)) * activations


def hirescam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos & Carin, 2020): element-wise dS/dA * A, faithful to the model's computation."""
    return gradients * activations


def layercam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al., IEEE TIP 2021): element-wise ReLU(dS/dA) * A, sharp on shallow layers too."""
    return gradients.clamp_min(0) * activations


def eigengradcam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """EigenGrad-CAM (pytorch-grad-cam): first principal component of dS/dA * A, class-discriminative."""
    return gradients * activations


def eigencam(activations: torch.Tensor, gradients: torch.Tensor | None) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin, IJCNN 2020): first principal component of A; needs no gradient."""
    return activations.unsqueeze(0)


def first_component(contributions: torch.Tensor) -> torch.Tensor:
    """Project (..., C, P) on its first principal component over positions -> (..., P), batched.

    Positions are centred per channel first (as Eigen-CAM does). The sign of a principal component is
    arbitrary; it is chosen so the projection's largest magnitude is positive (Chung & Ying, 2025, eq. 13).
    """
    samples = contributions.transpose(-1, -2).double()  # (..., P, C)
    samples = samples - samples.mean(-2, keepdim=True)
    samples = torch.nan_to_num(samples)
    _, _, right = torch.linalg.svd(samples, full_matrices=False)
    projection = (samples @ right[..., 0, :].unsqueeze(-1)).squeeze(-1)
    flip = projection.amin(-1, keepdim=True).abs() > projection.amax(-1, keepdim=True).abs()
    return torch.where(flip, -projection, projection).to(contributions.dtype)
