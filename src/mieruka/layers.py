"""Find the layer to explain: by dotted name, by module, or automatically from one traced forward pass.

The automatic rule picks what a practitioner would: the last module, in the order modules finish,
whose output is a feature map (N, C, h, w) with h * w > 1 that runs exactly once and is not the
output of a pooling layer. Among modules that return the very same tensor (a block and its last
child), the outermost one wins. That gives ``features.29`` on VGG16 (the ReLU before the last max-pool),
``layer4`` on ResNets, ``features`` on DenseNet / MobileNet / EfficientNet / ConvNeXt, ``trunk_output``
on RegNet and ``bn2`` on timm EfficientNets.

Detectors and segmenters (a model that resizes its batch itself, like torchvision's detectors, or
whose output is a map of class scores (N, classes, H, W)) get the same rule inside their feature
extractor: ``backbone.body`` when the backbone has a feature pyramid (Faster / Mask R-CNN, RetinaNet,
FCOS), ``backbone.features`` beside SSD's extra layers, else ``backbone`` (torchvision's FCN,
DeepLabV3 and LR-ASPP: ``backbone.layer4``, or ``backbone.16`` on MobileNetV3). That deepest stage
reaches every detected object: a feature pyramid hands each box to one level by its size, so a map
at one pyramid output leaves the objects of the other levels blank, while every level is computed
from the last stage through the top-down path. A segmenter's head is left out on purpose: after its
last feature map comes a 1x1 class-score convolution and an upsampling, where a Grad-CAM only
repeats the class's own score map. A segmenter without a ``backbone`` gets the last feature map
before its trailing class-score layers (those with one channel per class). For a detector the grids
are over the batch its transform made (see :mod:`mieruka.geometry`).

Where tokens or channels-last maps follow the last such map, the transformer rule in
:func:`_transformer_layer` applies; where those tokens are only an attention-pooling head's, with no
transformer block after the map (CLIP's ResNets), the map is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .errors import MierukaError
from .geometry import Frame, recording
from .layouts import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    TOKENS,
    LayoutError,
    LayoutRequest,
    UnrolledTokensError,
    layout,
    prefix_tokens,
    resolve_layout,
    unrolled_tokens,
)


@dataclass(frozen=True)
class LayerInfo:
    """One module as seen in a traced forward pass."""

    name: str
    kind: str
    shape: tuple[int, ...] | None
    calls: int
    depth: int
    input_shape: tuple[int, ...] | None = None  # of its first argument, when that is a tensor
    parts: tuple[tuple[int, ...], ...] = ()  # the shapes of the tensors of a tuple or list output


class LayerError(MierukaError):
    """The target layer cannot be used; the message says why and lists what can."""


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return (dotted name, module) for a name or a module of `model`."""
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerError(f"the module {type(layer).__name__} given as target layer is not part of the model")
    modules = dict(model.named_modules())
    if layer in modules and layer != "":
        return layer, modules[layer]
    hint = _closest(layer, [n for n in modules if n])
    raise LayerError(f"no layer named {layer!r} in the model{hint}; `mieruka layers` lists them")


def _closest(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def trace_layers(model: nn.Module, inputs: torch.Tensor) -> tuple[list[LayerInfo], list[tuple]]:
    """Run one forward pass without gradients and record every module's output shape and call count.

    Returns the modules in the order they finished, with, for each, the identity of its output tensor
    (used to tell containers that merely pass a child's output on). The shapes of a detector's layers
    are over the batch its transform made: :func:`seen_size` gives that image's size.
    """
    infos, outputs, _, _ = _trace(model, inputs)
    return infos, outputs


def seen_size(model: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """The (H, W) of the image the layers of `model` see for `inputs`: the input's own, or for a model
    that resizes and pads its batch itself (a torchvision detector) that padded batch's."""
    frame = _trace(model, inputs[:1])[3]
    return frame.padded if frame is not None else (inputs.shape[-2], inputs.shape[-1])


def _trace(model: nn.Module, inputs: torch.Tensor) -> tuple[list[LayerInfo], list, object, Frame | None]:
    """trace_layers, plus the model's output and the frame of a model that resizes its batch."""
    records: dict[str, dict] = {}
    order: list[str] = []
    outputs: dict[str, object] = {}
    names = {module: name for name, module in model.named_modules(remove_duplicate=False) if name}

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            record = records.setdefault(name, {"calls": 0, "kind": type(module).__name__})
            record["calls"] += 1
            if record["calls"] == 1:
                record["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else None
                record["parts"] = tuple(
                    tuple(part.shape)
                    for part in (output if isinstance(output, tuple | list) else ())
                    if isinstance(part, torch.Tensor)
                )
                first = args[0] if args else None
                record["input_shape"] = tuple(first.shape) if isinstance(first, torch.Tensor) else None
                outputs[name] = output
                order.append(name)

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for module, name in names.items()]
    try:
        with evaluating(model), torch.inference_mode(False), torch.no_grad(), recording(model) as frames:
            output = model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    infos = [
        LayerInfo(
            n,
            records[n]["kind"],
            records[n]["shape"],
            records[n]["calls"],
            n.count(".") + 1,
            records[n]["input_shape"],
            records[n]["parts"],
        )
        for n in order
    ]
    return infos, [outputs[n] for n in order], output, frames[0] if frames else None


def auto_layer(
    model: nn.Module,
    inputs: torch.Tensor,
    requested: LayoutRequest | None = None,
    score: Callable[[object], torch.Tensor] | None = None,
) -> str:
    """The dotted name of the layer the automatic rule (module docstring) picks for this input;
    `requested` (the user's layout, prefix tokens, grid) reads the token layers the rule probes, and
    `score` (a target function ``f(output) -> (N,)``) is what they ask gradients of, instead of the
    predicted class: a model whose output is no class scores (per-token scores, say) is probed too."""
    infos, outputs, output, frame = _trace(model, inputs[:1])
    image = frame.padded if frame is not None else (inputs.shape[-2], inputs.shape[-1])
    classes = _dense_classes(output)
    if frame is not None or classes is not None:
        name = _dense_layer(model, infos, outputs, image, classes)
        if name is not None:
            return name
        raise LayerError(
            "found no feature map in the model's backbone for a detector or segmenter; name one with "
            "--layer / target_layer= (`mieruka layers` lists them)"
        )
    name = pick_auto_layer(infos, outputs, image)
    if name is not None and _later_features(infos, name, image) is None:
        return name
    try:
        chosen = _transformer_layer(
            model, infos, outputs, inputs[:1], image, _score_count(output), requested, score
        )
    except MierukaError:
        if name is None or _last_block(_after(infos, name), image) is not None:
            raise
        # no transformer block after the last feature map: its tokens are an attention-pooling head's
        # (CLIP's ResNets), which pools that map, so the map is the layer
        return name
    if chosen is not None:
        return chosen
    shown = ", ".join(f"{i.name} {list(i.shape) if i.shape else '-'}" for i in infos[-12:]) or "none"
    raise LayerError(
        "found no feature map (channels-first, channels-last or tokens over a patch grid) that runs once "
        f"per forward; name one with --layer / target_layer= (last modules: {shown})"
    )


def _dense_classes(output: object) -> int | None:
    """The number of classes of a segmenter's output (N, classes, H, W); None for other outputs."""
    from .targets import output_tensor

    tensor = output_tensor(output)
    return tensor.shape[1] if tensor is not None and tensor.dim() == 4 else None


def _dense_layer(
    model: nn.Module, infos: list[LayerInfo], outputs: list, image: tuple[int, int], classes: int | None
) -> str | None:
    """The automatic layer of a detector or segmenter (module docstring)."""
    modules = dict(model.named_modules())
    scope = next((n for n in ("backbone.body", "backbone.features", "backbone") if n in modules), None)
    if scope is not None:
        inside = [(i, o) for i, o in zip(infos, outputs) if (i.name + ".").startswith(scope + ".")]
        return pick_auto_layer([i for i, _ in inside], [o for _, o in inside], image)
    candidates = [
        info
        for info in infos
        if info.calls == 1
        and info.shape is not None
        and layout(info.shape, image, info.kind, batch=1) == CHANNELS_FIRST  # not per-box (R, C, 7, 7)
    ]
    while candidates and classes is not None and candidates[-1].shape[1] == classes:
        candidates.pop()  # the class-score layers at the end
    if not candidates:
        return None
    last = candidates[-1].name
    kept = [(i, o) for i, o in zip(infos, outputs)][: [i.name for i in infos].index(last) + 1]
    return pick_auto_layer([i for i, _ in kept], [o for _, o in kept], image)


def _transformer_layer(
    model: nn.Module,
    infos: list[LayerInfo],
    outputs: list,
    inputs: torch.Tensor,
    image: tuple[int, int],
    classes: int | None = None,
    requested: LayoutRequest | None = None,
    score: Callable[[object], torch.Tensor] | None = None,
) -> str | None:
    """The automatic layer of a model whose features end as tokens or channels-last maps.

    Heads that pool the patch tokens (Swin, average-pooled ViTs) see every patch at the last feature
    layer, which is chosen; where that layer is a branch inside the last block (the stream after it is
    no module's output), the block's entry is, as for a class-token head. A head that reads only the
    class token gives the patch tokens after the last block no gradient at all; there the residual
    stream entering the last block is the last place patches matter: the first layer inside that
    block (timm's ``blocks[-1].norm1``).
    A linear layer that turns each token into `classes` scores (VOLO's token-labelling head) is part
    of the head, not a feature layer.
    """
    last = _last_token_features(infos, outputs, image, classes)
    if last is None:
        return None
    if _patches_get_gradient(model, last, inputs, image, requested, score):
        around = [b for b in _token_blocks(infos, image) if last.name.startswith(b.name + ".")]
        innermost = max(around, key=lambda b: b.depth, default=None)
        if innermost is not None and _branch_inside(infos, outputs, last, innermost):
            return _block_entry(infos, innermost, image)
        return last.name
    block = _last_block(infos, image)
    if block is None:
        raise LayerError(
            f"the model's head reads no patch token of {last.name!r} (a class-token head?) and no repeated "
            "transformer block was found to step back into; name a layer with --layer / target_layer="
        )
    return _class_attention_entry(infos, block, image) or _block_entry(infos, block, image)


def _branch_inside(infos: list[LayerInfo], outputs: list, layer: LayerInfo, block: LayerInfo) -> bool:
    """Whether `block`, which holds `layer`, does not return that layer's output: a residual branch (an
    MLP whose output the block adds to its input), not the token stream. Where a block returns a tuple
    (Hugging Face's Hiera: the tokens and attention weights), the stream after it is no module's
    output, and the last layer with tokens is such a branch."""
    by_name = dict(zip((info.name for info in infos), outputs))
    returned = by_name[block.name]
    parts = returned if isinstance(returned, tuple | list) else (returned,)
    return not any(part is by_name[layer.name] for part in parts)


def _block_entry(infos: list[LayerInfo], block: LayerInfo, image: tuple[int, int]) -> str:
    """The first layer inside `block` whose output has the shape of the token stream the block
    carries (its input; for a block that carries two streams as a tuple, as TNT's pixels and
    patches, the one over the patch grid), a normalization layer where there is one: timm's
    ``norm1``, TNT's ``norm_out``."""
    streams = [block.input_shape] if block.shape is not None else _token_parts(block, image)
    inside = [
        info
        for info in infos
        if info.name.startswith(block.name + ".") and info.calls == 1 and info.shape in streams
    ]
    # a normalization of the stream before a branch, not a branch's output: where a block first
    # pools (Hugging Face's Hiera at a new stage), its attention's output comes before any norm does
    return next((info.name for info in inside if "norm" in info.kind.lower()), inside[0].name)


def _token_parts(info: LayerInfo, image: tuple[int, int]) -> list[tuple[int, ...]]:
    """The shapes in a tuple output that are tokens over the image's patch grid."""
    return [shape for shape in info.parts if layout(shape, image, info.kind, batch=1) == TOKENS]


def _class_attention_entry(infos: list[LayerInfo], block: LayerInfo, image: tuple[int, int]) -> str | None:
    """CaiT's class-attention blocks come after the last block of patches: each reads the class token
    and the patches together and returns the class token alone, so they are no token-to-token block.
    The first token-grid layer inside the last of them (its ``norm1``) is where the head reads the
    patches; None when no such repeated block follows `block`."""
    after = _after(infos, block.name)
    names = {info.name for info in infos}
    later = [
        info
        for info in after
        if info.calls == 1
        and not block.name.startswith(info.name + ".")  # not a stage that holds the block
        and sum(_parent(other.name) == _parent(info.name) and other.kind == info.kind for other in after) >= 2
        and any(other.startswith(info.name + ".") for other in names)
    ]
    for candidate in reversed(later):
        inside = [
            info
            for info in infos
            if info.name.startswith(candidate.name + ".")
            and info.calls == 1
            and info.shape is not None
            and layout(info.shape, image, info.kind, batch=1) == TOKENS
        ]
        if inside:
            return inside[0].name
    return None


def class_token_head(model: nn.Module, inputs: torch.Tensor) -> bool:
    """Whether the model's head reads only its prefix (class) tokens: its last token layer's patch
    tokens get no gradient. There channel-weighted maps (Grad-CAM) weigh every patch alike and show
    what each token would add if read, not which tokens the head reads (README: 'Which method to
    trust on a class-token ViT')."""
    if not prefix_tokens(model):  # no class token: nothing to check, and no trace to pay for
        return False
    infos, outputs, output, frame = _trace(model, inputs[:1])
    if frame is not None:
        return False
    image = (inputs.shape[-2], inputs.shape[-1])
    last = _last_token_features(infos, outputs, image, _score_count(output))
    return last is not None and not _patches_get_gradient(model, last, inputs[:1], image)


def _score_count(output: object) -> int | None:
    """How many scores a classifier's output (N, K) holds per image, or per token for an output of
    token scores (N, T, K) (timm's global_pool=''); None for other outputs."""
    from .targets import output_tensor

    tensor = output_tensor(output)
    return tensor.shape[-1] if tensor is not None and tensor.dim() in (2, 3) else None


def _last_token_features(
    infos: list[LayerInfo], outputs: list, image: tuple[int, int], classes: int | None = None
) -> LayerInfo | None:
    """The last layer run once whose output is tokens or a channels-last map (not a pooling's, nor a
    layer's inside a pooling, as the key and value projection of an attention-pooling head (SigLIP's
    `attn_pool.kv`), nor a linear layer's that gives each token `classes` scores). A dropout or identity
    that passes the tokens on unchanged (timm's ``head_drop`` and ``head`` with global_pool='') names
    the layer that made them (``norm``)."""
    pooled = {id(out) for info, out in zip(infos, outputs) if "pool" in info.kind.lower()}
    inside = _inside_poolings(infos)
    features = [
        (info, out)
        for info, out in zip(infos, outputs)
        if info.name not in inside
        and not (info.kind == "Linear" and info.shape is not None and info.shape[-1] == classes)
        and info.calls == 1
        and info.shape is not None
        and layout(info.shape, image, info.kind, batch=1) in (TOKENS, CHANNELS_LAST)
        and id(out) not in pooled
    ]
    while len(features) > 1 and _passes_on(*features[-1], *features[-2], infos):
        features.pop()
    return features[-1][0] if features else None


_PASS_THROUGH = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout")


def _passes_on(info: LayerInfo, out: object, before: LayerInfo, out_before: object, infos) -> bool:
    """Whether `info` is a pass-through module returning `before`'s output itself, and `before` a
    layer, not a container that ends with that output (LeViT's ``stages``, a ViT's ``blocks``)."""
    container = any(other.name.startswith(before.name + ".") for other in infos)
    return info.kind in _PASS_THROUGH and out is out_before and not container


def _patches_get_gradient(
    model: nn.Module,
    info: LayerInfo,
    inputs: torch.Tensor,
    image,
    requested: LayoutRequest | None = None,
    score: Callable[[object], torch.Tensor] | None = None,
) -> bool:
    """Whether the predicted class's score (or `score`, a target function) has a gradient at the patch
    tokens (not only prefix tokens).

    Where it has none at any token (an all-zero head, as timm's Hiera and torchvision's ViT are
    built), the structure decides: a model with prefix tokens is taken to read them, one without to
    pool its patches."""
    from .capture import capture
    from .targets import resolve_targets

    hint, unrolled = prefix_tokens(model), unrolled_tokens(model)
    captured = capture(
        model,
        [model.get_submodule(info.name)],
        inputs,
        lambda output: resolve_targets(score, output),
        layer_names=[info.name],
        resolve=lambda _, module, shape, seen: resolve_layout(
            info.name,
            shape,
            seen,
            module=module,
            prefix_hint=hint,
            requested=requested,
            unrolled=unrolled,
        ),
    )
    assert captured.gradients is not None
    gradient = captured.gradients[0]
    if captured.layouts[0].to_channels_first(gradient).abs().amax() > 0:
        return True
    if gradient.abs().amax() > 0:
        return False  # the prefix tokens have a gradient, the patches none: a class-token head
    return not hint


def _after(infos: list[LayerInfo], name: str) -> list[LayerInfo]:
    """The modules of a trace that finish after the one called `name`."""
    return infos[[info.name for info in infos].index(name) + 1 :]


def _parent(name: str) -> str:
    """The dotted name of the module holding `name` ("" at the top)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def _last_block(infos: list[LayerInfo], image: tuple[int, int]) -> LayerInfo | None:
    """The last of a run of repeated blocks that map tokens to tokens of the same shape, or of a
    numbered run of blocks that each return a tuple holding tokens (TNT's pixel and patch streams)."""
    blocks = _token_blocks(infos, image)
    return blocks[-1] if blocks else None


def _token_blocks(infos: list[LayerInfo], image: tuple[int, int]) -> list[LayerInfo]:
    """The repeated token blocks of :func:`_last_block`, in the order they finish (a block before the
    stage that holds it, where stages are numbered blocks too)."""
    names = {info.name for info in infos}

    siblings: dict[tuple[str, str], int] = {}
    for info in infos:
        siblings[(_parent(info.name), info.kind)] = siblings.get((_parent(info.name), info.kind), 0) + 1

    def maps_tokens(info: LayerInfo) -> bool:
        if info.shape is None:
            return info.name.rsplit(".", 1)[-1].isdigit() and bool(_token_parts(info, image))
        return info.input_shape == info.shape and layout(info.shape, image, info.kind, batch=1) == TOKENS

    blocks = [
        info
        for info in infos
        if info.calls == 1
        and siblings[(_parent(info.name), info.kind)] >= 2
        and any(other.startswith(info.name + ".") for other in names)
        and maps_tokens(info)
    ]
    return blocks


def pick_auto_layer(infos: list[LayerInfo], outputs: list, image: tuple[int, int]) -> str | None:
    """Apply the automatic rule to a trace of an (H, W) `image`; None when no module qualifies."""
    pooled = {id(out) for info, out in zip(infos, outputs) if "pool" in info.kind.lower()}
    chosen = None
    for info, out in zip(infos, outputs):
        if (
            info.calls == 1
            and info.shape is not None
            and layout(info.shape, image, info.kind) == CHANNELS_FIRST
            and id(out) not in pooled
        ):
            chosen = info.name
    return chosen


def _later_features(infos: list[LayerInfo], chosen: str, image: tuple[int, int]) -> LayerInfo | None:
    """A token or channels-last output after `chosen`: the network's features go on in another layout
    (a transformer), so the last channels-first map is only its stem. The tokens inside a pooling
    (the attention pool of CLIP's ResNets) are head, not features."""
    inside = _inside_poolings(infos)
    for info in _after(infos, chosen):
        if (
            info.name not in inside
            and info.shape is not None
            and layout(info.shape, image, info.kind) in (TOKENS, CHANNELS_LAST)
        ):
            return info
    return None


def _inside_poolings(infos: list[LayerInfo]) -> set[str]:
    """The names of the layers inside a pooling module (an attention pool's projections)."""
    pools = [info.name + "." for info in infos if "pool" in info.kind.lower()]
    return {info.name for info in infos if info.name.startswith(tuple(pools))} if pools else set()


def layout_describer(
    model: nn.Module, image: tuple[int, int], batch: int = 1
) -> Callable[[str, LayerInfo], str]:
    """(name, LayerInfo) -> how that layer's output would be read over an (H, W) `image`, traced on
    `batch` images: 'channels-first', 'tokens: 1 prefix + 14x14', 'vector', 'tokens (ambiguous)',
    'other' for windows or patches folded into the batch ..."""
    hint, unrolled = prefix_tokens(model), unrolled_tokens(model)

    def describe(name: str, info: LayerInfo) -> str:
        assert info.shape is not None  # only modules with a tensor output are described
        kind = layout(info.shape, image, info.kind, batch=batch)
        if kind != TOKENS:
            return kind
        try:
            return resolve_layout(
                name, info.shape, image, module=info.kind, prefix_hint=hint, unrolled=unrolled
            ).describe()
        except UnrolledTokensError:
            return "tokens (unrolled)"
        except LayoutError:
            return "tokens (ambiguous)"

    return describe


def candidate_layers(model: nn.Module, inputs: torch.Tensor) -> list[tuple[LayerInfo, str]]:
    """The layers a CAM can explain without further settings, each with its layout, in the order
    ``mieruka layers`` lists them: modules that ran once and output a feature map over the image
    (channels-first, channels-last, or tokens whose grid is unambiguous)."""
    infos, _, _, frame = _trace(model, inputs[:1])
    describe = layout_describer(
        model, frame.padded if frame is not None else (inputs.shape[-2], inputs.shape[-1])
    )
    by_name = {info.name: info for info in infos}
    found = []
    for name, _ in model.named_modules():
        info = by_name.get(name)
        if info is None or info.calls != 1 or info.shape is None:
            continue
        kind = describe(name, info)
        if kind in (CHANNELS_FIRST, CHANNELS_LAST) or kind.startswith(TOKENS + ":"):
            found.append((info, kind))
    return found


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode for the block, then give each back its own mode.

    Only modules found in training mode are touched: a model already in eval mode (the usual case)
    costs one walk over its modules, not hundreds of attribute writes per call.
    """
    training = [module for module in model.modules() if module.training]
    if training:
        model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True
