"""Vision transformers: the automatic layer, token and channels-last layouts, and agreement with
pytorch-grad-cam given the correct hand-written reshape for each model."""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision
from torch import nn

from mieruka import GradCAM
from mieruka.layers import candidate_layers, class_token_head
from mieruka.layouts import LayoutError
from mieruka.targets import TargetError

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


def _random_head(model: nn.Module, scale: float = 1.0) -> nn.Module:
    """Seeded random weights for the last linear layer (torchvision's ViT starts with a zero head)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * scale)
        if last.bias is not None:
            last.bias.zero_()
    return model.eval()


def _hf_vit() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=384, num_labels=10
    )
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config).eval()


def _hf_hiera() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.HieraConfig(
        embed_dim=16, num_heads=[1, 1, 2, 2], depths=[1, 1, 2, 2], num_labels=10
    )
    torch.manual_seed(0)
    return transformers.HieraForImageClassification(config).eval()


def _tokens(prefix: int, grid: tuple[int, int]):
    """The reshape_transform everyone writes by hand, written correctly for this model."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        return patches.reshape(tokens.shape[0], *grid, tokens.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _channels_last(maps: torch.Tensor) -> torch.Tensor:
    return maps.permute(0, 3, 1, 2)


def _timm(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return _random_head(timm.create_model(name, pretrained=False, **kwargs))


def _torchvision(name: str) -> nn.Module:
    torch.manual_seed(0)
    return _random_head(torchvision.models.get_model(name, weights=None))


# model, the documented automatic layer, its layout as reported, the reshape for pytorch-grad-cam
CASES = {
    "vit_small_patch16_224": (
        lambda: _timm("vit_small_patch16_224"), "blocks.11.norm1", "tokens: 1 prefix + 14x14", _tokens(1, (14, 14)),
    ),
    "deit_small_distilled_patch16_224": (
        lambda: _timm("deit_small_distilled_patch16_224"), "blocks.11.norm1", "tokens: 2 prefix + 14x14",
        _tokens(2, (14, 14)),
    ),
    "vit_small_patch14_reg4_dinov2": (
        lambda: _timm("vit_small_patch14_reg4_dinov2", img_size=224), "blocks.11.norm1",
        "tokens: 5 prefix + 16x16", _tokens(5, (16, 16)),
    ),
    "tnt_s_patch16_224 (blocks of pixel and patch streams)": (
        lambda: _timm("tnt_s_patch16_224", depth=4), "blocks.3.norm_out", "tokens: 1 prefix + 14x14",
        _tokens(1, (14, 14)),
    ),
    # SigLIP's attention-pooling head reads every patch through a key and value projection (its
    # `attn_pool.kv`, tokens of twice the width): the pooling's inside is head, the tokens it reads are
    # the features
    "vit_base_patch16_siglip_224 (attention-pooling head)": (
        lambda: _timm("vit_base_patch16_siglip_224", depth=2), "norm", "tokens: 0 prefix + 14x14",
        _tokens(0, (14, 14)),
    ),
    "swin_tiny_patch4_window7_224": (
        lambda: _timm("swin_tiny_patch4_window7_224"), "norm", "channels-last", _channels_last,
    ),
    "torchvision vit_b_16": (
        lambda: _torchvision("vit_b_16"), "encoder.layers.encoder_layer_11.ln_1", "tokens: 1 prefix + 14x14",
        _tokens(1, (14, 14)),
    ),
    "torchvision swin_t": (lambda: _torchvision("swin_t"), "permute", "channels-first", None),
    "Hugging Face ViTForImageClassification": (
        _hf_vit, "vit.layers.3.layernorm_before", "tokens: 1 prefix + 14x14", _tokens(1, (14, 14)),
    ),
    # its blocks return (tokens, attention): the last tensor with tokens is a residual branch (an MLP's
    # output), and the stream after the last block is no module's output, so that block's entry is read
    "Hugging Face Hiera (blocks return tuples)": (
        _hf_hiera, "hiera.encoder.stages.3.layers.1.layernorm_before", "tokens: 0 prefix + 7x7",
        _tokens(0, (7, 7)),
    ),
}  # fmt: skip


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    low, high = maps.amin((-2, -1), keepdim=True), maps.amax((-2, -1), keepdim=True)
    return (maps - low) / (high - low)


class _Logits(nn.Module):
    """pytorch-grad-cam needs a tensor output: Hugging Face's `.logits`, taken out by hand."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def _reference(model, layer_name, reshape, x, targets, score=None) -> torch.Tensor:
    """pytorch-grad-cam's maps for class `targets`, or for `score` (a batch's output -> (N,)) per image."""
    wrapped = _Logits(model) if "transformers" in type(model).__module__ else model
    layer = model.get_submodule(layer_name)
    if score is not None:
        chosen = [lambda one: score(one[None])[0]] * len(x)
    else:
        chosen = [ClassifierOutputTarget(int(t)) for t in targets]
    with pytorch_grad_cam.GradCAM(
        model=wrapped, target_layers=[layer], reshape_transform=reshape
    ) as reference:
        maps = reference(input_tensor=x, targets=chosen)
    return torch.from_numpy(maps)


@pytest.mark.parametrize("name", CASES)
def test_automatic_layer_and_agreement_with_pytorch_grad_cam(name):
    build, layer, layout, reshape = CASES[name]
    model = build()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    ours = GradCAM(model)(x)
    assert ours.layer == layer and ours.layout == layout
    assert not ours.empty.any()
    theirs = _reference(model, layer, reshape, x, ours.targets)
    assert (_min_max(ours.maps) - theirs).abs().max() < 1e-3


@pytest.mark.parametrize(
    ("build", "reads_class_token"),
    [
        (CASES["vit_small_patch16_224"][0], True),
        (CASES["torchvision vit_b_16"][0], True),
        (CASES["Hugging Face ViTForImageClassification"][0], True),
        (lambda: _timm("vit_small_patch16_224", global_pool="avg"), False),  # a class token, pooled patches
        (CASES["torchvision swin_t"][0], False),
        (lambda: _torchvision("resnet18"), False),
    ],
)
def test_a_class_token_head_is_told_from_one_that_pools_the_patches(build, reads_class_token):
    """Where the head reads only the class token the command line says which methods follow it."""
    assert class_token_head(build(), torch.zeros(1, 3, 224, 224)) is reads_class_token


def test_a_head_that_scores_every_token_is_not_taken_for_features():
    """VOLO adds to its class-token score the best of per-token class scores (`aux_head`, tokens of
    1000 scores): that linear layer is head, not a feature map. The layer before it, whose patches
    the token scores read, is chosen."""
    model = _timm("volo_d1_224")
    x = torch.randn(1, 3, 224, 224)
    result = GradCAM(model)(x)
    assert (result.layer, result.layout) == ("norm", "tokens: 1 prefix + 14x14")
    assert result.maps.flatten(1).amax(1).item() > 0
    assert class_token_head(model, x) is False  # the patches reach the scores through aux_head


@pytest.mark.parametrize(("height", "width"), [(224, 224), (320, 256), (160, 288)])
def test_other_input_sizes_read_the_grid_from_the_input(height, width):
    model = _timm("vit_small_patch16_224", dynamic_img_size=True)
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(2))
    ours = GradCAM(model)(x)
    grid = (height // 16, width // 16)
    assert ours.layout == f"tokens: 1 prefix + {grid[0]}x{grid[1]}" and ours.raw.shape == (1, *grid)
    theirs = _reference(model, "blocks.11.norm1", _tokens(1, grid), x, ours.targets)
    assert (_min_max(ours.maps) - theirs).abs().max() < 1e-3


def test_hugging_face_outputs_say_which_field_was_used():
    result = GradCAM(_hf_vit())(torch.randn(1, 3, 224, 224))
    assert result.output == "logits" and result.logits.shape == (1, 10)


class _Embedder(nn.Module):
    """A model whose output is a dict of embeddings, not class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2))
        self.project = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict:
        return {"embedding": self.project(self.features(x).mean((2, 3)))}


def test_an_output_without_class_scores_asks_for_a_target_function():
    model = _Embedder().eval()
    with pytest.raises(TargetError, match="pass a target function"):
        GradCAM(model, "features")(torch.randn(2, 3, 32, 32))
    result = GradCAM(model, "features")(torch.randn(2, 3, 32, 32), targets=lambda out: out["embedding"][:, 0])
    assert result.maps.shape == (2, 32, 32) and result.targets is None


@pytest.mark.parametrize(
    ("read", "layer"),
    [
        (lambda out: out[:, 0, 3], "blocks.1.norm1"),  # the class token's score: as a class-token head
        (lambda out: out[:, 1:, 3].mean(1), "norm"),  # every patch's score: as a pooling head
    ],
)
def test_the_automatic_layer_of_a_model_that_scores_every_token_follows_the_target_function(read, layer):
    """timm's global_pool='' gives each token its own class scores (N, tokens, classes): the layer is
    found from what the target function reads, and the head (linear, dropout) is not taken for it."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, global_pool="").eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    result = GradCAM(model)(x, targets=read)
    assert (result.layer, result.layout) == (layer, "tokens: 1 prefix + 4x4")
    theirs = _reference(model, layer, _tokens(1, (4, 4)), x, None, score=read)
    assert (_min_max(result.maps) - theirs).abs().max() < 1e-3
    with pytest.raises(TargetError, match="pass a target function"):  # without one, nothing says what to read
        GradCAM(model)(x)


class _Tokens(nn.Module):
    """Emits 281 tokens over a 224 x 320 input with no token parameters: 1 + 14x20 or 15 + 14x19."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 16, stride=16)
        self.extra = nn.Parameter(torch.randn(1, 1, 8))
        self.mix = nn.Identity()
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x).flatten(2).transpose(1, 2)
        tokens = self.mix(torch.cat([self.extra.expand(len(x), -1, -1), patches], 1))
        return self.head(tokens.mean(1))


def test_an_ambiguous_token_layout_is_refused_until_it_is_given():
    model, x = _Tokens().eval(), torch.randn(1, 3, 224, 320)
    with pytest.raises(LayoutError, match=r"ambiguous.*prefix_tokens=P, grid=\(h, w\).*--prefix-tokens"):
        GradCAM(model, "mix")(x)
    told = GradCAM(model, "mix", prefix_tokens=1)(x)
    assert told.raw.shape == (1, 14, 20) and told.layout == "tokens: 1 prefix + 14x20"
    assert GradCAM(model, "mix", grid=(14, 20))(x).layout == "tokens: 1 prefix + 14x20"
    with pytest.raises(LayoutError, match=r"281 tokens, but prefix_tokens=0 and grid=\(14, 20\) make 280"):
        GradCAM(model, "mix", prefix_tokens=0, grid=(14, 20))(x)
    with pytest.raises(LayoutError, match="not a token sequence"):
        GradCAM(model, "embed", layout="tokens")(x)


def test_ablation_and_score_cam_run_on_tokens():
    from mieruka import CAM

    model = _timm("vit_tiny_patch16_224")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    maps = CAM(model, score_channels=16).compare(x, ["gradcam", "ablationcam", "scorecam"])
    for result in maps.values():
        assert result.raw.shape == (1, 14, 14) and not result.empty.any()


@pytest.mark.parametrize(
    ("build", "layer"),
    [
        (lambda: _timm("tnt_s_patch16_224", depth=2), "pixel_embed.proj"),  # 4x4 pixels of every patch
        (lambda: _timm("tnt_s_patch16_224", depth=2), "blocks.1.attn_in.attn_drop"),
        (lambda: _timm("swin_tiny_patch4_window7_224", depths=(1, 1, 1, 1)), "layers.0.blocks.0.attn"),
    ],
)
def test_a_layer_that_folds_windows_or_patches_into_the_batch_is_refused(build, layer):
    """Read as a batch of maps, the first image would get the map of one patch of itself and the second
    that of another patch of the first. Whatever the batch size, such a layer is refused and not listed."""
    model = build()
    for count in (1, 2):
        with pytest.raises(LayoutError, match=rf"{re.escape(layer)}.*folds windows, patches or heads"):
            GradCAM(model, target_layer=layer)(torch.randn(count, 3, 224, 224))
    listed = {info.name for info, _ in candidate_layers(model, torch.zeros(1, 3, 224, 224))}
    assert layer not in listed and listed
