"""Perturbation-based CAM methods: channel weights measured by running (part of) the model again.

Both return channel weights (K, N, C) for captured activations A (N, C, h, w); the engine turns them
into contributions w * A like the gradient methods. They run under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Scorer = Callable[
    [torch.Tensor, torch.Tensor], torch.Tensor
]  # (model output for B inputs, image index (B,)) -> float scores (B, K)
Progress = Callable[[int, int], None]  # (passes done, passes in all): for a progress bar


def _normalized_masks(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each channel upsampled to the input size and min-max scaled to [0, 1]; constant channels give 0."""
    upsampled = F.interpolate(activations.float(), size=size, mode="bilinear", align_corners=False)
    return _min_max(upsampled)


def _min_max(upsampled: torch.Tensor) -> torch.Tensor:
    low = upsampled.amin((-2, -1), keepdim=True)
    high = upsampled.amax((-2, -1), keepdim=True)
    span = high - low
    return torch.where(span > 0, (upsampled - low) / torch.where(span > 0, span, 1.0), 0.0)


@torch.inference_mode()
def scorecam_weights(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    activations: torch.Tensor,
    scores: Scorer,
    *,
    batch_size: int = 64,
    skip_empty: bool = True,
    top_channels: int | None = None,
    progress: Progress | None = None,
    to_input: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Score-CAM (Wang et al., CVPR-W 2020): weight_c = softmax over channels of the target score of
    the input masked by channel c (upsampled, min-max normalized), as pytorch-grad-cam and torchcam do.

    One masked forward pass per channel and image, `batch_size` at a time. `skip_empty` skips channels
    that are constant (all zero after a ReLU): their masks are all zero, so each would add the same
    term to the softmax denominator; skipping them rescales every weight by one factor, which the map's
    normalization removes -- the normalized map is unchanged. `top_channels` keeps only the N channels
    with the largest mean activation (as Faster Score-CAM does): an approximation, N times fewer passes.
    `to_input(activations (1, C, h, w), image index)` puts image n's channels on the input's pixels
    when the layer's grid does not simply cover the input (a detector's padded batch); by default
    they are upsampled.
    """
    batch, channels = activations.shape[:2]
    size = tuple(inputs.shape[-2:])
    logits_all: list[torch.Tensor] = []
    keep_all: list[torch.Tensor] = []
    done = 0
    for n in range(batch):
        if to_input is None:
            masks = _normalized_masks(activations[n : n + 1], size)[0]  # (C, H, W)
        else:
            masks = _min_max(to_input(activations[n : n + 1].float(), n))[0]
        keep = torch.ones(channels, dtype=torch.bool, device=masks.device)
        if skip_empty:
            keep &= masks.flatten(1).amax(1) > 0
        if top_channels is not None and top_channels < channels:
            strength = activations[n].float().flatten(1).mean(1)
            chosen = torch.zeros_like(keep)
            chosen[strength.topk(top_channels).indices] = True
            keep &= chosen
        indices = keep.nonzero().flatten()
        per_channel, before = [], done
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            masked = inputs[n : n + 1] * masks[chunk, None].to(inputs.dtype)
            per_channel.append(scores(model(masked), torch.full((len(chunk),), n, device=masked.device)))
            done += len(chunk)
            if progress is not None:  # later images are counted as needing as many passes as this one
                progress(done, before + len(indices) * (batch - n))
        logits_all.append(torch.cat(per_channel) if per_channel else activations.new_zeros(0, 1).float())
        keep_all.append(keep)
    # softmax over the kept channels of each image; skipped channels get weight 0
    weights = []
    for n in range(batch):
        target_scores = logits_all[n]  # (kept, K)
        full = torch.full((channels, target_scores.shape[1] if target_scores.numel() else 1), float("-inf"))
        full = full.to(activations.device)
        full[keep_all[n]] = target_scores
        weights.append(torch.nan_to_num(full.softmax(0), nan=0.0).T)  # (K, C)
    return torch.stack(weights, 1)


@torch.inference_mode()
def ablationcam_weights(
    tail: Callable[[torch.Tensor, int], torch.Tensor],
    activations: torch.Tensor,
    original: torch.Tensor,
    scores: Scorer,
    *,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020): weight_c = (y - y_c) / y, where y_c is the target
    score with channel c of the layer set to zero.

    `tail(activation_batch, image_index)` runs only the part of the network after the target layer, so
    each ablation costs a fraction of a forward pass. `original` holds the unablated scores (N, K).
    """
    batch, channels = activations.shape[:2]
    weights = []
    for n in range(batch):
        ablated_scores = []
        for start in range(0, channels, batch_size):
            chunk = torch.arange(start, min(start + batch_size, channels), device=activations.device)
            ablated = activations[n : n + 1].repeat(len(chunk), *([1] * (activations.dim() - 1)))
            ablated[torch.arange(len(chunk), device=chunk.device), chunk] = 0
            ablated_scores.append(
                scores(tail(ablated, n), torch.full((len(chunk),), n, device=ablated.device))
            )
            if progress is not None:
                progress(n * channels + start + len(chunk), batch * channels)
        y_c = torch.cat(ablated_scores)  # (C, K)
        y = original[n].float()  # (K,)
        weights.append(((y - y_c) / y).T)  # (K, C)
    return torch.stack(weights, 1)
