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
import re
from dataclasses import dataclass

import torch
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


class UnrolledTokensError(LayoutError):
    """Patch tokens a model keeps out of row order (Hiera before its last stage): no grid reads them."""


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


def exact_grid(cells: tuple[int, int], image: tuple[int, int]) -> bool:
    """Whether a patch embedding of one integer stride turns an (H, W) image into (h, w) patches.

    Stricter than :func:`is_grid`: tokens come from patchifying, so h and w are H/s and W/s, both
    rounded down (or both up, where the image is padded), for the same s.
    """
    (h, w), (height, width) = cells, image
    if h < 1 or w < 1:
        return False
    for stride in range(max(1, height // (h + 1)), height // max(h - 1, 1) + 2):
        if (h, w) in ((height // stride, width // stride), (-(-height // stride), -(-width // stride))):
            return True
    return False


def token_grids(
    length: int, image: tuple[int, int], prefix: int | None = None
) -> list[tuple[int, tuple[int, int]]]:
    """Every (prefix tokens, (h, w)) that splits `length` tokens into a few prefix tokens and a patch
    grid over the image; only `prefix` prefix tokens when it is given. A grid of one patch is no map
    (a class token alone, as PiT's last norm sees), as a 1 x 1 channels-first output is none."""
    height, width = image
    found = []
    for count in range(_MAX_PREFIX_TOKENS + 1) if prefix is None else [prefix]:
        patches = length - count
        if patches < 2:
            break
        # the grid's aspect follows the image's: h / w = H / W
        h = round(math.sqrt(patches * height / width))
        for rows in sorted({max(1, h - 1), max(1, h), h + 1}):
            if patches % rows == 0 and exact_grid((rows, patches // rows), image):
                found.append((count, (rows, patches // rows)))
    return found


def token_grid(length: int, image: tuple[int, int]) -> tuple[int, tuple[int, int]] | None:
    """The first (prefix tokens, (h, w)) of :func:`token_grids`, or None."""
    found = token_grids(length, image)
    return found[0] if found else None


def layout(
    shape: tuple[int, ...],
    image: tuple[int, int],
    module: nn.Module | str | None = None,
    batch: int | None = None,
) -> str:
    """One of CHANNELS_FIRST, CHANNELS_LAST, TOKENS, VECTOR, POINT or OTHER for an output shape.

    `shape` includes the batch dimension; `image` is the model input's (H, W); `module` (or its class
    name) decides the rare case where both readings fit; `batch`, when given, must lead the shape.
    """
    if batch is not None and shape[:1] != (batch,):
        return OTHER  # windows or heads folded into the batch dimension (Swin's window attention)
    if len(shape) == 2:
        return VECTOR
    if len(shape) == 3:
        return TOKENS if shape[2] > 1 and token_grid(shape[1], image) is not None else OTHER
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


# ---- reading a layer's output as channels-first, both ways -----------------------------------------

LAYOUT_NAMES = (CHANNELS_FIRST, CHANNELS_LAST, TOKENS)
_PREFIX_PARAMETERS = (
    "cls_token",
    "class_token",
    "dist_token",
    "distillation_token",
    "reg_token",
    "register_tokens",
)
_STAGE_TOKEN = r"(cls|class)_token_?\d+"
_TOKEN_LIKE = r"token|cls|class_emb"  # a parameter named so may be a prefix token under another name


@dataclass(frozen=True)
class Layout:
    """How one layer's output lies over the image: channels-first (N, C, h, w), channels-last
    (N, h, w, C), or tokens (N, L, C) made of `prefix` tokens and a row-major `grid` of patches."""

    kind: str = CHANNELS_FIRST
    prefix: int = 0
    grid: tuple[int, int] | None = None

    def to_channels_first(self, values: torch.Tensor) -> torch.Tensor:
        """(..., <this layout>) -> (..., C, h, w); leading dimensions (batch, targets) are kept."""
        if self.kind == CHANNELS_FIRST:
            return values
        if self.kind == CHANNELS_LAST:
            return values.movedim(-1, -3)
        assert self.grid is not None
        patches = values[..., self.prefix :, :]
        return patches.transpose(-1, -2).reshape(*patches.shape[:-2], patches.shape[-1], *self.grid)

    def from_channels_first(self, maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The inverse for a batch (B, C, h, w); prefix tokens are taken from `like` (1 or B, L, C)."""
        if self.kind == CHANNELS_FIRST:
            return maps
        if self.kind == CHANNELS_LAST:
            return maps.movedim(-3, -1)
        tokens = like.expand(maps.shape[0], *like.shape[1:]).clone()
        tokens[:, self.prefix :, :] = maps.flatten(2).transpose(1, 2).to(tokens.dtype)
        return tokens

    def describe(self) -> str:
        """'tokens: 1 prefix + 14x14' or the kind alone."""
        if self.kind != TOKENS or self.grid is None:
            return self.kind
        return f"tokens: {self.prefix} prefix + {self.grid[0]}x{self.grid[1]}"


@dataclass(frozen=True)
class LayoutRequest:
    """What the user said about a layer's layout; None (and "auto") leave that part to inference."""

    kind: str = "auto"
    prefix: int | None = None
    grid: tuple[int, int] | None = None


def prefix_tokens(model: nn.Module) -> int | None:
    """How many class / distillation / register tokens the model puts before its patches, if it says.

    timm models carry ``num_prefix_tokens``; torchvision's ViT, Hugging Face and most others keep the
    tokens as parameters named ``cls_token``, ``class_token``, ``dist_token``, ``register_tokens`` ...
    0 when no parameter could be a token (no name with "token", "cls" or "class_emb"): a hierarchical
    model (LeViT, Twins, Hiera) has nothing to put before its patches. None when the model does not
    say (a token-like parameter of another name or shape, such as CLIP's ``class_embedding``).
    """
    count = getattr(model, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count
    tokens = [  # (the parameter's own name, its token count)
        (name.rsplit(".", 1)[-1], parameter.shape[-2] if parameter.dim() >= 2 else 0)
        for name, parameter in model.named_parameters()
    ]
    found = [count for name, count in tokens if name in _PREFIX_PARAMETERS and count]
    if found:
        return sum(found)
    staged = [count for name, count in tokens if re.fullmatch(_STAGE_TOKEN, name) and count]
    if staged:  # one class token per stage or branch (CoaT's cls_token1..4, CrossViT's cls_token_0, _1)
        return max(staged)  # what one stage's layers see
    return None if any(re.search(_TOKEN_LIKE, name) for name, _ in tokens) else 0


def resolve_layout(
    name: str,
    shape: tuple[int, ...],
    image: tuple[int, int],
    *,
    module: nn.Module | str | None = None,
    prefix_hint: int | None = None,
    requested: LayoutRequest | None = None,
    unrolled: frozenset[int] = frozenset(),
) -> Layout:
    """The layout of layer `name`'s output, or a one-line LayoutError that says what to set.

    `requested` (the user's layout, prefix tokens and grid; any may be unset) wins where given and is
    checked against the shape; otherwise the layout is read off the shape, the input's size and the
    model's own prefix-token count (`prefix_hint`). A token layout with several readings is refused,
    and so is a patch count the model keeps out of row order (`unrolled`, see :func:`unrolled_tokens`).
    """
    where = f"layer {name!r} outputs {shape_text(shape)} for a {image[0]}x{image[1]} input"
    found = _resolve_layout(where, name, shape, image, module, prefix_hint, requested)
    if found.kind == TOKENS and found.grid is not None and found.grid[0] * found.grid[1] in unrolled:
        raise UnrolledTokensError(
            f"{where}: the model keeps these {found.grid[0] * found.grid[1]} patch tokens in its own "
            "unrolled order (Hiera), not row by row, until its last stage; pick a layer of the last "
            "stage (the automatic layer is one)"
        )
    return found


def unrolled_tokens(model: nn.Module) -> frozenset[int]:
    """The patch counts at which the model's tokens are not in row-major order: timm's Hiera unrolls
    its patches so that pooling is a reshape, and its ``reroll`` schedule says which stages are still
    unrolled (every stage before the last; the patch embedding before the unroll has the first stage's
    count and is counted with it). Hugging Face's Hiera keeps the same schedule on its encoder. Empty
    for every other model."""
    schedules = [getattr(getattr(model, "reroll", None), "schedule", None)] + [
        getattr(module, "schedule", None)
        for module in model.modules()
        if type(module).__name__ == "HieraEncoder"
    ]
    return frozenset(
        math.prod(size)
        for schedule in schedules
        if isinstance(schedule, dict)
        for steps, size in schedule.values()
        if steps
    )


def _resolve_layout(where, name, shape, image, module, prefix_hint, requested) -> Layout:
    option = "set layout='tokens', prefix_tokens=P, grid=(h, w) (CLI: --layout tokens --prefix-tokens P --grid HxW)"
    if requested is not None and requested.kind != "auto":
        return _check_requested(where, shape, image, requested, option)
    kind = layout(shape, image, module)
    if kind in (CHANNELS_FIRST, CHANNELS_LAST):
        return Layout(kind)
    if kind != TOKENS:
        check_feature_map(name, shape, image, module)  # raises with what the layer outputs
    readings = token_grids(shape[1], image, prefix_hint) if prefix_hint is not None else []
    readings = readings or token_grids(shape[1], image)
    if len(readings) != 1:
        shown = " or ".join(f"{p} prefix + {g[0]}x{g[1]}" for p, g in readings[:3])
        raise LayoutError(f"{where}: tokens whose layout is ambiguous ({shown}); {option}")
    prefix, grid = readings[0]
    return Layout(TOKENS, prefix, grid)


def _check_requested(where: str, shape, image, requested: LayoutRequest, option: str) -> Layout:
    if requested.kind not in LAYOUT_NAMES:
        raise LayoutError(f"unknown layout {requested.kind!r}; choose from auto, {', '.join(LAYOUT_NAMES)}")
    if requested.kind in (CHANNELS_FIRST, CHANNELS_LAST):
        if len(shape) != 4:
            raise LayoutError(f"{where}: not {requested.kind} (N, ...) with 4 dimensions; {option}")
        cells = (shape[2], shape[3]) if requested.kind == CHANNELS_FIRST else (shape[1], shape[2])
        if not is_grid(cells, image):
            other = CHANNELS_LAST if requested.kind == CHANNELS_FIRST else CHANNELS_FIRST
            raise LayoutError(
                f"{where}: read as {requested.kind} its grid would be {cells[0]}x{cells[1]} cells, which "
                f"no stride makes of the input; leave the layout to be inferred, or set {other} if it is that"
            )
        return Layout(requested.kind)
    if len(shape) != 3:
        raise LayoutError(f"{where}: not a token sequence (N, L, C); pick a layer that outputs tokens")
    length = shape[1]
    if requested.grid is not None:
        if not exact_grid(requested.grid, image):
            raise LayoutError(
                f"{where}: grid={tuple(requested.grid)} is not a patch grid over a {image[0]}x{image[1]} "
                f"input (rows and columns must be the input's height and width over one patch size); {option}"
            )
        prefix = (
            length - requested.grid[0] * requested.grid[1] if requested.prefix is None else requested.prefix
        )
        if requested.prefix is None and prefix > _MAX_PREFIX_TOKENS:
            raise LayoutError(
                f"{where}: grid={tuple(requested.grid)} leaves {prefix} of the {length} tokens before the "
                f"patches, more than the {_MAX_PREFIX_TOKENS} class/register tokens models have; {option}"
            )
        if prefix < 0 or prefix + requested.grid[0] * requested.grid[1] != length:
            raise LayoutError(
                f"{where}: {length} tokens, but prefix_tokens={prefix} and grid={requested.grid} make "
                f"{prefix + requested.grid[0] * requested.grid[1]}; {option}"
            )
        return Layout(TOKENS, prefix, tuple(requested.grid))
    readings = token_grids(length, image, requested.prefix)
    if len(readings) != 1:
        raise LayoutError(
            f"{where}: {length} tokens do not split into prefix_tokens={requested.prefix} and one patch "
            f"grid over the input; {option}"
        )
    return Layout(TOKENS, *readings[0])
