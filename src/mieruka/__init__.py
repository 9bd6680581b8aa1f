"""mieruka (見える化): see which part of an image a PyTorch vision model based its decision on."""

from importlib.metadata import PackageNotFoundError, version

from .cam import CAM, CAMResult, GradCAM
from .images import CropBox, Preprocess, load_image, pil_to_tensor
from .layers import auto_layer, resolve_layer, trace_layers
from .maps import normalize, to_photo, upsample
from .models import LoadedModel, load_labels, load_model
from .render import classic, colorize, draw, heatmap, overlay, panel, save_image, save_png, show_on_photo

try:
    __version__ = version("mieruka")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "CAM",
    "CAMResult",
    "CropBox",
    "GradCAM",
    "LoadedModel",
    "Preprocess",
    "__version__",
    "auto_layer",
    "classic",
    "colorize",
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
