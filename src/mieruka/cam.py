"""The explainer users call: capture once, apply one or many CAM methods, return maps and context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .capture import Capture, Split, capture, probe, split_at
from .geometry import to_input
from .layers import LayerError, auto_layer, evaluating, resolve_layer
from .layouts import CHANNELS_FIRST, Layout, LayoutRequest, prefix_tokens, resolve_layout, unrolled_tokens
from .maps import is_flat, no_place, normalize, upsample
from .methods import (
    Method,
    ablationcam_weights,
    attention_maps,
    first_component,
    get_method,
    guided_backprop,
    scorecam_weights,
)
from .targets import Target, TargetError, Targets, TargetSpec, resolve_targets

LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None


@dataclass
class CAMResult:
    """Maps for a batch. When a call explains several targets per image (``top_k``, multi-label,
    detection...) every per-target field gains a K axis after N, and `valid` marks the real ones."""

    maps: torch.Tensor  # (N, H, W) in [0, 1] at the input's resolution
    raw: torch.Tensor  # (N, h, w) after ReLU at the layer's resolution, not normalized; for a model that
    # resizes its input itself (a detector) at the input's resolution (see CAM)
    empty: torch.Tensor  # (N,) bool: the map had no positive value, so it is all zero
    logits: torch.Tensor  # (N, classes); the target scores (N, K) when the output has no class scores
    probs: torch.Tensor | None  # (N, classes): softmax, or sigmoid for binary / multi-label heads
    targets: torch.Tensor | None  # (N,) class (or output) indices, None where a map is not one class's
    labels: list | None  # the targets' names, shaped like `targets`
    layer: str  # dotted name(s) of the layer(s) used, comma-separated
    method: str
    layout: str = "channels-first"  # how the layer's output was read, e.g. "tokens: 1 prefix + 14x14"
    output: str | None = None  # where the logits were in the model's output ("logits" for Hugging Face)
    task: str = "classify"  # classify, binary, multilabel, regression, embed, function, ...
    target_probs: torch.Tensor | None = None  # (N,) confidence of each explained target, if it has one
    valid: torch.Tensor | None = None  # (N, K) bool: False for padding (an image with fewer targets)
    details: list | None = None  # per image and target: extra facts (a regression value, a box, an area)
    class_names: list[str] | None = None  # names of `probs`' columns when not the model's labels (binary)
    regions: torch.Tensor | None = None  # (N, H, W) bool: the output pixels a segmentation score sums over
    flat: torch.Tensor | None = None  # (N,) bool: positive and the same everywhere, so it shows no place

    def empty_at(self, row: int, k: int = 0) -> bool:
        """Whether the map of image `row`'s target `k` (0 without a K axis) is all zero."""
        return bool(self.empty[row].reshape(-1)[k])

    def flat_at(self, row: int, k: int = 0) -> bool:
        """Whether the map of image `row`'s target `k` is one positive value everywhere."""
        return self.flat is not None and bool(self.flat[row].reshape(-1)[k])

    def shows_no_place_at(self, row: int, k: int = 0) -> str:
        """'empty map' or 'flat map' where that map shows no place (drawn, it is one colour), else ''."""
        return no_place(self.empty_at(row, k), self.flat_at(row, k))


class CAM:
    """Class activation maps of `model` at `target_layer` with any method of :mod:`mieruka.methods`.

    `target_layer` is a dotted name, a module, a sequence of them (maps fused by averaging their
    normalized maps at the finest layer's resolution), or None for the automatic choice (see
    :mod:`mieruka.layers`). The model is never changed: it runs in eval mode for the call, and hooks
    live only during the call.

    Options: `eigen_smooth` reduces any method's channel contributions by their first principal
    component instead of a sum; `aug_smooth` averages the maps of the input, its mirror image and
    small shifts, each mapped back first (six passes; `raw` is then at the input's resolution).
    `batch_size` bounds the extra forward passes of Score-CAM / Ablation-CAM, `score_channels` keeps
    only that many channels in Score-CAM (the fast approximation), `skip_empty_channels` skips
    constant channels there (exact after normalization). `progress(method, done, total)`, when given,
    is called as each method finishes and, inside Score-CAM and Ablation-CAM, as their extra passes run.

    Layouts: a layer's output may be channels-first (N, C, h, w), channels-last (N, h, w, C) or tokens
    (N, L, C) of a transformer, `prefix_tokens` class/distillation/register tokens then an h x w `grid`
    of patches; all are read as channels-first maps (see :mod:`mieruka.layouts`). The layout is inferred
    from the output's shape, the input's size and the model's own token count; when that is ambiguous,
    the call says so and `layout="tokens"`, `prefix_tokens` and `grid` settle it.

    Detectors and segmenters: with a :class:`~mieruka.targets.DetectionTarget` each detected object
    gets its own map (N, K, H, W), from one forward pass and K backward passes from the layer up; with a
    :class:`~mieruka.targets.SegmentationTarget` each class gets one over its region (`regions`). A
    torchvision detector resizes and pads its batch itself, so its feature maps lie over that padded
    batch: each map is carried back through the model's resize onto the input's pixels (see
    :mod:`mieruka.geometry`), and `raw` is then that un-normalized map at the input's resolution (as
    with `aug_smooth`), ready for :func:`mieruka.render.show_on_photo` like any model's. Every map is
    normalized on its own, so a large object does not wash out the others.

    >>> import torchvision
    >>> cam = CAM(torchvision.models.resnet18().eval())
    >>> result = cam(torch.randn(2, 3, 224, 224))
    >>> result.maps.shape, result.layer
    (torch.Size([2, 224, 224]), 'layer4')
    """

    method = "gradcam"

    def __init__(
        self,
        model: nn.Module,
        target_layer: LayerSpec = None,
        *,
        method: str | None = None,
        labels: Sequence[str] | None = None,
        eigen_smooth: bool = False,
        aug_smooth: bool = False,
        batch_size: int = 64,
        score_channels: int | None = None,
        skip_empty_channels: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
        layout: str | None = None,
        prefix_tokens: int | None = None,
        grid: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(model, torch.jit.ScriptModule):
            raise LayerError(
                "a TorchScript module cannot be hooked (its layers are compiled): explain the Python model, "
                "with the scripted one's weights loaded into it (model.load_state_dict(scripted.state_dict()))"
            )
        self.model = model
        self.method = get_method(method or self.method).name
        self.labels = list(labels) if labels is not None else None
        self.eigen_smooth = eigen_smooth
        self.aug_smooth = aug_smooth
        self.batch_size = batch_size
        self.score_channels = score_channels
        self.skip_empty_channels = skip_empty_channels
        self.progress = progress
        if layout is None:
            layout = "tokens" if prefix_tokens is not None or grid is not None else "auto"
        self.layout = LayoutRequest(layout.replace("_", "-"), prefix_tokens, tuple(grid) if grid else None)
        self._layers = self._resolve(target_layer) if target_layer is not None else None
        self._splits: dict[str, Split | None] = {}
        # (prefix tokens the model declares, patch counts it keeps unrolled), read once
        self._model_tokens: tuple[int | None, frozenset[int]] | None = None

    def _resolve(self, target_layer: LayerSpec) -> list[tuple[str, nn.Module]]:
        if isinstance(target_layer, str | nn.Module):
            specs: list = [target_layer]
            if isinstance(target_layer, str) and "," in target_layer:
                specs = [s.strip() for s in target_layer.split(",") if s.strip()]
        else:
            specs = list(target_layer or [])
        return [resolve_layer(self.model, spec) for spec in specs]

    def layers(self, inputs: torch.Tensor, targets: TargetSpec = None) -> list[tuple[str, nn.Module]]:
        """The (name, module) pairs explained, picking the automatic layer on first use; a target
        function in `targets` is what that pick asks gradients of (the predicted class otherwise)."""
        if self._layers is None:
            function = (
                targets if callable(targets) and not isinstance(targets, torch.Tensor | Target) else None
            )
            self._layers = self._resolve(auto_layer(self.model, inputs, self.layout, function))
        return self._layers

    def __call__(
        self, inputs: torch.Tensor, targets: TargetSpec = None, *, top_k: int | None = None
    ) -> CAMResult:
        """Maps for a preprocessed batch (N, C, H, W) (one image (C, H, W) is a batch of one); `targets`
        as in :func:`mieruka.targets.resolve_targets`."""
        return self.compare(inputs, [self.method], targets, top_k=top_k)[self.method]

    def compare(
        self,
        inputs: torch.Tensor,
        methods: Sequence[str | Method],
        targets: TargetSpec = None,
        *,
        top_k: int | None = None,
    ) -> dict[str, CAMResult]:
        """Maps of several methods for the same batch and targets, from one shared capture.

        All gradient-based methods and Eigen-CAM cost one forward and one small backward together.
        """
        inputs = _as_batch(inputs)
        if self.aug_smooth and isinstance(targets, Target) and targets.task in ("detect", "segment"):
            raise TargetError(
                f"aug_smooth cannot be combined with a {type(targets).__name__}: its boxes and regions "
                "are those of the image as it is, not of its mirrored and shifted copies"
            )
        chosen = [m if isinstance(m, Method) else get_method(m) for m in methods]
        inputs = _match_model(self.model, inputs)
        layers = self.layers(inputs, targets)

        def choose(output: object) -> Targets:
            return resolve_targets(targets, output, self.labels, top_k)

        with evaluating(self.model):  # the extra passes of some methods run outside the capture
            captured = self._capture(inputs, layers, chosen, choose)
            raws = self._maps(inputs, layers, chosen, captured)
            if self.aug_smooth:
                raws = self._augmented(inputs, layers, chosen, captured.targets, raws)
        return {
            name: self._result(raw, inputs, captured, layers, name, top_k is None)
            for name, raw in raws.items()
        }

    def check(self, inputs: torch.Tensor) -> list[tuple[str, nn.Module]]:
        """The layers explained, checked on `inputs` (a dummy batch will do) by one forward pass: a
        named layer that returns no tensor, runs twice or has no readable layout is refused here,
        before a run writes anything, not at its first photo."""
        named = self._layers is not None
        layers = self.layers(inputs)
        # the automatic rule has read its layer, but not in a layout the user gives
        if named or self.layout.kind != "auto":
            inputs = _match_model(self.model, _as_batch(inputs))
            probe(
                self.model,
                [module for _, module in layers],
                inputs,
                layer_names=[name for name, _ in layers],
                resolve=self._resolver(layers),
            )
        return layers

    def _resolver(self, layers: list[tuple[str, nn.Module]]):
        """How each captured layer's output lies over the image (see :func:`mieruka.capture.capture`)."""

        def resolve(position: int, module: nn.Module, shape: tuple[int, ...], image) -> Layout:
            if len(shape) != 3:  # only tokens need the model's prefix-token count
                return resolve_layout(layers[position][0], shape, image, module=module, requested=self.layout)
            if self._model_tokens is None:  # the model's structure does not change: read it once
                self._model_tokens = (prefix_tokens(self.model), unrolled_tokens(self.model))
            return resolve_layout(
                layers[position][0],
                shape,
                image,
                module=module,
                prefix_hint=self._model_tokens[0],
                requested=self.layout,
                unrolled=self._model_tokens[1],
            )

        return resolve

    def _capture(self, inputs, layers, chosen: list[Method], choose) -> Capture:
        return capture(
            self.model,
            [module for _, module in layers],
            inputs,
            choose,
            gradients=any(m.kind in ("gradient", "guided") for m in chosen),
            layer_names=[name for name, _ in layers],
            resolve=self._resolver(layers),
        )

    def _maps(self, inputs, layers, chosen: list[Method], captured: Capture) -> dict[str, torch.Tensor]:
        """Raw maps (N, K, h, w) per method, after ReLU, layers fused."""
        raws: dict[str, torch.Tensor] = {}
        for method in chosen:
            self._report(method.name, 0, 1)
            if method.kind == "guided":
                raws[method.name] = self._guided(inputs, layers, method, captured)
                self._report(method.name, 1, 1)
                continue
            if method.kind == "attention":  # a transformer's own attention, not a layer's activations
                raws[method.name] = attention_maps(self.model, inputs, captured.targets.scores, method.name)
                self._report(method.name, 1, 1)
                continue
            per_layer = []
            for position, (name, module) in enumerate(layers):
                layout = captured.layouts[position]
                activation = layout.to_channels_first(captured.activations[position]).float()
                spatial = activation.shape[2:]
                flat = activation.flatten(2)
                if method.contributions is not None:
                    gradient = (
                        None
                        if captured.gradients is None
                        else layout.to_channels_first(captured.gradients[position]).float().flatten(3)
                    )
                    contributions = method.contributions(flat, gradient)
                else:
                    weights = self._perturbation_weights(
                        method, inputs, position, name, module, activation, captured
                    )
                    contributions = weights[..., None] * flat
                if method.projection or self.eigen_smooth:
                    cam = first_component(contributions)
                else:
                    cam = contributions.sum(-2)
                count = captured.targets.count
                cam = cam.expand(count, *cam.shape[1:]) if cam.shape[0] != count else cam
                per_layer.append(cam.clamp_min(0).reshape(*cam.shape[:2], *spatial).transpose(0, 1))
            # over a detector's padded batch: onto the input's pixels at once (see geometry)
            fused = _fuse(per_layer)
            frame = captured.frame
            raws[method.name] = fused if frame is None else to_input(fused, frame, tuple(inputs.shape[-2:]))
            self._report(method.name, 1, 1)
        return raws

    def _report(self, method: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(method, done, total)

    def _perturbation_weights(self, method, inputs, position, name, module, activation, captured: Capture):
        score = _scorer(captured.targets)
        if method.name == "scorecam":
            frame, size = captured.frame, tuple(inputs.shape[-2:])
            return scorecam_weights(
                self.model,
                inputs,
                activation,
                score,
                to_input=None if frame is None else lambda a, n: to_input(a, frame.image(n), size),
                batch_size=self.batch_size,
                skip_empty=self.skip_empty_channels,
                top_channels=self.score_channels,
                progress=lambda done, total: self._report(method.name, done, total),
            )
        if captured.output_has_logits:
            original = score(captured.logits, torch.arange(len(inputs), device=inputs.device))
        else:  # no class scores in the output (a detector, a segmenter): `logits` are the target scores
            original = captured.logits.float()
        tail = self._tail(name, module, inputs)
        layout, native = captured.layouts[position], captured.activations[position]
        if layout.kind != CHANNELS_FIRST:  # ablate in channels-first, run the rest in the layer's layout
            base = tail

            def tail(activation: torch.Tensor, image: int) -> torch.Tensor:
                return base(layout.from_channels_first(activation, native[image : image + 1]), image)

        return ablationcam_weights(
            tail,
            activation,
            original,
            score,
            batch_size=max(self.batch_size, 256),
            progress=lambda done, total: self._report(method.name, done, total),
        )

    def _tail(self, name: str, module: nn.Module, inputs: torch.Tensor):
        """Run only the part of the model after `module`; falls back to a whole pass with the layer's
        output replaced when the model cannot be traced by torch.fx."""
        if name not in self._splits:
            self._splits[name] = split_at(self.model, module)
        split = self._splits[name]
        if split is not None:
            with torch.inference_mode():
                _, *frontier = split.head(inputs)

            def tail(activation: torch.Tensor, image: int) -> torch.Tensor:
                extra = [
                    f[image : image + 1].expand(len(activation), *f.shape[1:]) if torch.is_tensor(f) else f
                    for f in frontier
                ]
                return split.tail(activation.to(inputs.dtype), *extra)

            return tail

        def replaced(activation: torch.Tensor, image: int) -> torch.Tensor:
            handle = module.register_forward_hook(lambda *_: activation.to(inputs.dtype))
            try:
                return self.model(inputs[image : image + 1].expand(len(activation), *inputs.shape[1:]))
            finally:
                handle.remove()

        return replaced

    def _guided(self, inputs, layers, method: Method, captured: Capture) -> torch.Tensor:
        """Guided maps at the input's resolution (N, K, H, W): |gradient| max over colour channels."""
        guided = guided_backprop(self.model, inputs, captured.targets.scores)  # (K, N, C, H, W)
        if method.name == "guidedgradcam":
            grad_cam = self._maps(inputs, layers, [get_method("gradcam")], captured)[
                "gradcam"
            ]  # (N, K, h, w)
            scale = normalize(upsample(grad_cam, tuple(inputs.shape[-2:])))[0].transpose(0, 1)
            guided = guided * scale[:, :, None]
        return guided.float().abs().amax(2).transpose(0, 1)

    def _augmented(self, inputs, layers, chosen, targets: Targets, raws) -> dict[str, torch.Tensor]:
        """Average the maps of mirrored and shifted inputs, each mapped back (test-time augmentation)."""
        size = tuple(inputs.shape[-2:])
        shift = max(1, min(size) // 28)
        total = {name: normalize(upsample(raw, size))[0] for name, raw in raws.items()}
        # identity, mirror, and horizontal shifts both ways: a set closed under mirroring, so smoothing
        # commutes with flipping the input
        for flip, dy, dx in (
            (True, 0, 0),
            (False, 0, shift),
            (True, 0, shift),
            (False, 0, -shift),
            (True, 0, -shift),
        ):
            augmented = _shift(inputs.flip(-1) if flip else inputs, dy, dx)
            captured = self._capture(augmented, layers, chosen, lambda logits: targets)
            for name, raw in self._maps(augmented, layers, chosen, captured).items():
                back = _shift(normalize(upsample(raw, size))[0], -dy, -dx)
                total[name] = total[name] + (back.flip(-1) if flip else back)
        return {name: value / 6 for name, value in total.items()}

    def _result(self, raw, inputs, captured: Capture, layers, method: str, squeeze: bool) -> CAMResult:
        maps, empty = normalize(upsample(raw, tuple(inputs.shape[-2:])))
        logits = captured.logits.float()
        chosen = captured.targets
        squeeze = squeeze and chosen.single

        def shaped(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor.squeeze(1) if squeeze else tensor

        def per_image(rows: list | None) -> list | None:
            if rows is None:
                return None
            return [row[0] for row in rows] if squeeze else rows

        probs = chosen.class_probs
        if probs is None and chosen.task == "function" and captured.output_has_logits:
            probs = logits.softmax(dim=1)  # a target function on a classifier: its classes' softmax
        return CAMResult(
            maps=shaped(maps),
            raw=shaped(raw),
            empty=shaped(empty),
            logits=logits,
            probs=probs,
            targets=shaped(chosen.indices),
            labels=per_image(chosen.names),
            # attention methods read every block's attention matrices, not a layer
            layer="attention" if get_method(method).kind == "attention" else ",".join(n for n, _ in layers),
            method=method,
            layout=", ".join(layout.describe() for layout in captured.layouts),
            output=captured.output,
            task=chosen.task,
            target_probs=shaped(chosen.probabilities),
            valid=chosen.valid,
            details=per_image(chosen.details),
            class_names=chosen.class_names,
            regions=shaped(chosen.regions),
            flat=shaped(is_flat(raw)),
        )


class GradCAM(CAM):
    """Grad-CAM (Selvaraju et al., 2017): ReLU(sum_k mean(dS/dA_k) A_k), normalized by its maximum."""

    method = "gradcam"


def _fuse(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """One layer's maps as they are; several layers' normalized maps averaged at the finest resolution."""
    if len(per_layer) == 1:
        return per_layer[0]
    size = max((tuple(p.shape[-2:]) for p in per_layer), key=lambda s: s[0] * s[1])
    return torch.stack([normalize(upsample(p, size))[0] for p in per_layer]).mean(0)


def _scorer(targets: Targets):
    """(model output of extra passes for one image, image index (B,)) -> the float target scores (B, K)."""

    def score(output: object, image: torch.Tensor) -> torch.Tensor:
        return targets.scores(output, image).float()

    return score


def _shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate (..., H, W) by (dy, dx) pixels, repeating the border instead of wrapping around."""
    if dy == 0 and dx == 0:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(
        images.reshape(-1, 1, height, width), (abs(dx), abs(dx), abs(dy), abs(dy)), mode="replicate"
    )
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top : top + height, left : left + width].reshape(images.shape)


def _as_batch(inputs: object) -> torch.Tensor:
    """A preprocessed batch (N, C, H, W); one image (C, H, W) becomes a batch of one.

    Photos that were not preprocessed are the usual mistake: PIL images, numpy arrays and uint8
    pixels get an error that says what to call instead.
    """
    how = "pass loaded.preprocess(photo)[None] (load_model gives `loaded`), or your own transforms"
    if not isinstance(inputs, torch.Tensor):
        kind = type(inputs).__name__
        if type(inputs).__module__.startswith("PIL."):
            raise ValueError(f"got a PIL image; CAM takes a preprocessed tensor batch: {how}")
        if type(inputs).__module__ == "numpy":
            shape = tuple(getattr(inputs, "shape", ()))
            raise ValueError(
                f"got a numpy array {shape}; CAM takes a preprocessed torch tensor (N, C, H, W): {how}"
            )
        raise ValueError(f"expected a tensor batch of images (N, C, H, W), got {kind}")
    if not (inputs.is_floating_point() or inputs.is_complex()):
        raise ValueError(
            f"got a {str(inputs.dtype).removeprefix('torch.')} tensor: raw pixels are not what the model "
            f"expects; scale and normalize them first: {how}"
        )
    if inputs.dim() in (3, 4) and inputs.shape[-1] in (1, 3, 4) and inputs.shape[-3] not in (1, 3, 4):
        raise ValueError(
            f"got {tuple(inputs.shape)}: channels last, like pixels from an image library; CAM takes "
            f"(N, C, H, W): use x.permute(0, 3, 1, 2), or {how}"
        )
    if inputs.dim() == 3:
        return inputs[None]
    if inputs.dim() != 4:
        raise ValueError(
            f"expected a batch of images (N, C, H, W) or one image (C, H, W), got {tuple(inputs.shape)}"
        )
    return inputs


def _match_model(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Move the batch to the model's device and floating dtype."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is None:
        return inputs
    return inputs.to(device=parameter.device, dtype=parameter.dtype)
