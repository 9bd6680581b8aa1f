"""Attention methods for vision transformers: the numbers of the papers' formulas, written here
independently (plain hooks, .backward(), numpy loops), on tiny random timm ViTs; no side effects."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import timm
import torch
import torchvision
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from conftest import hook_count
from mieruka import CAM
from mieruka.methods import get_method, parse_methods
from mieruka.methods.attention import (
    AttentionError,
    attention_maps,
    capture_attention,
    patch_tokens,
    recording_attention,
)

TARGETS = [3, 7]


def pick(logits: torch.Tensor) -> torch.Tensor:
    """Two fixed classes per image: K = 2 targets."""
    return logits[:, TARGETS]


def peaked(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights large enough that attention is far from uniform (timm's init is nearly so)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(std=0.2)
    return model.eval()


def tiny_vit(**kwargs) -> nn.Module:
    config = dict(img_size=64, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_classes=10)
    return peaked(VisionTransformer(**{**config, **kwargs}))


# (model, input (H, W), prefix tokens, rows the head reads or None for the patch tokens averaged)
def models():
    return {
        "vit": (lambda: tiny_vit(), (64, 64), 1, [0]),
        "deit-distilled": (
            lambda: peaked(
                VisionTransformerDistilled(
                    img_size=64, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=10
                )
            ),
            (64, 64),
            2,
            [0, 1],
        ),
        "registers-dynamic-non-square": (
            lambda: tiny_vit(reg_tokens=4, dynamic_img_size=True),
            (48, 80),
            5,
            [0],
        ),
        "avg-pool-no-class-token": (
            lambda: tiny_vit(class_token=False, global_pool="avg"),
            (64, 64),
            0,
            None,
        ),
        "beit": (
            lambda: peaked(
                timm.create_model(
                    "beit_base_patch16_224",
                    pretrained=False,
                    img_size=64,
                    embed_dim=64,
                    depth=2,
                    num_heads=4,
                    num_classes=10,
                )
            ),
            (64, 64),
            1,
            None,
        ),
        "eva02": (
            lambda: peaked(
                timm.create_model(
                    "eva02_tiny_patch14_224", pretrained=False, img_size=56, depth=2, num_classes=10
                )
            ),
            (56, 56),
            1,
            None,
        ),
    }


MODELS = models()


def reference_attention(model: nn.Module, x: torch.Tensor, target: int | None = None):
    """Each block's attention, and its gradient for `target`, the plain way: a copy of the model with
    fused attention off, forward hooks that retain grads, and .backward()."""
    model = copy.deepcopy(model)
    attentions: list[torch.Tensor] = []

    def keep(module, args, output):
        output.retain_grad()
        attentions.append(output)

    for block in model.blocks:
        block.attn.fused_attn = False
        block.attn.attn_drop.register_forward_hook(keep)
    logits = model(x)
    if target is None:
        return [a.detach().double().numpy() for a in attentions], None
    logits[:, target].sum().backward()
    return (
        [a.detach().double().numpy() for a in attentions],
        [a.grad.double().numpy() for a in attentions],
    )


def numpy_rollout(attentions, fusion: str, ratio: float) -> np.ndarray:
    """Abnar & Zuidema's rollout as jacobgil/vit-explain computes it, one image at a time."""
    batch, _, length, _ = attentions[0].shape
    eye = np.eye(length)
    result = []
    for n in range(batch):
        joint = eye
        for attention in attentions:
            fused = {"mean": np.mean, "max": np.max, "min": np.min}[fusion](attention[n], axis=0)
            flat = fused.flatten()
            lowest = np.argsort(flat, kind="stable")[: int(flat.size * ratio)]
            flat[lowest[lowest != 0]] = 0  # the class token's attention to itself is kept
            step = (flat.reshape(length, length) + eye) / 2
            step = step / step.sum(axis=1, keepdims=True)
            joint = step @ joint
        result.append(joint)
    return np.stack(result)


def numpy_gae(attentions, gradients) -> np.ndarray:
    """Chefer, Gur & Wolf (ICCV 2021), self-attention rules: R = I; R += mean_h((grad * A)^+) @ R."""
    batch, _, length, _ = attentions[0].shape
    result = []
    for n in range(batch):
        relevance = np.eye(length)
        for attention, gradient in zip(attentions, gradients):
            weighted = np.maximum(gradient[n] * attention[n], 0).mean(axis=0)
            relevance = relevance + weighted @ relevance
        result.append(relevance)
    return np.stack(result)


def numpy_patch_map(relevance: np.ndarray, prefix: int, rows, grid) -> np.ndarray:
    """The rows the head reads (or every patch row), averaged, over the patch columns, as a grid."""
    chosen = relevance[:, rows] if rows is not None else relevance[:, prefix:]
    return chosen.mean(axis=1)[:, prefix:].reshape(len(relevance), *grid)


@pytest.mark.parametrize("name", list(MODELS))
def test_rollout_matches_a_numpy_loop_of_the_paper(name):
    build, size, prefix, rows = MODELS[name]
    model = build()
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    attentions, _ = reference_attention(model, x)
    grid = patch_tokens(model, size).grid
    assert patch_tokens(model, size).prefix == prefix
    for fusion, ratio in [("mean", 0.0), ("mean", 0.9), ("max", 0.5), ("min", 0.0)]:
        maps = attention_maps(model, x, pick, "rollout", head_fusion=fusion, discard_ratio=ratio)
        expected = numpy_patch_map(numpy_rollout(attentions, fusion, ratio), prefix, rows, grid)
        assert maps.shape == (2, len(TARGETS), *grid)
        for k in range(len(TARGETS)):  # class-agnostic: the same map for every target
            np.testing.assert_allclose(maps[:, k].numpy(), expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", list(MODELS))
def test_gae_matches_hooks_backward_and_a_numpy_loop(name):
    build, size, prefix, rows = MODELS[name]
    model = build()
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))
    maps = attention_maps(model, x, pick, "gae")
    grid = patch_tokens(model, size).grid
    assert maps.shape == (2, len(TARGETS), *grid)
    for k, target in enumerate(TARGETS):
        attentions, gradients = reference_attention(model, x, target)
        expected = numpy_patch_map(numpy_gae(attentions, gradients), prefix, rows, grid)
        assert expected.max() > 0  # the check is not vacuous
        np.testing.assert_allclose(maps[:, k].numpy(), expected, rtol=1e-5, atol=1e-9)


def test_captured_attention_and_gradients_are_the_models():
    model = tiny_vit()
    x = torch.randn(2, 3, 64, 64)
    captured = capture_attention(model, x, pick)
    attentions, gradients = reference_attention(model, x, TARGETS[1])
    assert len(captured.attentions) == 4 and captured.attentions[0].shape == (2, 4, 65, 65)
    for ours, theirs in zip(captured.attentions, attentions):
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-8)
    for ours, theirs in zip(captured.gradients, gradients):
        assert ours.shape == (2, 2, 4, 65, 65)
        np.testing.assert_allclose(ours[1].numpy(), theirs, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(captured.logits, model(x))


def fused_flags(model: nn.Module) -> list[bool]:
    return [block.attn.fused_attn for block in model.blocks]


def test_the_model_is_unchanged_after_a_call():
    model = tiny_vit().train()
    model.blocks[1].attn.fused_attn = False  # a mix, to see each flag come back as it was
    before = fused_flags(model)
    x = torch.randn(2, 3, 64, 64)
    version = x._version
    for method in ("rollout", "gae"):
        attention_maps(model, x, pick, method)
    assert fused_flags(model) == before == [True, False, True, True]
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert x._version == version and torch.is_grad_enabled()


def test_the_model_is_restored_when_the_forward_raises():
    model = tiny_vit().train()
    before = fused_flags(model)

    def fail(module, args):
        raise RuntimeError("boom")

    handle = model.blocks[2].register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        attention_maps(model, torch.randn(1, 3, 64, 64), pick, "gae")
    handle.remove()
    assert fused_flags(model) == before and hook_count(model) == 0
    assert all(m.training for m in model.modules()) and torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"), recording_attention(model, differentiable=True):
        torch.set_grad_enabled(False)
        raise RuntimeError("boom")
    assert torch.is_grad_enabled() and fused_flags(model) == before and hook_count(model) == 0


def test_the_callers_no_grad_and_inference_mode_give_the_same_maps():
    model = tiny_vit()
    x = torch.randn(2, 3, 64, 64)
    expected = attention_maps(model, x, pick, "gae")
    with torch.no_grad():
        torch.testing.assert_close(attention_maps(model, x, pick, "gae"), expected, rtol=0, atol=0)
    with torch.inference_mode():
        inference = attention_maps(model, x.clone(), pick, "gae")
    torch.testing.assert_close(inference, expected, rtol=0, atol=0)


def test_frozen_model_and_batch_equals_per_image():
    model = tiny_vit().requires_grad_(False)
    x = torch.randn(3, 3, 64, 64)
    together = attention_maps(model, x, pick, "gae")
    alone = torch.cat([attention_maps(model, x[i : i + 1], pick, "gae") for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-9)


def test_a_second_input_size_on_a_dynamic_model():
    model = tiny_vit(reg_tokens=4, dynamic_img_size=True)
    for size, grid in [((64, 64), (8, 8)), ((96, 64), (12, 8)), ((40, 72), (5, 9))]:
        maps = attention_maps(model, torch.randn(1, 3, *size), pick, "gae")
        assert maps.shape == (1, 2, *grid)


def test_dinov2_with_registers_at_a_small_and_a_non_square_size():
    model = peaked(
        timm.create_model(
            "vit_small_patch14_reg4_dinov2",
            pretrained=False,
            img_size=56,
            depth=2,
            num_classes=10,
            dynamic_img_size=True,
        )
    )
    assert patch_tokens(model, (56, 56)) == patch_tokens(model, (56, 56)).__class__(5, (4, 4), (0,))
    for size, grid in [((56, 56), (4, 4)), ((42, 70), (3, 5))]:
        x = torch.randn(1, 3, *size)
        attentions, gradients = reference_attention(model, x, TARGETS[0])
        expected = numpy_patch_map(numpy_gae(attentions, gradients), 5, [0], grid)
        maps = attention_maps(model, x, pick, "gae")[:, 0]
        np.testing.assert_allclose(maps.numpy(), expected, rtol=1e-5, atol=1e-9)


def test_a_model_without_timm_attention_is_refused_in_one_line(tiny_net):
    with pytest.raises(
        AttentionError,
        match=r"timm ViT-family models .* got [\w.]+\.TinyGapNet: explain it with a CAM method",
    ) as error:
        attention_maps(tiny_net, torch.randn(1, 1, 4, 4), pick, "rollout")
    assert "\n" not in str(error.value)


def test_torchvisions_vit_is_named_in_full_when_refused():
    """Its class is a VisionTransformer too: the bare name would read as a contradiction."""
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16().eval()
    with pytest.raises(
        AttentionError, match=r"got torchvision\.models\.vision_transformer\.VisionTransformer: "
    ):
        attention_maps(model, torch.randn(1, 3, 224, 224), pick, "rollout")


def test_a_wrapped_vit_works():
    model = tiny_vit()
    wrapped = nn.Sequential(nn.Identity(), model).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(attention_maps(wrapped, x, pick, "gae"), attention_maps(model, x, pick, "gae"))


def test_registry_names():
    assert get_method("rollout").kind == get_method("Chefer").kind == "attention"
    assert get_method("attention-rollout").name == "rollout" and get_method("chefer").name == "gae"
    assert all(m.kind != "attention" for m in parse_methods("all"))  # 'all' stays runnable on CNNs
    with pytest.raises(ValueError, match="not an attention method"):
        attention_maps(tiny_vit(), torch.randn(1, 3, 64, 64), pick, "gradcam")
    with pytest.raises(ValueError, match="head_fusion"):
        attention_maps(tiny_vit(), torch.randn(1, 3, 64, 64), pick, "rollout", head_fusion="median")


def test_cam_gives_the_attention_maps_for_its_targets():
    model = tiny_vit()
    x = torch.randn(2, 3, 64, 64)
    # the layer only drives the shared capture (targets, logits) until the engine knows transformers
    results = CAM(model, "patch_embed.proj").compare(x, ["rollout", "gae"], TARGETS[0])
    for name, result in results.items():
        expected = attention_maps(model, x, lambda logits: logits[:, [TARGETS[0]]], name)[:, 0]
        torch.testing.assert_close(result.raw, expected)
        assert result.maps.shape == (2, 64, 64) and result.maps.amax() == 1
