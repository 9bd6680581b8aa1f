"""The viewer's model side: one loaded model, the photos opened in the page, and one explanation at a time.

Nothing here knows about HTTP. A photo is kept upright and whole for the model, and as a display copy
(at most :data:`DISPLAY_PIXELS` on its long side) for the page. Maps come back at the display copy's
pixels through the same crop mapping as the pictures ``mieruka explain`` writes (:func:`to_photo` of
the normalized raw map over the crop box), as 8-bit grayscale PNGs: the page colours them itself, so
the colormap and the opacity change without a new computation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..cam import CAM
from ..errors import MierukaError
from ..images import CropBox
from ..layers import auto_layer, candidate_layers, evaluating
from ..maps import box_pixels, normalize, to_photo
from ..methods import METHODS, get_method
from ..models import LoadedModel
from ..render import colormap_table, shrink
from ..targets import top_scores

DISPLAY_PIXELS = 1280  # long side of the photo the page shows and colours
PHOTOS_KEPT = 32  # photos held in memory, the least recently used dropped first
MAX_TOP_K = 10
COLORMAPS = ("jet", "turbo", "viridis", "inferno", "magma", "plasma", "cividis", "hot", "coolwarm", "gray")


class ViewerError(MierukaError):
    """A request the viewer cannot answer; the message is shown in the page."""


class PhotoGone(ViewerError):
    """A photo id the viewer does not hold (never opened, or dropped to make room)."""


@dataclass(frozen=True)
class Photo:
    """An opened photo: the model's input made from it, and the copy the page shows (the whole photo
    itself is not kept: a 12-megapixel photo would hold 36 MB for nothing)."""

    id: str
    name: str
    size: tuple[int, int]  # the original photo's (width, height), upright
    inputs: torch.Tensor  # the preprocessed model input (C, H, W), on the CPU
    shown: Image.Image
    shown_box: CropBox  # the model input's crop, in the shown copy's pixels
    png: bytes  # the shown copy, encoded once

    def describe(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "width": self.shown.width,
            "height": self.shown.height,
            "original": list(self.size),
            "url": f"/api/photos/{self.id}.png",
        }


class Viewer:
    """A loaded model served to the page: what it offers (methods, layers, classes) and its maps.

    Model work runs one call at a time under a lock, so concurrent requests are safe; opening photos
    needs no lock of its own beyond the small one that guards the photo cache.

    >>> viewer = Viewer(load_model("resnet18", "ft.pth", num_classes=5, labels="labels.txt"))
    >>> photo = viewer.add_photo(load_image("cat.jpg"), "cat.jpg", key="cat")
    >>> viewer.explain(photo.id, ["gradcam", "layercam"], top_k=2)["targets"]
    """

    def __init__(self, loaded: LoadedModel, device: torch.device | str = "cpu") -> None:
        self.loaded = loaded
        self.device = torch.device(device)
        self._lock = threading.Lock()  # one computation at a time on the model
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._photos_lock = threading.Lock()
        self._cams: dict[str, CAM] = {}
        dummy = self._dummy()
        with self._lock:
            self.task = loaded.task or _infer_task(loaded.model, dummy)
            self.layers = candidate_layers(loaded.model, dummy)
            self.auto_layer = auto_layer(loaded.model, dummy)
            self.methods = _applicable(loaded.model)
        self.classes = len(loaded.labels) if loaded.labels is not None else None

    def info(self) -> dict:
        """What the page offers: the model, its methods, layers and classes, colormaps."""
        return {
            "model": self.loaded.name,
            "weights": self.loaded.weights,
            "random_weights": self.loaded.random_weights,
            "task": self.task,
            "device": str(self.device),
            "labels": self.loaded.labels,
            "methods": [
                {"name": m.name, "kind": m.kind, "summary": m.summary, "slow": m.kind == "perturbation"}
                for m in self.methods
            ],
            "layers": [
                {"name": info.name, "module": info.kind, "shape": list(info.shape or ())[1:], "layout": kind}
                for info, kind in self.layers
            ],
            "auto_layer": self.auto_layer,
            "max_top_k": min(MAX_TOP_K, self.classes or 1) if self.task == "classify" else 1,
            "colormaps": list(COLORMAPS),
            "display_pixels": DISPLAY_PIXELS,
        }

    # ---- photos --------------------------------------------------------------------------------

    def add_photo(self, image: Image.Image, name: str, key: str) -> Photo:
        """Hold an upright RGB photo (see :func:`mieruka.images.load_image`) under an id made from `key`
        (its bytes' digest, or its path and modification time), and make its display copy."""
        photo_id = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        with self._photos_lock:
            if photo_id in self._photos:
                self._photos.move_to_end(photo_id)
                return self._photos[photo_id]
        box = self.loaded.preprocess.crop_box(image.size)
        shown, shown_box = shrink(image, box, DISPLAY_PIXELS)
        buffer = io.BytesIO()
        shown.save(buffer, format="PNG", compress_level=1)
        inputs = self.loaded.preprocess(image)
        photo = Photo(photo_id, name, image.size, inputs, shown, shown_box, buffer.getvalue())
        with self._photos_lock:
            self._photos[photo_id] = photo
            while len(self._photos) > PHOTOS_KEPT:
                self._photos.popitem(last=False)
        return photo

    def photo(self, photo_id: str) -> Photo:
        with self._photos_lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                raise PhotoGone(
                    "that photo is no longer held by the viewer (it keeps the last "
                    f"{PHOTOS_KEPT}, and forgets all when restarted): open it again"
                )
            self._photos.move_to_end(photo_id)
            return photo

    # ---- maps ----------------------------------------------------------------------------------

    def explain(
        self,
        photo_id: str,
        methods: Sequence[str],
        layer: str | None = None,
        target: str | None = None,
        top_k: int = 1,
    ) -> dict:
        """Maps of `methods` at `layer` (None: the automatic one) for the predicted class, the `top_k`
        best, or `target` (a class name or index), with the photo's top classes.

        Each map is normalized by its maximum at the layer's resolution and put onto the shown photo's
        pixels as :func:`mieruka.render.show_on_photo` does; ``box`` names the pixels it covers.
        """
        photo = self.photo(photo_id)
        chosen = self._methods(methods)
        cam = self._cam(layer)
        spec, k = self._target(target, top_k)
        inputs = photo.inputs[None].to(self.device)
        started = time.perf_counter()
        with self._lock:
            results = cam.compare(inputs, chosen, spec, top_k=k)
        seconds = time.perf_counter() - started
        first = results[chosen[0]]
        # the layer the CAMs read; "attention" only where attention methods alone ran
        cams = next((results[m] for m in chosen if METHODS[m].kind != "attention"), first)
        raws = {name: _per_target(result.raw[0]).detach().float().cpu() for name, result in results.items()}
        count = next(iter(raws.values())).shape[0]
        valid = first.valid[0].tolist() if first.valid is not None else [True] * count
        indices = first.targets[0].reshape(-1).tolist() if first.targets is not None else [None] * count
        names = _row(first.labels, count)
        probabilities = (
            first.target_probs[0].reshape(-1).tolist() if first.target_probs is not None else [None] * count
        )
        details = _row(first.details, count)
        targets: list[dict] = []
        maps: dict[str, list[dict]] = {name: [] for name in raws}
        for position in range(count):
            if not valid[position]:
                continue
            index = indices[position]
            targets.append(
                {
                    "label": names[position] or self._label(index),
                    "index": index,
                    "probability": probabilities[position],
                    "rank": len(targets) + 1,
                    **{key: value for key, value in (details[position] or {}).items() if key != "box"},
                }
            )
            for name, raw in raws.items():
                shown = self.shown_map(photo, raw[position])
                result = results[name]
                maps[name].append(
                    {
                        "png": _png_data_url(shown),
                        "empty": result.empty_at(0, position),
                        "flat": result.flat_at(0, position),
                    }
                )
        span = box_pixels(photo.shown_box, photo.shown.size)
        return {
            "photo": photo.describe(),
            "task": self.task,
            "layer": cams.layer,
            "layout": cams.layout,
            "methods": chosen,
            "top5": self._top5(first),
            "targets": targets,
            "maps": maps,
            "box": None if span is None else [span[1].start, span[0].start, span[1].stop, span[0].stop],
            "seconds": round(seconds, 3),
        }

    def shown_map(self, photo: Photo, raw: torch.Tensor) -> torch.Tensor:
        """A raw map (h, w) as the page gets it: normalized, resampled onto the shown photo inside the
        crop box (zero outside), as 8-bit levels (H, W) uint8: round(255 x map), as render.colorize does."""
        scaled = normalize(raw[None])[0]
        on_photo, _ = to_photo(scaled, photo.shown_box, photo.shown.size)
        return on_photo[0].mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8)

    def _methods(self, methods: Sequence[str]) -> list[str]:
        if not methods:
            raise ViewerError("choose at least one method")
        offered = {m.name for m in self.methods}
        chosen: list[str] = []
        for text in methods:
            method = get_method(str(text))
            if method.name not in offered:
                raise ViewerError(
                    f"{method.name} does not apply to {self.loaded.name} (it needs a vision transformer)"
                )
            if method.name not in chosen:
                chosen.append(method.name)
        return chosen

    def _cam(self, layer: str | None) -> CAM:
        name = layer or self.auto_layer
        if name not in self._cams:
            known = {info.name for info, _ in self.layers}
            if name not in known:
                raise ViewerError(
                    f"no layer {name!r} among the model's feature maps; `mieruka layers` lists them"
                )
            self._cams[name] = CAM(self.loaded.model, name, labels=self.loaded.labels)
        return self._cams[name]

    def _target(self, target: str | None, top_k: int) -> tuple[object, int | None]:
        """What CAM.compare gets: (target, top_k) for a classifier, the task's own target otherwise."""
        from ..targets import class_index
        from ..targets.tasks import default_target

        target = (target or "").strip() or None
        if self.task != "classify":
            if top_k != 1:
                raise ViewerError(f"top-k is for classifiers; this model's task is {self.task}")
            return default_target(self.task, target=target), None
        if target is not None and top_k != 1:
            raise ViewerError("a class and top-k exclude each other: explain one class, or the k best")
        if not 1 <= top_k <= MAX_TOP_K or (self.classes is not None and top_k > self.classes):
            raise ViewerError(
                f"top-k must be between 1 and {min(MAX_TOP_K, self.classes or MAX_TOP_K)}, got {top_k}"
            )
        if target is None:
            return None, top_k if top_k > 1 else None
        index = class_index(target, self.loaded.labels)
        if self.classes is not None and not 0 <= index < self.classes:
            raise ViewerError(
                f"class {target}: the model has {self.classes} classes (0 to {self.classes - 1})"
            )
        return index, None

    def _top5(self, result) -> list[dict]:
        if result.probs is None:
            return []
        probs = result.probs[0]
        top = top_scores(probs, min(5, probs.numel()))
        names = result.class_names
        return [
            {"label": names[i] if names else self._label(i), "index": i, "probability": round(p, 6)}
            for p, i in zip(top.values.tolist(), top.indices.tolist())
        ]

    def _label(self, index: int | None) -> str:
        labels = self.loaded.labels
        if index is None:
            return "target"
        return labels[index] if labels is not None and 0 <= index < len(labels) else f"class {index}"

    def _dummy(self) -> torch.Tensor:
        width, height = self.loaded.preprocess.crop_size((512, 512))
        parameter = next((p for p in self.loaded.model.parameters() if p.is_floating_point()), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        return torch.zeros(1, 3, height, width, device=self.device, dtype=dtype)


def colormap_tables(names: Sequence[str] = COLORMAPS) -> dict[str, list[list[int]]]:
    """Each colormap as the page's lookup table: 256 [r, g, b] rows, the ones the pictures use."""
    return {name: colormap_table(name).tolist() for name in names}


def _infer_task(model, dummy: torch.Tensor) -> str:
    from ..targets.tasks import infer_task

    with torch.no_grad(), evaluating(model):
        return infer_task(model(dummy))  # classify, binary, segment or detect: the others are named


def _applicable(model) -> list:
    """The methods of the registry that run on this model: the CAM family always, attention methods
    on vision transformers only."""
    from ..methods.attention import AttentionError, vision_transformer

    try:
        vision_transformer(model)
        attention = True
    except AttentionError:
        attention = False
    return [m for m in METHODS.values() if m.kind != "attention" or attention]


def _per_target(raw: torch.Tensor) -> torch.Tensor:
    return raw.unsqueeze(0) if raw.dim() == 2 else raw


def _row(values: list | None, count: int) -> list:
    """The first image's entry of a per-image list (one value, or K values) as K values."""
    if values is None:
        return [None] * count
    item = values[0]
    return list(item) if isinstance(item, list) else [item]


def _png_data_url(levels: torch.Tensor) -> str:
    buffer = io.BytesIO()
    Image.fromarray(levels.numpy(), "L").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
