"""How a layer's output lies over the image: a channels-first feature map, or something a CAM cannot use.

A CAM reads a layer's output as (N, C, h, w): C channels over an h x w grid covering the input. Many
outputs are not that: a vector per image (a classifier, a pooled feature), a 1 x 1 map, a token
sequence (N, L, C) of a transformer, a channels-last map (N, h, w, C) of Swin or ConvNeXt blocks, or
attention tensors. Reading those as channels-first gives a confident, meaningless map, so they are
recognized here and refused with a message that says what the layer outputs.

The grid test: an image of H x W pixels seen through a stride s gives about H/s x W/s cells, so the
two strides H/h and W/w of a real grid agree (within rounding of odd sizes).
"""

from __future__ import annotations

import math

from torch import nn

from .errors import MierukaError

CHANNELS_FIRST = "channels-first"
CHANNELS_LAST = "channels-last"
TOKENS = "tokens"
VECTOR = "vector"
POINT = "1x1"
OTHER = "other"

_MAX_PREFIX_TOKENS = 16  # class, distillation and register tokens before the patch grid
# Modules that act on the last dimension: a 4-D output of theirs is taken as channels-last when the
# grid test cannot tell (C, h and w alike).
_LAST_DIM_MODULES = ("LayerNorm", "Linear")


class LayoutError(MierukaError):
    """A layer whose output is not a channels-first feature map of the image."""


def is_grid(cells: tuple[int, int], image: tuple[int, int]) -> bool:
    """Whether (h, w) cells can be a regular grid over an image of (H, W) pixels.

    Convolutions, pooling and patch embeddings give a grid of one integer stride s on both axes with
    h = (H - m) / s up to rounding, where m is what unpadded convolutions lose at the borders (a few
    pixels, at most a tenth of the side here); an upsampling layer may double the input's size. An
    attention matrix (L x L) or tokens read as a grid fail this: 49 x 49 over 224 x 224 needs a
    stride of 4.57, or a border loss of 28 pixels at stride 4.
    """
    (h, w), (height, width) = cells, image
    if h < 1 or w < 1 or h > 2 * height + 1 or w > 2 * width + 1:
        return False
    # the strides that give h cells (one cell either way for rounding), on both axes at once
    low = max(_with_margin(height) / (h + 1), _with_margin(width) / (w + 1))
    high = min(height / max(h - 1, 0.5), width / max(w - 1, 0.5))
    if low > high:
        return False
    if high >= 1:
        return math.floor(high + 1e-9) >= max(1, math.ceil(low - 1e-9))
    return True  # upsampled, at most twice the input's size


def _with_margin(pixels: int) -> float:
    """The smallest size, after unpadded convolutions have eaten into the borders, that still counts."""
    return pixels - max(8.0, pixels / 10)


def token_grid(length: int, image: tuple[int, int]) -> tuple[int, tuple[int, int]] | None:
    """(prefix tokens, (h, w)) when `length` tokens can be a few prefix tokens and a patch grid."""
    height, width = image
    for prefix in range(_MAX_PREFIX_TOKENS + 1):
        patches = length - prefix
        if patches < 4:
            break
        # the grid's aspect follows the image's: h / w = H / W
        h = round(math.sqrt(patches * height / width))
        for rows in (h - 1, h, h + 1):
            if rows >= 1 and patches % rows == 0 and is_grid((rows, patches // rows), image):
                return prefix, (rows, patches // rows)
    return None


def layout(shape: tuple[int, ...], image: tuple[int, int], module: nn.Module | str | None = None) -> str:
    """One of CHANNELS_FIRST, CHANNELS_LAST, TOKENS, VECTOR, POINT or OTHER for an output shape.

    `shape` includes the batch dimension; `image` is the model input's (H, W); `module` (or its class
    name) decides the rare case where both readings fit.
    """
    if len(shape) == 2:
        return VECTOR
    if len(shape) == 3:
        return TOKENS if token_grid(shape[1], image) is not None else OTHER
    if len(shape) != 4:
        return OTHER
    if shape[2] * shape[3] == 1:
        return POINT
    first = is_grid((shape[2], shape[3]), image)
    last = shape[1] * shape[2] > 1 and shape[3] > 1 and is_grid((shape[1], shape[2]), image)
    if first and last:  # C, h and w alike: ask what the module acts on
        kind = module if isinstance(module, str) else type(module).__name__
        return CHANNELS_LAST if kind in _LAST_DIM_MODULES else CHANNELS_FIRST
    if first:
        return CHANNELS_FIRST
    return CHANNELS_LAST if last else OTHER


def shape_text(shape: tuple[int, ...]) -> str:
    """(N, 512, 7, 7) as '512x7x7': the shape of one image's output."""
    return "x".join(map(str, shape[1:])) or "a scalar"


def check_feature_map(
    name: str, shape: tuple[int, ...], image: tuple[int, int], module: nn.Module | str | None = None
) -> None:
    """Raise LayoutError unless the output of layer `name` is a channels-first map over the image."""
    kind = layout(shape, image, module)
    if kind == CHANNELS_FIRST:
        return
    where = f"layer {name!r} outputs {shape_text(shape)} for a {image[0]}x{image[1]} input"
    advice = "`mieruka layers` lists the layers and their outputs"
    if kind == VECTOR:
        problem = "one vector per image, not a feature map (C x h x w); pick a layer before the pooling and the classifier"
    elif kind == POINT:
        problem = "a 1x1 map cannot show where; pick a layer before the global pooling"
    elif kind == TOKENS:
        problem = "a token sequence (a transformer layer), which CAM maps cannot read as channels x height x width yet; pick a convolutional layer"
    elif kind == CHANNELS_LAST:
        problem = (
            "a channels-last map (h x w x C), which CAM maps cannot read yet; pick a channels-first layer"
        )
    else:
        problem = "not a feature map whose last two dimensions are a grid over the image"
    raise LayoutError(f"{where}: {problem}; {advice}")
