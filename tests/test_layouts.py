"""A layer's output is read as a channels-first map only when it is one: everything else is refused."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from conftest import random_model
from mieruka import GradCAM
from mieruka.layers import auto_layer
from mieruka.layouts import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    OTHER,
    POINT,
    TOKENS,
    VECTOR,
    LayoutError,
    is_grid,
    layout,
    prefix_tokens,
    token_grid,
)


@pytest.mark.parametrize(
    ("cells", "image"),
    [
        ((7, 7), (224, 224)),  # ResNet layer4
        ((14, 14), (224, 224)),  # VGG features.29
        ((7, 10), (224, 320)),  # a landscape input
        ((8, 8), (225, 225)),  # odd sizes round up
        ((55, 55), (224, 224)),  # AlexNet conv1: stride 4, 11x11 kernel, little padding
        ((6, 6), (8, 8)),  # an unpadded 3x3 convolution
        ((224, 224), (224, 224)),  # a segmentation head at full resolution
        ((448, 448), (224, 224)),  # upsampled twice
        ((1, 7), (32, 224)),
    ],
)
def test_real_feature_map_grids(cells, image):
    assert is_grid(cells, image)


@pytest.mark.parametrize(
    ("cells", "image"),
    [
        ((49, 49), (224, 224)),  # a Swin window's attention matrix (49 tokens x 49 tokens)
        ((197, 197), (224, 224)),  # a ViT attention matrix
        ((197, 64), (224, 224)),  # ViT tokens x head dimensions
        ((7, 768), (224, 224)),  # a channels-last map read channels-first
        ((900, 900), (224, 224)),
    ],
)
def test_what_only_looks_like_a_grid(cells, image):
    assert not is_grid(cells, image)


@pytest.mark.parametrize(
    ("shape", "image", "expected"),
    [
        ((2, 512, 7, 7), (224, 224), CHANNELS_FIRST),
        ((2, 7, 7, 768), (224, 224), CHANNELS_LAST),  # Swin stage output, timm
        ((2, 197, 384), (224, 224), TOKENS),  # ViT: class token + 14 x 14
        ((2, 201, 384), (224, 224), TOKENS),  # DINOv2 with 4 registers
        ((2, 1000), (224, 224), VECTOR),
        ((2, 512, 1, 1), (224, 224), POINT),
        ((2, 6, 197, 64), (224, 224), OTHER),  # per-head keys
        ((2, 6, 197, 197), (224, 224), OTHER),  # attention
        ((2, 1, 256), (224, 224), OTHER),  # one token (a class token alone): no grid, as (2, 256, 1, 1)
    ],
)
def test_layout_of_common_outputs(shape, image, expected):
    assert layout(shape, image) == expected


def test_a_head_that_reads_the_class_token_alone_after_its_norm_gets_the_last_block():
    """PiT's final norm sees only the class token, (N, 1, C): not a 1 x 1 map to explain (it drew one
    uniform square), so the rule steps back into the last block, a 7 x 7 grid behind a class token."""
    torch.manual_seed(0)
    model = timm.create_model("pit_ti_224").eval()
    result = GradCAM(model)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout) == ("transformers.2.blocks.3.norm1", "tokens: 1 prefix + 7x7")


def test_an_attention_pooling_head_over_a_cnn_leaves_the_feature_map_it_pools():
    """CLIP's ResNets end in an attention pool: the map's 7 x 7 patches and their mean become 50
    tokens read only through the first. No transformer block follows the map, so the map is the layer
    (it used to be refused as a class-token head with no block to step back into)."""
    torch.manual_seed(0)
    model = timm.create_model("resnet50_clip").eval()
    result = GradCAM(model)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout, result.raw.shape) == ("final_conv", "channels-first", (1, 7, 7))


def test_class_attention_blocks_after_the_patch_blocks_are_where_the_head_reads_the_patches():
    """CaiT's last two blocks let the class token alone attend to the patches, which they leave as
    they are; the residual stream entering the last of them (class token and patches) is the layer,
    not the last patch block one step earlier."""
    torch.manual_seed(0)
    model = timm.create_model("cait_xxs24_224").eval()
    result = GradCAM(model)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout) == ("blocks_token_only.1.norm1", "tokens: 1 prefix + 14x14")
    assert result.raw.abs().amax() > 0


@pytest.mark.parametrize(
    "arch, layer, layout",
    [
        ("levit_128s", "stages", "tokens: 0 prefix + 4x4"),  # 16 tokens: 0 + 4x4, 7 + 3x3 or 12 + 2x2
        ("twins_svt_small", "norm", "tokens: 0 prefix + 7x7"),
        ("hiera_tiny_224", "blocks.11", "tokens: 0 prefix + 7x7"),  # an all-zero head: no gradient to ask
    ],
)
def test_a_model_with_no_token_parameters_is_read_with_no_prefix_tokens(arch, layer, layout):
    """Nothing in these models could be put before the patches, so their token counts, which other
    splits would also fit, are read as a bare grid, and the map is that grid's."""
    torch.manual_seed(0)
    model = timm.create_model(arch).eval()
    assert prefix_tokens(model) == 0
    result = GradCAM(model)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout) == (layer, layout)
    side = int(layout.rsplit("x", 1)[1])
    assert result.raw.shape == (1, side, side)


def test_hiera_stages_still_unrolled_are_refused_and_the_last_is_read_row_by_row():
    """Hiera keeps its patches in an unrolled order until its last stage. timm's own `reroll` shows
    the last stage is row-major (so its map is right), and an earlier block is refused: read row by
    row its map would be scrambled."""
    torch.manual_seed(0)
    model = timm.create_model("hiera_tiny_224").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = model.forward_features(x)  # (1, 49, C) after the last block
        spatial = model.reroll(tokens, len(model.blocks) - 1)  # timm's own (1, 7, 7, C)
    torch.testing.assert_close(tokens.reshape(1, 7, 7, -1), spatial)
    assert GradCAM(model, "blocks.11")(x).layout == "tokens: 0 prefix + 7x7"
    with pytest.raises(LayoutError, match=r"'blocks.9' outputs 196x384.*unrolled order \(Hiera\)"):
        GradCAM(model, "blocks.9")(x)


def test_hugging_face_hiera_is_read_like_timm_s():
    """Hugging Face's Hiera unrolls its patches the same way and keeps the schedule on its encoder: its
    last stage, row by row, matches the encoder's own reroll; an earlier stage is refused."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.HieraConfig(embed_dim=16, num_heads=[1, 1, 2, 2], depths=[1, 1, 2, 2], num_labels=3)
    model = transformers.HieraForImageClassification(config).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        out = model.hiera(x, output_hidden_states=True)
    torch.testing.assert_close(out.hidden_states[-1].reshape(1, 7, 7, -1), out.reshaped_hidden_states[-1])
    assert GradCAM(model)(x).layout == "tokens: 0 prefix + 7x7"
    with pytest.raises(LayoutError, match=r"outputs 784x32.*unrolled order \(Hiera\)"):
        GradCAM(model, "hiera.encoder.stages.2.layers.0.layernorm_before")(x)


def test_a_last_stage_of_one_pooling_block_is_read_at_its_norm_not_at_a_branch():
    """A Hiera whose last stage is one block: that block pools first, so inside it the stream's shape
    appears first at the attention's output (a branch); the norm before its MLP is the stream."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.HieraConfig(embed_dim=16, num_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1], num_labels=3)
    model = transformers.HieraForImageClassification(config).eval()
    result = GradCAM(model)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout) == (
        "hiera.encoder.stages.3.layers.0.layernorm_after",
        "tokens: 0 prefix + 7x7",
    )


def test_per_stage_class_tokens_count_once():
    """CoaT keeps a class token per stage (cls_token1..4): each stage's layers see one."""
    model = timm.create_model("coat_lite_tiny").eval()
    assert prefix_tokens(model) == 1
    assert GradCAM(model)(torch.randn(1, 3, 224, 224)).layout == "tokens: 1 prefix + 7x7"


def test_a_token_like_parameter_of_another_name_leaves_the_count_unknown():
    """CLIP keeps its class token as a vector named class_embedding: the count is not known, so an
    ambiguous token count is refused rather than read as a bare grid."""

    class Clipish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.class_embedding = nn.Parameter(torch.zeros(8))
            self.proj = nn.Linear(8, 8)

    assert prefix_tokens(Clipish()) is None
    assert prefix_tokens(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())) == 0


def test_a_layout_given_by_the_user_reads_the_layer_the_automatic_rule_probes():
    """A layout the user gives (no --layer needed) is the one the automatic rule reads: told 7 prefix
    tokens on LeViT's 16, the probe reads the last stage as 7 + 3x3 (what it is told, not 4 x 4)."""
    torch.manual_seed(0)
    model = timm.create_model("levit_128s").eval()
    result = GradCAM(model, prefix_tokens=7)(torch.randn(1, 3, 224, 224))
    assert (result.layer, result.layout, result.raw.shape) == ("stages", "tokens: 7 prefix + 3x3", (1, 3, 3))


def test_a_layout_the_user_gives_that_the_map_cannot_have_is_refused():
    """ResNet's 512x7x7 read channels-last would be a 512x7 grid: no stride makes that of 224 pixels."""
    model = random_model("resnet18").eval()
    x = torch.randn(1, 3, 224, 224)
    with pytest.raises(LayoutError, match=r"'layer4'.*channels-last.*512x7 cells.*set channels-first"):
        GradCAM(model, layout="channels-last")(x)
    assert GradCAM(model, layout="channels-first")(x).raw.shape == (1, 7, 7)
    swin = timm.create_model("swin_tiny_patch4_window7_224", depths=(1, 1, 1, 1)).eval()
    with pytest.raises(LayoutError, match=r"'norm'.*channels-first.*7x768 cells"):
        GradCAM(swin, "norm", layout="channels-first")(x)
    assert GradCAM(swin, "norm", layout="channels-last")(x).raw.shape == (1, 7, 7)


def test_token_grid_finds_prefix_tokens_and_the_grid():
    assert token_grid(197, (224, 224)) == (1, (14, 14))
    assert token_grid(198, (224, 224)) == (2, (14, 14))  # DeiT: class + distillation token
    assert token_grid(1 + 24 * 24, (384, 384)) == (1, (24, 24))
    assert token_grid(1 + 14 * 20, (224, 320)) == (1, (14, 20))


def test_when_both_readings_fit_the_module_decides():
    assert layout((1, 7, 7, 7), (224, 224), "LayerNorm") == CHANNELS_LAST
    assert layout((1, 7, 7, 7), (224, 224), "Conv2d") == CHANNELS_FIRST


@pytest.mark.parametrize(
    ("build", "layer", "message"),
    [
        (lambda: random_model("resnet18"), "fc", "one vector per image"),
        (lambda: random_model("resnet18"), "avgpool", "a 1x1 map cannot show where"),
        (lambda: timm.create_model("vit_tiny_patch16_224"), "blocks.11.attn.k_norm", "not a feature map"),
    ],
)
def test_a_named_layer_that_is_not_a_feature_map_is_refused_in_one_line(build, layer, message):
    model = build().eval()
    with pytest.raises(LayoutError, match=message) as caught:
        GradCAM(model, layer)(torch.randn(1, 3, 224, 224))
    assert len(str(caught.value).splitlines()) == 1 and repr(layer) in str(caught.value)


def test_a_per_head_tensor_and_window_attention_are_never_read_as_maps():
    # (N, heads, L, d) and (N * windows, heads, 49, 49): neither is a grid over the image, nor tokens
    assert layout((2, 6, 197, 64), (224, 224)) == OTHER
    assert layout((128, 3, 49, 49), (224, 224), batch=2) == OTHER


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: torchvision.models.swin_t(), "permute"),  # its head permutes the last stage channels-first
        (lambda: torchvision.models.maxvit_t(), "blocks.3"),
        (lambda: timm.create_model("convnext_atto"), "norm_pre"),
    ],
)
def test_hybrid_models_with_channels_first_last_stages_keep_an_automatic_layer(build, expected):
    assert auto_layer(build().eval(), torch.randn(1, 3, 224, 224)) == expected
