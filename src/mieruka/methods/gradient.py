"""Gradient-based CAM methods on activations A (N, C, P) and gradients G (K, N, C, P)."""

from __future__ import annotations

import torch


def channel_weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_c w[k, n, c] * A[n, c, p] -> (K, N, P), without materializing (K, N, C, P)."""
    return torch.einsum("knc,ncp->knp", weights, activations)


def gradcam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017): channel weight = spatial mean of dS/dA."""
    return channel_weighted_sum(gradients.mean(-1), activations)
