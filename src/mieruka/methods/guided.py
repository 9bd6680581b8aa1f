"""Guided Backpropagation and Guided Grad-CAM, without leaving modified ReLUs behind in the model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..layers import evaluating


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients through positive inputs."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inputs)
        return inputs.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (inputs,) = ctx.saved_tensors
        return grad.clamp_min(0) * (inputs > 0).to(grad.dtype)


def _guided_forward(inputs: torch.Tensor) -> torch.Tensor:
    return _GuidedReLU.apply(inputs)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Make every ``nn.ReLU`` module of `model` guided for the block; the originals come back after.

    The patch is an instance attribute shadowing ``forward``, removed in ``finally``: the model's
    modules, classes and state dict are never replaced. Functional ``F.relu`` calls are not guided
    (as in pytorch-grad-cam).
    """
    patched = [m for m in model.modules() if isinstance(m, nn.ReLU) and "forward" not in vars(m)]
    for module in patched:
        module.forward = _guided_forward  # type: ignore[method-assign]
    try:
        yield model
    finally:
        for module in patched:
            del module.forward


def guided_backprop(model: nn.Module, inputs: torch.Tensor, scores) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al., ICLR-W 2015): d score / d input through guided ReLUs.

    `scores(logits) -> (N, K)` picks the targets; returns gradients (K, N, C, H, W). Parameters get no
    gradient and the model is left as it was.
    """
    with torch.inference_mode(False), torch.enable_grad(), evaluating(model), guided_relus(model):
        leaf = inputs.detach().clone().requires_grad_(True)
        target_scores = scores(model(leaf))
        count = target_scores.shape[1]
        grads = [
            torch.autograd.grad(target_scores[:, k].sum(), leaf, retain_graph=k < count - 1)[0]
            for k in range(count)
        ]
    return torch.stack(grads)
