"""mieruka (見える化): see which part of an image a PyTorch vision model based its decision on.

The public names are imported on first use, so ``import mieruka`` (and ``mieruka --help``) does not
pay for torch, torchvision or matplotlib until something needs them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("mieruka")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    "CAM": "cam",
    "CAMResult": "cam",
    "GradCAM": "cam",
    "CropBox": "images",
    "Preprocess": "images",
    "load_image": "images",
    "pil_to_tensor": "images",
    "auto_layer": "layers",
    "resolve_layer": "layers",
    "trace_layers": "layers",
    "normalize": "maps",
    "to_photo": "maps",
    "upsample": "maps",
    "LoadedModel": "models",
    "load_labels": "models",
    "load_model": "models",
    "MierukaError": "errors",
    "classic": "render",
    "colorize": "render",
    "draw": "render",
    "heatmap": "render",
    "overlay": "render",
    "panel": "render",
    "save_image": "render",
    "save_png": "render",
    "show_on_photo": "render",
    "ContactSheet": "sheet",
    "contact_sheet": "sheet",
    "build_report": "report",
}

__all__ = [
    "CAM",
    "CAMResult",
    "ContactSheet",
    "CropBox",
    "GradCAM",
    "LoadedModel",
    "MierukaError",
    "Preprocess",
    "__version__",
    "auto_layer",
    "build_report",
    "classic",
    "colorize",
    "contact_sheet",
    "draw",
    "heatmap",
    "load_image",
    "load_labels",
    "load_model",
    "normalize",
    "overlay",
    "panel",
    "pil_to_tensor",
    "resolve_layer",
    "save_image",
    "save_png",
    "show_on_photo",
    "to_photo",
    "trace_layers",
    "upsample",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mieruka' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .cam import CAM, CAMResult, GradCAM
    from .errors import MierukaError
    from .images import CropBox, Preprocess, load_image, pil_to_tensor
    from .layers import auto_layer, resolve_layer, trace_layers
    from .maps import normalize, to_photo, upsample
    from .models import LoadedModel, load_labels, load_model
    from .render import (
        classic,
        colorize,
        draw,
        heatmap,
        overlay,
        panel,
        save_image,
        save_png,
        show_on_photo,
    )
    from .report import build_report
    from .sheet import ContactSheet, contact_sheet
