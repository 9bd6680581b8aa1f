"""Transformer-native maps: attention rollout and gradient-weighted attention, on timm's ViT family.

How the attention is read: timm's attention modules (ViT, DeiT, DINOv2, BEiT, EVA) compute
softmax(q k^T / sqrt(d)) and pass it through ``attn_drop`` (a Dropout, the identity in eval mode)
before multiplying by the values, unless ``fused_attn`` sends them through
``F.scaled_dot_product_attention``, which never materializes the matrix. For the duration of a call
the fused path is switched off and a forward hook on each ``attn_drop`` records the block's attention
(N, heads, L, L); both are undone in ``finally``. Gradients follow the capture engine's habits: the
forward starts without an autograd graph, the first block's attention is where the graph begins, and
``torch.autograd.grad`` differentiates with respect to the attention tensors only (no ``.backward()``,
no parameter gradient).

Tokens are P prefix tokens (class, distillation, register) and then an h x w patch grid; maps cover the
patch grid only. A map is the relevance of the patches for the tokens the classifier reads: the class
token with token pooling, class and distillation tokens (averaged) on distilled DeiT, and otherwise
(average, max or attention pooling) the patch tokens themselves, averaged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import MierukaError
from ..layers import evaluating

# timm's attention modules with a fused_attn switch and the attention matrix through attn_drop, and the
# ViT-family models that hold them; looked up by name so that older timm versions simply lack some
_ATTENTION_CLASSES = (
    ("timm.layers.attention", "Attention"),  # vit, deit, dinov2 (timm >= 1.0)
    ("timm.layers.attention", "AttentionRope"),
    ("timm.models.vision_transformer", "Attention"),  # vit, deit, dinov2 (timm 0.9)
    ("timm.models.beit", "Attention"),
    ("timm.models.eva", "EvaAttention"),
)
_MODEL_CLASSES = (
    ("timm.models.vision_transformer", "VisionTransformer"),
    ("timm.models.beit", "Beit"),
    ("timm.models.eva", "Eva"),
)
SUPPORTED = "timm ViT-family models (VisionTransformer: ViT, DeiT, DINOv2 with registers; BEiT; EVA)"
HEAD_FUSIONS = ("mean", "max", "min")


class AttentionError(MierukaError):
    """A model whose attention mieruka cannot read, or attention that is not what was expected."""


@dataclass(frozen=True)
class PatchTokens:
    """Where the patches are among the L tokens, and which tokens the classifier reads."""

    prefix: int  # class, distillation and register tokens before the grid
    grid: tuple[int, int]  # (h, w) patches, row-major after the prefix
    readout: tuple[int, ...] | None  # rows the head reads; None: the patch tokens, averaged


@dataclass
class AttentionCapture:
    """One pass: each block's attention (N, heads, L, L), dS_k/dA per block (K, N, heads, L, L), and the
    model's output (its logits for a classifier)."""

    attentions: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    logits: object


def _classes(table: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    found = []
    for module, name in table:
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def vision_transformer(model: nn.Module) -> nn.Module:
    """The timm ViT-family model in `model` (itself, or inside a wrapper); AttentionError if none."""
    classes = _classes(_MODEL_CLASSES)
    found = next((m for m in model.modules() if isinstance(m, classes)), None)
    if found is None or not attention_modules(found):
        kind = type(model)  # in full: torchvision's ViT is a VisionTransformer too, and not supported
        raise AttentionError(
            f"attention maps need one of the {SUPPORTED}; got {kind.__module__}.{kind.__qualname__}: "
            "explain it with a CAM method instead (mieruka methods lists them)"
        )
    return found


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """timm attention modules of `model`, in the order they were registered (block order)."""
    classes = _classes(_ATTENTION_CLASSES)
    return [m for m in model.modules() if isinstance(m, classes)]


def patch_tokens(model: nn.Module, image: tuple[int, int]) -> PatchTokens:
    """The token layout of a timm ViT-family `model` for an input of `image` = (H, W) pixels."""
    vit = vision_transformer(model)
    embed = vit.patch_embed
    feat_size = getattr(embed, "dynamic_feat_size", None)  # timm >= 1.0; older: the fixed grid
    h, w = feat_size(image) if feat_size is not None else embed.grid_size
    distilled = _classes((("timm.models.deit", "VisionTransformerDistilled"),))
    if distilled and isinstance(vit, distilled):
        readout: tuple[int, ...] | None = (0, 1)  # its head averages the class and distillation heads
    else:
        readout = (0,) if vit.global_pool == "token" else None
    return PatchTokens(int(vit.num_prefix_tokens), (int(h), int(w)), readout)


@contextmanager
def recording_attention(model: nn.Module, *, differentiable: bool = False) -> Iterator[list[torch.Tensor]]:
    """Record each block's attention (N, heads, L, L) into the yielded list while forwards run.

    The model runs in eval mode with timm's fused attention off; flags, modes and hooks are restored on
    exit, also after an exception. With `differentiable`, the first block's attention becomes a leaf
    that requires grad and gradients are switched on from there, so run the forward under
    ``torch.no_grad()`` (and outside inference mode) to keep no graph below it; the caller's grad
    mode is restored on exit.

    >>> import timm
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=2)
    >>> with recording_attention(vit) as attentions, torch.no_grad():
    ...     _ = vit(torch.randn(1, 3, 64, 64))
    >>> len(attentions), tuple(attentions[0].shape)
    (2, (1, 3, 17, 17))
    """
    modules = attention_modules(vision_transformer(model))
    taken: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 4 or output.shape[-1] != output.shape[-2]:
            raise AttentionError(f"expected attention (N, heads, L, L), got {tuple(output.shape)}")
        if differentiable and not output.requires_grad:
            output = output.detach().requires_grad_()
            torch.set_grad_enabled(True)  # from here on, the forward builds a graph
        taken.append(output)
        return output

    fused = [m.fused_attn for m in modules]
    grad_mode = torch.is_grad_enabled()
    handles = []
    try:
        for module in modules:
            module.fused_attn = False
            handles.append(module.attn_drop.register_forward_hook(hook))
        with evaluating(model):
            yield taken
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(modules, fused):
            module.fused_attn = flag
        torch.set_grad_enabled(grad_mode)


def capture_attention(
    model: nn.Module,
    inputs: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> AttentionCapture:
    """One forward of `model` on `inputs` recording every block's attention; with `score_fn(logits) ->
    (N, K)`, also dS_k/dA for each block from one small backward per target.

    Works under the caller's ``torch.no_grad()`` / ``torch.inference_mode()``; the parameters' ``.grad``
    are never touched.
    """
    modules = attention_modules(vision_transformer(model))
    if inputs.is_inference():
        with torch.inference_mode(False):
            inputs = inputs.clone()
    with (
        torch.inference_mode(False),
        recording_attention(model, differentiable=score_fn is not None) as taken,
    ):
        with torch.no_grad():
            output = model(inputs)
        if len(taken) != len(modules):
            raise AttentionError(
                f"expected one attention matrix per block ({len(modules)}), recorded {len(taken)}"
            )
        attentions = [a.detach() for a in taken]
        if score_fn is None:
            return AttentionCapture(attentions, None, output)
        with torch.enable_grad():  # the caller may be under no_grad: the scores must join the graph
            scores = _scores(score_fn, output, len(inputs))
        gradients = _gradients(scores, taken)
        return AttentionCapture(attentions, gradients, output)


def _scores(score_fn: Callable[[object], torch.Tensor], output: object, batch: int) -> torch.Tensor:
    scores = score_fn(output)
    if scores.dim() != 2 or scores.shape[0] != batch:
        raise ValueError(f"expected scores (N={batch}, K), got {tuple(scores.shape)}")
    return scores


def _gradients(scores: torch.Tensor, attentions: list[torch.Tensor]) -> list[torch.Tensor]:
    """dS_k/dA per block, stacked (K, N, heads, L, L); a block the score does not reach gets zeros."""
    if not scores.requires_grad:
        raise AttentionError("the target scores do not depend on the attention differentiably")
    per_block: list[list[torch.Tensor]] = [[] for _ in attentions]
    count = scores.shape[1]
    for k in range(count):
        grads = torch.autograd.grad(
            scores[:, k].sum(), attentions, retain_graph=k < count - 1, allow_unused=True
        )
        for block, (grad, attention) in enumerate(zip(grads, attentions)):
            per_block[block].append(torch.zeros_like(attention) if grad is None else grad)
    return [torch.stack(grads) for grads in per_block]


def fuse_heads(attention: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """(..., heads, L, L) -> (..., L, L) by the mean, max or min over heads."""
    if head_fusion == "mean":
        return attention.mean(-3)
    if head_fusion == "max":
        return attention.amax(-3)
    if head_fusion == "min":
        return attention.amin(-3)
    raise ValueError(f"head_fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")


def discard_lowest(attention: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the lowest `ratio` of each (L, L) matrix's weights, sparing entry (0, 0).

    As the usual rollout implementation does (jacobgil/vit-explain): the int(ratio * L^2) smallest
    entries are dropped, except the first token's (the class token's) attention to itself.
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"discard_ratio must be in [0, 1), got {ratio}")
    flat = attention.flatten(-2)
    count = int(flat.shape[-1] * ratio)
    if count == 0:
        return attention
    lowest = flat.topk(count, dim=-1, largest=False).indices
    drop = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, lowest, True)
    drop[..., 0] = False
    return flat.masked_fill(drop, 0).reshape(attention.shape)


def rollout(
    attentions: Sequence[torch.Tensor], *, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, ACL 2020): joint attention (N, L, L) through all blocks.

    Per block the heads are fused, the lowest `discard_ratio` of weights dropped (not in the paper;
    the common implementation's option), the residual added as 0.5 A + 0.5 I and the rows
    re-normalized; the blocks' matrices are multiplied, R = A_B ... A_2 A_1. Class-agnostic.
    Unlike jacobgil/vit-explain, every image of the batch gets its discarding, and rows are divided by
    their own sums (its ``a / a.sum(dim=-1)`` broadcasts the sums over columns; the two agree only
    when no weight is discarded and heads are averaged).
    """
    joint: torch.Tensor | None = None
    for attention in attentions:
        fused = discard_lowest(fuse_heads(attention.float(), head_fusion), discard_ratio)
        eye = torch.eye(fused.shape[-1], device=fused.device, dtype=fused.dtype)
        step = (fused + eye) / 2
        step = step / step.sum(-1, keepdim=True)
        joint = step if joint is None else step @ joint
    if joint is None:
        raise ValueError("rollout needs the attention of at least one block")
    return joint


def gae(attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor]) -> torch.Tensor:
    """Generic Attention-model Explainability (Chefer, Gur & Wolf, ICCV 2021): relevance (K, N, L, L).

    For self-attention, R = I and per block R <- R + mean_heads((dS/dA * A)^+) R (their eq. 6 and 13);
    `attentions` are (N, heads, L, L) per block, `gradients` dS_k/dA (K, N, heads, L, L). The name is
    the authors' (``generate_map_gae`` in their code).
    """
    relevance: torch.Tensor | None = None
    for attention, gradient in zip(attentions, gradients):
        weighted = (gradient.float() * attention.float()).clamp_min(0).mean(-3)  # (K, N, L, L)
        if relevance is None:
            eye = torch.eye(weighted.shape[-1], device=weighted.device, dtype=weighted.dtype)
            relevance = eye.expand_as(weighted)
        relevance = relevance + weighted @ relevance
    if relevance is None:
        raise ValueError("gae needs the attention and gradients of at least one block")
    return relevance


def patch_map(relevance: torch.Tensor, tokens: PatchTokens) -> torch.Tensor:
    """(..., L, L) token relevance -> (..., h, w): the readout rows' relevance of the patch tokens."""
    length = relevance.shape[-1]
    h, w = tokens.grid
    if length != tokens.prefix + h * w:
        raise AttentionError(
            f"expected {tokens.prefix} prefix tokens and a {h}x{w} patch grid ({tokens.prefix + h * w} "
            f"tokens), got {length} tokens"
        )
    rows = relevance[..., list(tokens.readout), :] if tokens.readout else relevance[..., tokens.prefix :, :]
    return rows.mean(-2)[..., tokens.prefix :].reshape(*relevance.shape[:-2], h, w)


def attention_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    method: str,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.9,
) -> torch.Tensor:
    """Maps (N, K, h, w) on the patch grid, non-negative, for the K scores of `score_fn(logits) -> (N, K)`.

    `method` is "rollout" (class-agnostic: the same map for every target; `head_fusion` and
    `discard_ratio` apply) or "gae" (one forward and one small backward per target).

    >>> import timm
    >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=2)
    >>> top2 = lambda logits: logits.topk(2, dim=1).values
    >>> attention_maps(vit, torch.randn(1, 3, 64, 64), top2, "gae").shape
    torch.Size([1, 2, 4, 4])
    """
    from . import get_method

    name = get_method(method).name
    if name not in ("rollout", "gae"):
        raise ValueError(f"{method!r} is not an attention method; choose rollout or gae")
    tokens = patch_tokens(model, (inputs.shape[-2], inputs.shape[-1]))
    if name == "rollout":
        captured = capture_attention(model, inputs)
        count = _scores(score_fn, captured.logits, len(inputs)).shape[1]
        relevance = rollout(captured.attentions, head_fusion=head_fusion, discard_ratio=discard_ratio)
        cells = patch_map(relevance, tokens)
        return cells[:, None].expand(-1, count, -1, -1)
    captured = capture_attention(model, inputs, score_fn)
    assert captured.gradients is not None
    return patch_map(gae(captured.attentions, captured.gradients), tokens).transpose(0, 1)
