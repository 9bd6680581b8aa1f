"""One forward pass that captures a layer's activations A and the gradients dS/dA of the target scores.

The part of the network before the target layer runs without an autograd graph: the forward starts
under ``torch.no_grad()`` and a hook on the layer switches gradients on, handing the rest of the model a
copy of A that requires grad. Gradients are then taken with ``torch.autograd.grad`` with respect to A
only, so no parameter gradient is computed and nothing below the layer is back-propagated: a
Grad-CAM costs about one inference pass. The copy also keeps A intact when later code changes the
layer's output in place (VGG's ``ReLU(inplace=True)``, ResNet's ``out += identity``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from .geometry import Frame, recording
from .layers import LayerError, evaluating
from .layouts import Layout, LayoutError, check_feature_map
from .targets import Targets


@dataclass
class Capture:
    """What one pass gives the CAM methods: per layer, activations (N, C, ...) and gradients (K, N, C, ...)."""

    activations: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    logits: torch.Tensor
    targets: Targets
    layouts: list[Layout] = field(default_factory=list)
    output: str | None = None  # where the logits were found in the model's output: "logits", "[0]"...
    output_has_logits: bool = True  # False: no (N, classes) tensor in the output; `logits` are the scores
    frame: Frame | None = None  # the batch the model's own transform made (a detector), see geometry


def capture(
    model: nn.Module,
    layers: Sequence[nn.Module],
    inputs: torch.Tensor,
    choose_targets,
    *,
    gradients: bool = True,
    layer_names: Sequence[str] | None = None,
    resolve: Callable[[int, nn.Module, tuple[int, ...], tuple[int, int]], Layout] | None = None,
) -> Capture:
    """Run `model` once on `inputs` in eval mode and capture `layers`.

    `choose_targets(output) -> Targets` decides what to explain once the model's output is known (so
    "the predicted class" needs no second pass). With `gradients=False` only activations are kept.
    `resolve(position, module, output shape, image (H, W)) -> Layout` tells how each layer's output
    lies over the image the layers see (and raises for one that cannot be read); by default only
    channels-first maps are accepted. That image is the input, or for a model that resizes and pads
    its batch itself (a torchvision detector) the padded batch, whose :class:`Frame` is recorded.
    Activations and gradients are kept in the layer's own layout; `Capture.layouts` says which.
    When no target is valid (a detector that found nothing) the gradients are zero.
    The caller's grad mode, inference mode, module modes and parameters are left as they were.
    """
    names = list(layer_names) if layer_names is not None else [type(m).__name__ for m in layers]
    image = (inputs.shape[-2], inputs.shape[-1])
    layouts: list[Layout] = [Layout()] * len(layers)
    if resolve is None:

        def resolve(
            position: int, module: nn.Module, shape: tuple[int, ...], seen: tuple[int, int]
        ) -> Layout:
            check_feature_map(names[position], shape, seen, module)
            return Layout()

    taken: list[torch.Tensor | None] = [None] * len(layers)
    calls = [0] * len(layers)

    def make_hook(position: int):
        def hook(module: nn.Module, args: tuple, output: object) -> torch.Tensor | None:
            calls[position] += 1
            if calls[position] > 1:
                return None
            seen = frames[0].padded if frames else image  # the transform ran first
            layouts[position] = _read_layout(names, position, module, output, seen, resolve, len(inputs))
            if output.requires_grad and torch.is_grad_enabled():
                activation = output  # already on the graph of an earlier captured layer
            else:
                activation = output.detach().requires_grad_(gradients)
            taken[position] = activation
            torch.set_grad_enabled(gradients)  # from here on, the forward builds a graph
            return activation.clone()

        return hook

    if inputs.is_inference():
        with torch.inference_mode(False):
            inputs = inputs.clone()
    handles = [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(layers)]
    try:
        with evaluating(model), torch.inference_mode(False), recording(model) as frames:
            with torch.no_grad():
                output = model(inputs)
            _check_calls(names, calls)
            logits, where = output_logits(output)
            targets = choose_targets(output)
            scores = targets.scores(output, len(inputs))
            has_logits = logits is not None
            if logits is None:  # no class scores: the target's scores stand in for logits
                logits = scores
            frame = frames[0] if frames else None
            kept = [a for a in taken if a is not None]
            activations = [a.detach() for a in kept]
            if not gradients:
                return Capture(activations, None, logits.detach(), targets, layouts, where, has_logits, frame)
            if targets.valid is not None and not bool(targets.valid.any()):  # nothing to explain
                grads = [torch.zeros(targets.count, *a.shape, dtype=a.dtype, device=a.device) for a in kept]
            else:
                grads = _gradients(scores, kept, names)
            return Capture(activations, grads, logits.detach(), targets, layouts, where, has_logits, frame)
    finally:
        for handle in handles:
            handle.remove()


def output_logits(output: object) -> tuple[torch.Tensor | None, str | None]:
    """Class scores (N, classes) in what a model returns, and where they were: a tensor (None), a
    Hugging Face output's ``.logits``, a dict's ``["logits"]``, or a tuple's first item (``[0]``).
    (None, None) when there are none, for a target function to read the output itself."""
    if isinstance(output, torch.Tensor):
        return (output, None) if output.dim() == 2 else (None, None)
    candidates = []
    if isinstance(getattr(output, "logits", None), torch.Tensor):
        candidates.append((output.logits, "logits"))
    elif isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        candidates.append((output["logits"], '["logits"]'))
    elif isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        candidates.append((output[0], "[0]"))
    for tensor, where in candidates:
        if tensor.dim() == 2:
            return tensor, where
    return None, None


def probe(
    model: nn.Module,
    layers: Sequence[nn.Module],
    inputs: torch.Tensor,
    *,
    layer_names: Sequence[str],
    resolve: Callable[[int, nn.Module, tuple[int, ...], tuple[int, int]], Layout],
) -> list[Layout]:
    """One forward pass without gradients that checks `layers` as :func:`capture` would (each returns a
    tensor, runs once and has a layout `resolve` can read), so a wrong layer is refused before a run
    writes anything; their layouts."""
    names = list(layer_names)
    image = (inputs.shape[-2], inputs.shape[-1])
    layouts: list[Layout] = [Layout()] * len(layers)
    calls = [0] * len(layers)

    def make_hook(position: int):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            calls[position] += 1
            if calls[position] == 1:
                seen = frames[0].padded if frames else image
                layouts[position] = _read_layout(names, position, module, output, seen, resolve, len(inputs))

        return hook

    handles = [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(layers)]
    try:
        with evaluating(model), torch.no_grad(), recording(model) as frames:
            model(inputs)
        _check_calls(names, calls)
        return layouts
    finally:
        for handle in handles:
            handle.remove()


def _read_layout(
    names: list[str], position: int, module: nn.Module, output: object, seen, resolve, batch: int
) -> Layout:
    """The layout of a captured layer's output over the `seen` (H, W) image; refused if not a tensor,
    or if its first dimension is not the batch's (windows, patches or heads folded into it)."""
    if not isinstance(output, torch.Tensor):
        raise LayerError(
            f"layer {names[position]!r} returns {type(output).__name__}, not a tensor; pick another"
        )
    if output.dim() == 0 or output.shape[0] != batch:
        raise LayoutError(
            f"layer {names[position]!r} outputs {tuple(output.shape)} for a batch of {batch} image(s): its "
            "first dimension folds windows, patches or heads into the batch, so it holds no map per image; "
            "pick a layer with one entry per image (`mieruka layers` lists them)"
        )
    return resolve(position, module, tuple(output.shape), seen)


def _check_calls(names: list[str], calls: list[int]) -> None:
    for name, count in zip(names, calls):
        if count == 0:
            raise LayerError(f"layer {name!r} did not run in the forward pass; pick one that does")
        if count > 1:
            raise LayerError(
                f"layer {name!r} runs {count} times in one forward pass, so its output is ambiguous; "
                "pick a layer that runs once (`mieruka layers` shows the call counts)"
            )


def _gradients(scores: torch.Tensor, activations: list[torch.Tensor], names: list[str]) -> list[torch.Tensor]:
    """dS_k/dA for each target k, stacked as (K, N, C, ...) per layer; one cheap backward per target."""
    if not scores.requires_grad:
        raise LayerError(
            f"the model's output does not depend on layer(s) {', '.join(map(repr, names))} "
            "through differentiable operations"
        )
    per_target: list[list[torch.Tensor]] = [[] for _ in activations]
    count = scores.shape[1]
    for k in range(count):
        grads = torch.autograd.grad(
            scores[:, k].sum(), activations, retain_graph=k < count - 1, allow_unused=True
        )
        for position, grad in enumerate(grads):
            if grad is None:
                raise LayerError(f"the model's output does not depend on layer {names[position]!r}")
            per_target[position].append(grad)
    return [torch.stack(grads) for grads in per_target]


class _LeafTracer(fx.Tracer):
    """Traces a model keeping the target layer and every module without children as one call each."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return (
            module is self.layer
            or next(module.children(), None) is None
            or super().is_leaf_module(module, qualified_name)
        )


@dataclass
class Split:
    """A model cut after a layer: `head(x) -> (A, *frontier)` and `tail(A, *frontier) -> logits`.

    The frontier holds values computed before the layer that the rest still needs (a skip connection
    around a layer inside a block); it is empty when the layer is on the network's main path.
    """

    head: nn.Module
    tail: nn.Module
    frontier: int


def split_at(model: nn.Module, layer: nn.Module) -> Split | None:
    """Cut `model` after `layer` with torch.fx; None when the model cannot be traced symbolically."""
    try:
        graph = _LeafTracer(layer).trace(model)
    except Exception:  # fx raises many kinds of errors on data-dependent control flow
        return None
    nodes = list(graph.nodes)
    targets = [n for n in nodes if n.op == "call_module" and model.get_submodule(n.target) is layer]
    if len(targets) != 1:
        return None
    target = targets[0]
    dependent = {target}
    for node in nodes:
        if any(parent in dependent for parent in node.all_input_nodes):
            dependent.add(node)
    frontier = [
        n
        for n in nodes
        if n not in dependent and any(user in dependent and user is not target for user in n.users)
    ]
    head, env = fx.Graph(), {}
    for node in nodes:
        if (node in dependent and node is not target) or node.op == "output":
            continue
        env[node] = head.node_copy(node, lambda parent: env[parent])
    head.output((env[target], *(env[n] for n in frontier)))
    tail = fx.Graph()
    env = {target: tail.placeholder("activation")}
    for i, node in enumerate(frontier):
        env[node] = tail.placeholder(f"frontier_{i}")
    for node in nodes:
        if node in dependent and node is not target:
            env[node] = tail.node_copy(node, lambda parent: env[parent])
    return Split(fx.GraphModule(model, head), fx.GraphModule(model, tail), len(frontier))
