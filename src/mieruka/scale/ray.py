"""The Ray Data adapter: the same engine as a local folder run, inside ``Dataset.map_batches``.

Each Ray actor builds the model once from a :class:`ModelSpec` (the arguments of
:func:`mieruka.load_model`, never a live model) and explains the batches Ray hands it: decode
(:func:`mieruka.images.decode_image`, EXIF and modes as locally), preprocess, :meth:`CAM.compare`, and
optionally draw the overlay. Gradients are switched back on inside the actor, so the maps are right
even when the caller's recipe runs under ``torch.inference_mode()``. A photo that cannot be read gives
a row with its error; the others are kept.

Rows out: one per photo, target and method (see :data:`COLUMNS`); a photo that could not be read gives
one row with `error` set and an empty (0, 0) `map`. Write them with Ray's own writers
(``write_parquet``) or into a folder as a local run does (:class:`FolderWriter`).

Ray (``pip install "mieruka[ray]"``) is imported here only, when this module is.
"""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .._io import atomic_open
from ..batch import RenderOptions
from ..cam import CAM
from ..images import ImageError, decode_image, load_image, model_input, to_rgb
from ..maps import normalize, to_photo
from ..metrics.localization import centre_energy
from ..models import LoadedModel, load_model
from ..outputs import RESULTS, Namer, write_jsonl
from ..render import show_on_photo
from ..report import assets
from ..targets import top_scores

if TYPE_CHECKING:
    import ray.data

COLUMNS = {
    "path": "the photo's path (or name), as it came in",
    "label": "the explained class's name",
    "index": "the explained class's index",
    "probability": "the model's probability for that class",
    "rank": "1 for the first target of the photo, 2 for the next (top_k)",
    "top5": "the five most probable classes, as JSON text",
    "method": "the CAM method of this row's map",
    "layer": "the layer(s) explained",
    "layout": "how the layer's output was read",
    "model": "the model's name",
    "weights": "what its weights are (a file name, a torchvision weights name, default, random)",
    "map": "the map: float32/float16 (h, w) at the layer's resolution, or (H, W) on the photo",
    "empty": "the map had no positive value",
    "flat": "the map had the same value everywhere: it shows no place",
    "width": "the photo's width in pixels",
    "height": "the photo's height in pixels",
    "crop": "the model's input as a box of the photo: [left, top, right, bottom] in its pixels",
    "centre_energy": "the share of the map's energy in the central box (see mieruka.metrics.centre_energy)",
    "picture": "the drawn picture, encoded as PNG or JPEG (only when `render` is given)",
    "thumb": "the picture's thumbnail for the HTML report, JPEG (only when `render.report`)",
    "view": "the photo at the report's viewing size, JPEG; on each photo's first row only (`render.report`)",
    "heat": "the map's heat layer over that view, JPEG (only when `render.report`)",
    "error": "why the photo could not be explained (then every other field is empty)",
}
REPORT_COLUMNS = ("thumb", "view", "heat")  # what the HTML report shows, drawn by the actors
RESOLUTIONS = ("layer", "photo")


@dataclass(frozen=True)
class ModelSpec:
    """What each actor builds its model from: :func:`mieruka.load_model`'s arguments, picklable.

    Files it names (`weights`, `labels`) must be readable on every node; labels may be given as a list.
    `device` "auto" is resolved in each actor: CUDA where the actor was given a GPU, else the CPU.
    """

    name: str | None = None
    weights: str | None = None
    num_classes: int | None = None
    labels: str | tuple[str, ...] | None = None
    trust_checkpoint: bool = False
    random_weights: bool = False
    device: str = "auto"
    model_kwargs: tuple[tuple[str, Any], ...] = ()  # the builder's arguments, as (name, value) pairs

    def load(self) -> LoadedModel:
        labels = list(self.labels) if isinstance(self.labels, tuple) else self.labels
        return load_model(
            self.name,
            self.weights,
            num_classes=self.num_classes,
            labels=labels,
            trust_checkpoint=self.trust_checkpoint,
            random_weights=self.random_weights,
            device=_resolve_device(self.device),
            model_kwargs=dict(self.model_kwargs),
        )


class Explainer:
    """The callable class Ray runs in each actor: one model, built once; batches of photos -> rows.

    Usable in your own ``map_batches`` (``fn_constructor_kwargs`` are this constructor's arguments) or
    through :func:`explain_dataset`. Batches are numpy dicts with a ``path`` column and, optionally,
    ``bytes`` (``read_binary_files``) or ``image`` (``read_images``) holding the photo; with neither,
    the photo is read from ``path``.
    """

    def __init__(
        self,
        model: ModelSpec,
        *,
        methods: str | Sequence[str] = ("gradcam",),
        layer: str | None = None,
        target: int | None = None,
        top_k: int = 1,
        cam_options: dict[str, Any] | None = None,
        resolution: str = "layer",
        dtype: str = "float32",
        render: RenderOptions | None = None,
    ) -> None:
        _check_options(resolution, dtype, render, top_k)
        methods = [methods] if isinstance(methods, str) else list(methods)
        with torch.inference_mode(False):  # parameters made under inference mode could not take gradients
            self.loaded = model.load()
            self.cam = CAM(
                self.loaded.model,
                layer,
                method=methods[0],
                labels=self.loaded.labels,
                **(cam_options or {}),
            )
        self.methods = list(methods)
        self.target = target
        self.top_k = top_k
        self.resolution = resolution
        self.dtype = np.dtype(dtype)
        self.render = render
        self.device = next(self.loaded.model.parameters()).device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Ray's batch-inference recipe (and many callers) run under torch.inference_mode(); a CAM needs
        # d(score)/d(activations), so gradients are switched back on for this call only.
        with torch.inference_mode(False), torch.enable_grad():
            rows = self._explain(batch)
        return {name: _column([row.get(name) for row in rows]) for name in self._columns()}

    def _columns(self) -> list[str]:
        drawn = {"picture"} if self.render is not None else set()
        if self.render is not None and self.render.report:
            drawn |= set(REPORT_COLUMNS)
        return [name for name in COLUMNS if name in drawn or name not in ("picture", *REPORT_COLUMNS)]

    def _explain(self, batch: dict[str, np.ndarray]) -> list[dict]:
        count = len(next(iter(batch.values())))
        names = [str(p) for p in batch["path"]] if "path" in batch else [f"row {i}" for i in range(count)]
        rows: list[list[dict]] = [[] for _ in range(count)]
        groups: dict[tuple, list] = {}  # readable photos by their model input's shape
        for i, name in enumerate(names):
            try:
                image = _decode(batch, i, name)
                inputs = model_input(self.loaded.preprocess, image, name)
            except ImageError as error:
                rows[i] = [self._failed(name, str(error))]
                continue
            except Exception as error:  # a worker reports, whatever a decoder throws
                rows[i] = [self._failed(name, f"{name}: cannot be read ({type(error).__name__}: {error})")]
                continue
            groups.setdefault(tuple(inputs.shape), []).append((i, image, inputs))
        for group in groups.values():
            inputs = torch.stack([item[2] for item in group]).to(self.device)
            by_method = self.cam.compare(
                inputs, self.methods, self.target, top_k=self.top_k if self.top_k > 1 else None
            )
            for row, (i, image, _) in enumerate(group):
                rows[i] = self._rows(by_method, row, image, names[i])
        return [row for photo in rows for row in photo]

    def _failed(self, name: str, error: str) -> dict:
        return {"path": name, "error": error, "map": np.zeros((0, 0), dtype=self.dtype)}

    def _rows(self, by_method: dict, row: int, image: Image.Image, name: str) -> list[dict]:
        """One photo's rows: per target, per method."""
        first = next(iter(by_method.values()))
        labels = self.loaded.labels
        top5 = None
        if first.probs is not None:
            top = top_scores(first.probs[row], min(5, first.probs.shape[1]))
            top5 = json.dumps(
                [
                    {"label": _name(labels, i), "index": i, "probability": round(p, 6)}
                    for p, i in zip(top.values.tolist(), top.indices.tolist())
                ],
                ensure_ascii=False,
            )
        indices = first.targets[row].reshape(-1).tolist() if first.targets is not None else [None]
        probabilities = (
            first.target_probs[row].reshape(-1).tolist()
            if first.target_probs is not None
            else [None] * len(indices)
        )
        box = self.loaded.preprocess.crop_box(image.size)
        crop = [round(v, 2) for v in (box.left, box.top, box.right, box.bottom)]
        centres = {
            method: centre_energy(result.maps[row]).reshape(-1).tolist()
            for method, result in by_method.items()
        }
        several = len(by_method) > 1
        report = self.render is not None and self.render.report
        view = assets.view_photo(image, box) if report else None
        rows = []
        for k, (index, probability) in enumerate(zip(indices, probabilities)):
            label = _name(labels, index) if index is not None else "target"
            for method, result in by_method.items():
                raw = result.raw[row].detach()
                raw = raw.reshape(-1, *raw.shape[-2:])[k]
                record = {
                    "path": name,
                    "label": label,
                    "index": index,
                    "probability": None if probability is None else round(probability, 6),
                    "rank": k + 1,
                    "top5": top5,
                    "method": method,
                    "layer": result.layer,
                    "layout": result.layout,
                    "model": self.loaded.name,
                    "weights": self.loaded.weights,
                    "map": self._map(raw, box, image.size),
                    "empty": result.empty_at(row, k),
                    "flat": result.flat_at(row, k),
                    "width": image.width,
                    "height": image.height,
                    "crop": crop,
                    "centre_energy": round(centres[method][k], 4),
                }
                if self.render is not None:
                    title = label if probability is None else f"{label}  (p = {probability:.3f})"
                    if self.loaded.random_weights:
                        title += "  [random weights]"
                    title = f"{title} - {method}" if several else title
                    no_place = result.shows_no_place_at(row, k)
                    title += f"  [{no_place}]" if no_place else ""
                    drawn = _drawn(image, raw, box, title, self.render)
                    record["picture"] = _encoded(drawn, self.render.format)
                    if view is not None:
                        record["thumb"] = _encoded(assets.thumbnail(drawn), "jpg", assets.QUALITY)
                        record["view"] = _encoded(view[0], "jpg", assets.QUALITY) if not rows else None
                        layer = assets.heat_layer(raw, view[1], view[0].size, self.render.colormap)
                        record["heat"] = _encoded(layer, "jpg", assets.QUALITY) if layer is not None else None
                rows.append(record)
        return rows

    def _map(self, raw: torch.Tensor, box, size: tuple[int, int]) -> np.ndarray:
        """`raw` (h, w) as it is (what a local run's --save-maps writes), or normalized on the photo."""
        if self.resolution == "photo":
            raw = to_photo(normalize(raw[None])[0], box, size)[0][0]
        return raw.float().cpu().numpy().astype(self.dtype)


def explain_dataset(
    dataset: ray.data.Dataset,
    model: ModelSpec,
    *,
    methods: str | Sequence[str] = "gradcam",
    layer: str | None = None,
    target: int | None = None,
    top_k: int = 1,
    cam_options: dict[str, Any] | None = None,
    resolution: str = "layer",
    dtype: str = "float32",
    render: RenderOptions | None = None,
    batch_size: int = 16,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
) -> ray.data.Dataset:
    """A lazy dataset of CAM rows (see :data:`COLUMNS`) for a dataset of photos.

    `dataset` holds a ``path`` column, with ``bytes`` (``read_binary_files(..., include_paths=True)``)
    or ``image`` (``read_images(..., include_paths=True)``) or neither (the actors read the paths).
    Reading bytes and decoding in the actors (the first) is what a local run does, and the only way an
    unreadable photo costs its own row instead of the whole job. `concurrency` actors (or a
    (min, max) autoscaling range) each get `num_gpus` GPUs and `num_cpus` CPUs and build the model
    once; `batch_size` photos go through the model together. `resolution` "layer" gives each raw map
    at the layer's resolution (ReLU'd, not normalized: a local run's ``--save-maps`` array), "photo"
    the normalized map on the photo's pixel grid (zero where the model did not look), in `dtype`.
    `cam_options` are further :class:`mieruka.CAM` arguments (``eigen_smooth``, ``layout``, ...).
    With `render` each row also holds its picture (``render.format``: png or jpg).

    >>> import ray
    >>> photos = ray.data.read_binary_files("photos/", include_paths=True)
    >>> rows = explain_dataset(photos, ModelSpec("resnet18", "IMAGENET1K_V1"), concurrency=2)
    >>> rows.write_parquet("cams/")  # doctest: +SKIP
    """
    import ray.data

    methods = [methods] if isinstance(methods, str) else list(methods)
    _check_options(resolution, dtype, render, top_k)
    if isinstance(concurrency, int):
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    else:
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    return dataset.map_batches(
        Explainer,
        fn_constructor_kwargs={
            "model": model,
            "methods": methods,
            "layer": layer,
            "target": target,
            "top_k": top_k,
            "cam_options": cam_options,
            "resolution": resolution,
            "dtype": dtype,
            "render": render,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=compute,
        num_gpus=num_gpus,
        num_cpus=num_cpus,
    )


class FolderWriter:
    """Rows into a folder as a local run writes it: pictures, maps (.npy) and results.jsonl.

    Files are named as a local run names them (`a/cat.jpg` -> `a/cat_<label>.png`, relative to the
    folder), from `places` (path -> place under its folder; by default the file name), in the order
    the rows come; records name each photo as `names` says (path -> name; by default its path). With several methods each method's row is its own record (no comparison panel).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        places: dict[str, PurePath] | None = None,
        names: dict[str, str] | None = None,
        save_maps: bool = True,
        several_methods: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.places = places or {}
        self.names = names or {}
        self.save_maps = save_maps
        self.several = several_methods
        self.records: list[dict] = []
        self._namer = Namer()
        self._views = Namer()  # the report's photos at viewing size, one per photo
        self._view_of: dict[str, str] = {}

    def add(self, row: dict) -> dict:
        """Write one row's files and return its record (also kept in :attr:`records`)."""
        path = row["path"]
        file = self.names.get(path, path)
        if row.get("error"):
            error = row["error"]  # it names the photo as the actor read it: name it as the records do
            record = {"file": file, "error": file + error[len(path) :] if error.startswith(path) else error}
            self.records.append(record)
            return record
        place = self.places.get(path, PurePath(PurePath(path).name))
        label = row["label"] if not self.several else f"{row['label']}_{row['method']}"
        record = {
            "file": file,
            "task": "classify",
            "label": row["label"],
            "index": row["index"],
            "probability": row["probability"],
            "rank": row["rank"],
            "layer": row["layer"],
            "layout": row["layout"],
            "method": row["method"],
            "model": row["model"],
            "weights": row["weights"],
            "empty": bool(row["empty"]),
            "flat": bool(row.get("flat", False)),
            "output": None,
        }
        if row.get("centre_energy") is not None:
            record["centre_energy"] = row["centre_energy"]
        if row.get("crop") is not None:
            record["crop"] = [float(v) for v in row["crop"]]
        if row.get("width") is not None:
            record["size"] = [int(row["width"]), int(row["height"])]
        if row.get("top5"):
            record["top5"] = json.loads(row["top5"])
        picture = row.get("picture")
        if picture is not None:
            suffix = ".jpg" if picture[:2] == b"\xff\xd8" else ".png"
            output = self._namer.name(place, label, suffix)
            self._write(output, picture)
            record["output"] = str(output)
            self._report_pictures(row, place, output, record)
        if self.save_maps:
            name = (
                PurePath(record["output"]).with_suffix(".npy")
                if record["output"]
                else self._namer.name(place, label, ".npy")
            )
            with atomic_open(self.out_dir / name) as stream:
                np.save(stream, np.asarray(row["map"]))
            record["map"] = str(name)
        self.records.append(record)
        return record

    def _report_pictures(self, row: dict, place: PurePath, output: PurePosixPath, record: dict) -> None:
        """The report's pictures of a row (``render.report``), where a local run puts them."""
        if row.get("view") is not None:
            view = PurePosixPath(assets.PHOTOS) / self._views.name(place, "photo", ".jpg")
            self._write(view, row["view"])
            self._view_of[row["path"]] = view.as_posix()
        if row["path"] in self._view_of:
            record["view"] = self._view_of[row["path"]]
        if row.get("thumb") is not None:
            thumb = PurePosixPath(assets.THUMBS) / output.with_suffix(".jpg")
            self._write(thumb, row["thumb"])
            record["thumb"] = thumb.as_posix()
        if row.get("heat") is not None:
            heat = PurePosixPath(assets.HEAT) / output.with_suffix(".jpg")
            self._write(heat, row["heat"])
            record["heat"] = heat.as_posix()

    def _write(self, name: PurePath, data: bytes) -> None:
        with atomic_open(self.out_dir / name) as stream:
            stream.write(data)

    def close(self, order: Sequence[str] | None = None) -> Path:
        """Write results.jsonl: records in `order` of their files (then rank), else as they came."""
        records = self.records
        if order is not None:
            position = {path: i for i, path in enumerate(order)}
            records = sorted(
                records, key=lambda r: (position.get(r["file"], len(position)), r.get("rank", 0))
            )
        write_jsonl(records, self.out_dir / RESULTS)
        return self.out_dir / RESULTS


def write_folder(
    rows: ray.data.Dataset | Iterable[dict],
    out_dir: str | os.PathLike,
    *,
    places: dict[str, PurePath] | None = None,
    save_maps: bool = True,
    several_methods: bool = False,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Write :func:`explain_dataset`'s rows into `out_dir` (see :class:`FolderWriter`); its records.

    The rows stream through this process: nothing needs a folder shared by the cluster's nodes.
    """
    writer = FolderWriter(out_dir, places=places, save_maps=save_maps, several_methods=several_methods)
    for row in rows.iter_rows() if hasattr(rows, "iter_rows") else rows:
        record = writer.add(dict(row))
        if on_record is not None:
            on_record(record)
    writer.close()
    return writer.records


def connect(address: str | None = None, *, num_cpus: int | None = None, timeout: float = 5.0) -> None:
    """Start a local Ray (no `address`) or join the cluster at `address`, quietly.

    An address nobody answers at is refused within `timeout` seconds with a ConnectionError that
    says what to do, rather than Ray's own retries for a minute or more.
    """
    import logging

    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        check_address(address, timeout)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        ray.init(
            address=address or None,
            num_cpus=num_cpus if not address else None,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
        )
    except ConnectionError as error:
        raise ConnectionError(f"--address {address}: cannot join the Ray cluster ({error})") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False


def check_address(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError unless something listens at a Ray address (host:port, ray://host:port)."""
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    default = 10001 if address.startswith("ray://") else 6379
    try:
        number = int(port) if port else default
    except ValueError:
        raise ValueError(f"--address {address}: expected HOST:PORT or ray://HOST:PORT") from None
    try:
        with socket.create_connection((host.strip("[]"), number), timeout=timeout):
            pass
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ConnectionError(
            f"--address {address}: no Ray cluster answers there ({reason}); start one with "
            "`ray start --head` or give the head node's address, or leave --address out to run here"
        ) from None


def _drawn(image: Image.Image, raw: torch.Tensor, box, title: str, options: RenderOptions) -> Image.Image:
    """The map drawn on the photo as a local run draws it."""
    return show_on_photo(
        image,
        raw,
        box,
        style=options.style,
        colormap=options.colormap,
        alpha=options.alpha,
        title=title,
        label=options.label,
        font=options.font,
    )


def _encoded(picture: Image.Image, format: str, quality: int = 92) -> bytes:
    """A picture as the bytes of the file a local run would write (png, or jpg at `quality`)."""
    stream = io.BytesIO()
    if format in ("jpg", "jpeg"):
        picture.convert("RGB").save(stream, format="JPEG", quality=quality)
    else:
        picture.save(stream, format="PNG", compress_level=1)
    return stream.getvalue()


def _decode(batch: dict[str, np.ndarray], i: int, name: str) -> Image.Image:
    if "bytes" in batch:
        return decode_image(bytes(batch["bytes"][i]), name)
    if "image" in batch:  # decoded by read_images: no EXIF left to apply
        array = np.asarray(batch["image"][i])
        return to_rgb(
            Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1 else array)
        )
    return load_image(name)


def _check_options(resolution: str, dtype: str, render: RenderOptions | None, top_k: int) -> None:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    if np.dtype(dtype) not in (np.float32, np.float16):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    if render is not None and render.style == "boxes":
        raise ValueError("style boxes draws a detector's objects; the Ray adapter explains classifiers")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _name(labels: list[str] | None, index: int) -> str:
    if labels is not None and 0 <= index < len(labels):
        return labels[index]
    return f"class {index}"


def _column(values: list) -> np.ndarray:
    """A list as one object column: Ray gives strings, numbers and None their Arrow types, and a
    column of arrays a tensor type (variable-shaped when shapes differ)."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column
