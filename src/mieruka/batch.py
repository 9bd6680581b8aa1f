"""Explain many photos end to end: decode in workers, batch the model, map back, render and write.

Decoding and preprocessing run in DataLoader workers; each photo's pictures are drawn (Pillow's C
kernels on the CPU, tensors on the model's device elsewhere), encoded and written in a thread pool
while the model works on the next batch. One unreadable photo costs only its own result.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from . import render
from ._io import atomic_open
from .cam import CAM
from .errors import MierukaWarning
from .images import CropBox, ImageError, Preprocess, load_image, model_input, pil_to_tensor
from .maps import no_place
from .metrics.localization import centre_energy
from .models import LoadedModel
from .outputs import Namer
from .report import assets
from .shards import MapShards
from .targets import TargetSpec, top_scores


@dataclass
class RenderOptions:
    """How to draw each map and what to write."""

    style: str = "overlay"
    colormap: str = "jet"
    alpha: float = 0.5
    save_maps: bool = False
    format: str = "png"  # or "jpg": much faster to encode for large photos
    label: bool = True  # overlay and classic: the label and probability in a corner
    font: str | None = None  # a font file for that text and the panels' (default: mieruka.fonts)
    tile: int | None = None  # also draw each target's picture this many pixels on its long side
    report: bool = False  # also what the HTML report shows: thumbnails, the photo, each heat layer


@dataclass
class Tile:
    """A small picture for a contact sheet, its caption, and the indices of the records it shows."""

    picture: Image.Image
    caption: str
    records: list[int]


@dataclass
class ImageResult:
    """The outcome for one photo: one record per explained target, or an error."""

    path: Path
    records: list[dict] = field(default_factory=list)
    error: str | None = None
    tiles: list[Tile] = field(default_factory=list)  # with RenderOptions.tile; none for a failed photo


class _Photos(Dataset):
    def __init__(self, paths: Sequence[Path], preprocess: Preprocess, keep_photo: bool = True) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess
        self.keep_photo = keep_photo  # maps only (shards): no picture drawn, so no full photo to send

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple:
        """(index, input, photo, error, warnings): mieruka's warnings while reading (a guessed bit
        depth) travel with the photo, to be given in the main process, not printed by a worker."""
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", MierukaWarning)
            try:
                image = load_image(self.paths[index])
                inputs = model_input(self.preprocess, image, str(self.paths[index]))
                item = index, inputs, pil_to_tensor(image) if self.keep_photo else None, None
            except ImageError as error:
                item = index, None, None, str(error)
            except Exception as error:  # a worker must report, not die, whatever a decoder throws
                item = (
                    index,
                    None,
                    None,
                    f"{self.paths[index]}: cannot be read ({type(error).__name__}: {error})",
                )
        return *item, [w.message for w in said if isinstance(w.message, MierukaWarning)]


def _keep_list(items: list) -> list:
    return items


def say_warnings(batch: list) -> None:
    """Give, in this process, the warnings a batch's photos met while read (perhaps by a worker)."""
    for item in batch:
        for message in item[4]:
            warnings.warn(message, stacklevel=2)


def explain_files(
    paths: Sequence[Path],
    loaded: LoadedModel,
    cam: CAM,
    out_dir: Path,
    *,
    methods: Sequence[str] | None = None,
    targets: TargetSpec = None,
    top_k: int | None = None,
    options: RenderOptions | None = None,
    batch_size: int = 16,
    workers: int | None = None,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int], None] | None = None,
    places: Sequence[PurePath] | None = None,
    shards: MapShards | None = None,
    taken: Sequence[str] = (),
) -> Iterator[ImageResult]:
    """Explain `paths` and write one picture per photo, target and method into `out_dir`.

    With several `methods` each also gets a comparison panel. Each photo's pictures go to its place
    in `places` (`a/cat.jpg` -> `out_dir/a/cat_<label>.png`; by default its file name, at the top) and
    its records name them relative to `out_dir`. Yields results in input order.

    Each record also gives the crop of the photo the model saw, the photo's size, and the share of
    the map's energy in the centre of that crop (``centre_energy``, see
    :func:`mieruka.metrics.centre_energy`); with ``options.report`` it names the small pictures of
    :mod:`mieruka.report.assets` it wrote under ``report/``.

    With `shards` no picture is drawn: the maps go into shards (see :mod:`mieruka.shards`), and a photo
    is yielded once its shard is written. `taken`: names an earlier part of the run gave (a resumed run).
    """
    options = options or RenderOptions()
    if shards is not None and options.report:
        raise ValueError("the report shows pictures; maps written to shards have none: report=False")
    places = list(places) if places is not None else [PurePath(path.name) for path in paths]
    methods = list(methods or [cam.method])
    device = torch.device(device)
    if workers is None:
        workers = 0 if len(paths) <= 4 else min(4, os.cpu_count() or 1)
    loader = DataLoader(
        _Photos(paths, loaded.preprocess, keep_photo=shards is None),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_keep_list,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
    namer, views = Namer(), Namer()  # the photos' copies for the report are named on their own
    for name in taken:
        namer.reserve(name)
        if name.startswith(assets.PHOTOS + "/"):
            views.reserve(name[len(assets.PHOTOS) + 1 :])
    pending: list[tuple[ImageResult, list[Future]]] = []  # photos handed to the writers, in order
    held: list[tuple[ImageResult, list[Future]]] = []  # shards: photos waiting for their shard

    def hand_over(batch: list, writers: ThreadPoolExecutor) -> None:
        """Run one batch through the model and give each photo's pictures to the writers (pending);
        with shards, hold each photo until its shard is written."""
        say_warnings(batch)
        readable = [item for item in batch if item[3] is None]
        results = {item[0]: ImageResult(paths[item[0]], error=item[3]) for item in batch}
        for good in _same_size(readable):  # photos kept whole (detectors) come in many sizes
            inputs = torch.stack([item[1] for item in good]).to(device, non_blocking=True)
            by_method = cam.compare(inputs, methods, targets, top_k=top_k if top_k and top_k > 1 else None)
            centres = {method: centre_energy(result.maps).tolist() for method, result in by_method.items()}
            for row, (index, _, photo, *_) in enumerate(good):
                size = (photo.shape[-1], photo.shape[-2]) if photo is not None else None  # maps only: none
                box = loaded.preprocess.crop_box(size) if size is not None else None
                plan = _Plan(places[index], box, size, {m: values[row] for m, values in centres.items()})
                pictures, report = _plan_one(
                    loaded, by_method, row, plan, out_dir, (namer, views), options, results[index]
                )
                if shards is not None:
                    shards.add(by_method, row, results[index].records)
                    held.append((results[index], []))
                    if shards.full():  # exactly `size` photos a shard, whatever the batch size
                        shards.write()
                        pending.extend(held)
                        held.clear()
                    continue
                drawing = (
                    photo.to(device, non_blocking=True),
                    {method: _per_target(result.raw[row]) for method, result in by_method.items()},
                    box,
                    pictures,
                    options,
                    tuple(inputs.shape[-2:]),
                    _objects(next(iter(by_method.values())), row),
                    report,
                )
                # one expression: no interruption falls between handing the job over and listing it
                pending.append((results[index], [writers.submit(_draw_and_write, *drawing)]))
        for item in batch:
            if item[3] is not None:
                (held if shards is not None else pending).append((results[item[0]], []))

    with ThreadPoolExecutor(max_workers=2) as writers:
        try:
            for batch in loader:
                hand_over(batch, writers)
                # Hand back what is written while the next batch runs on the model; wait when drawing
                # lags two batches behind, so photos never pile up in memory.
                while pending and (len(pending) > 2 * batch_size or all(job.done() for job in pending[0][1])):
                    yield _finish_first(pending)
                if on_progress:
                    on_progress(len(batch))
            if shards is not None:
                shards.write()
                pending.extend(held)
            while pending:
                yield _finish_first(pending)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, here or thrown in by the caller: what the writers
            # were given is finished and handed back before the interruption goes on, so the caller's log
            # lists every file written
            while pending:
                yield _finish_first(pending)
            raise


def _same_size(items: list) -> list[list]:
    """Items grouped by the shape of their model input, in order of first appearance."""
    groups: dict[tuple, list] = {}
    for item in items:
        groups.setdefault(tuple(item[1].shape), []).append(item)
    return list(groups.values())


def _finish_first(pending: list[tuple[ImageResult, list[Future]]]) -> ImageResult:
    """The first pending photo, finished, then taken off the list: an interruption while its pictures
    are awaited leaves it there, to be handed back with the rest."""
    done = _finish(*pending[0])
    del pending[0]
    return done


def _finish(result: ImageResult, jobs: list[Future]) -> ImageResult:
    result.tiles = []  # finished anew if an interruption cut the first wait short
    for job in jobs:
        try:
            result.tiles.extend(job.result())
        except OSError as error:
            result.error = f"{result.path}: cannot write output ({error})"
        except Exception as error:  # one photo that cannot be drawn must not stop the others
            result.error = f"{result.path}: cannot draw the picture ({type(error).__name__}: {error})"
    if result.error:
        result.records, result.tiles = [], []
    return result


@dataclass
class _Picture:
    """One picture to draw and write: a method's map for one target, or the methods side by side."""

    path: Path
    title: str
    k: int  # the target; -1: every object of the photo in one picture (--style boxes)
    method: str | None = None  # None: the comparison panel of every method
    box: list[float] | None = None  # a detected object's box, in the model input's pixels
    region: torch.Tensor | None = None  # a segmentation target's region (H, W) over the model input
    tile: tuple[str, list[int]] | None = None  # also drawn small: the tile's caption and its records
    thumb: Path | None = None  # the report's thumbnail of this picture, written beside it


@dataclass
class _Plan:
    """One photo as _plan_one needs it: its place under its folder, the crop the model saw (in its
    pixels), its (width, height), and each method's centre energy per target (one value, or K)."""

    place: PurePath
    box: CropBox | None  # None: maps only (shards), the photo itself never came
    size: tuple[int, int] | None
    centres: dict[str, float | list[float]]


@dataclass
class _ReportPictures:
    """What the report shows of one photo besides thumbnails: the photo at viewing size, and the heat
    layer of each target k and method."""

    view: Path
    heat: list[tuple[Path, int, str]] = field(default_factory=list)


@dataclass
class _Objects:
    """Every object of one photo, for --style boxes: boxes (K, 4) in input pixels, names, scores."""

    boxes: torch.Tensor
    names: list[str]
    scores: list[float | None]
    valid: torch.Tensor


def _plan_one(
    loaded: LoadedModel,
    by_method: dict,
    row: int,
    plan: _Plan,
    out_dir: Path,
    namers: tuple[Namer, Namer],
    options: RenderOptions,
    outcome: ImageResult,
) -> tuple[list[_Picture], _ReportPictures | None]:
    """Name one photo's pictures (per target and method) and fill its records; drawing comes later.

    Records give the paths relative to `out_dir`, with `/` on every system.
    """
    place, (namer, views) = plan.place, namers
    report = None
    if options.report:
        report = _ReportPictures(out_dir / assets.PHOTOS / views.name(place, "photo", ".jpg"))
    box = plan.box
    seen = {
        "view": report.view.relative_to(out_dir).as_posix() if report else None,
        "crop": [round(v, 2) for v in (box.left, box.top, box.right, box.bottom)]
        if box is not None
        else None,
        "size": list(plan.size) if plan.size is not None else None,
    }
    seen = {key: value for key, value in seen.items() if value is not None}
    first = next(iter(by_method.values()))
    top5 = None
    if first.probs is not None:
        probs = first.probs[row]
        top = top_scores(probs, min(5, probs.numel()))
        top5 = [
            {
                "label": first.class_names[i] if first.class_names else _label(loaded, i),
                "index": i,
                "probability": round(p, 6),
            }
            for p, i in zip(top.values.tolist(), top.indices.tolist())
        ]
    count = first.valid.shape[1] if first.valid is not None else _targets_of(first, row)
    valid = first.valid[row].tolist() if first.valid is not None else [True] * count
    indices = first.targets[row].reshape(-1).tolist() if first.targets is not None else [None] * count
    names = _per_row(first.labels, row, count)
    confidences = (
        first.target_probs[row].reshape(-1).tolist() if first.target_probs is not None else [None] * count
    )
    details = _per_row(first.details, row, count)
    several = len(by_method) > 1
    suffix = "." + options.format
    pictures: list[_Picture] = []
    regions = None
    if first.regions is not None:
        regions = first.regions[row].reshape(-1, *first.regions.shape[-2:])
    together = options.style == "boxes" and first.task == "detect" and any(valid)
    if together:  # every object in one picture per method; each object's record points at it
        shared = {}
        for method in by_method:
            output = namer.name(place, f"objects_{method}" if several else "objects", suffix)
            title = f"{method}" + ("  [random weights]" if loaded.random_weights else "")
            thumb = _thumb_path(out_dir, output) if report and method == next(iter(by_method)) else None
            pictures.append(_Picture(out_dir / output, title, -1, method, thumb=thumb))
            shared[method] = str(output)
    for k, index in enumerate(indices):
        if not valid[k]:  # padding: this photo has fewer labels or objects than the batch's most
            continue
        label = names[k] or (_label(loaded, index) if index is not None else "target")
        probability = confidences[k]
        title = label if probability is None else f"{label}  (p = {probability:.3f})"
        if loaded.random_weights:
            title = f"{title}  [random weights]"
        outputs, maps_paths, heat = {}, {}, {}
        object_box = (details[k] or {}).get("box")
        region = regions[k] if regions is not None else None
        for method in by_method:
            output = namer.name(place, f"{label}_{method}" if several else label, suffix)
            if together:
                outputs[method] = shared[method]
            else:
                first_method = method == next(iter(by_method))
                no_place = by_method[method].shows_no_place_at(row, k)
                pictures.append(
                    _Picture(
                        out_dir / output,
                        (f"{title} - {method}" if several else title)
                        + (f"  [{no_place}]" if no_place else ""),
                        k,
                        method,
                        box=object_box,
                        region=region,
                        thumb=_thumb_path(out_dir, output) if report and first_method else None,
                    )
                )
                outputs[method] = str(output)
            if options.save_maps:
                maps_paths[method] = str(output.with_suffix(".npy"))
            # named after the picture it would have been: unique in the run; none where a strip
            # photo's crop covers no pixel of its view (a record names only files that are written)
            if report is not None and assets.has_heat_layer(plan.size, plan.box):
                heat_path = PurePosixPath(assets.HEAT) / output.with_suffix(".jpg")
                report.heat.append((out_dir / heat_path, k, method))
                heat[method] = str(heat_path)
        centre = {m: _rounded(_per_row_value(plan.centres[m], k)) for m in by_method}
        record = {
            "file": str(outcome.path),
            "task": first.task,
            "label": label,
            "index": index,
            "probability": None if probability is None else round(probability, 6),
            "rank": k + 1,
            **(details[k] or {}),
            "layer": first.layer,
            "layout": first.layout,
            "method": ",".join(by_method),
            "model": loaded.name,
            "weights": loaded.weights,
            "empty": first.empty_at(row, k),
            "flat": first.flat_at(row, k),
            "centre_energy": centre if several else next(iter(centre.values())),
            "output": next(iter(outputs.values())),
            **seen,
        }
        if report is not None:
            record["thumb"] = (
                _thumb_path(out_dir, PurePosixPath(record["output"])).relative_to(out_dir).as_posix()
            )
            if heat:
                record["heat"] = heat if several else next(iter(heat.values()))
        if top5 is not None:
            record["top5"] = top5
        if several and not together:
            panel_path = namer.name(place, f"{label}_methods", suffix)
            pictures.append(_Picture(out_dir / panel_path, title, k))
            record["output"] = str(panel_path)
            record["outputs"] = outputs
            record["empty"] = {m: r.empty_at(row, k) for m, r in by_method.items()}
            record["flat"] = {m: r.flat_at(row, k) for m, r in by_method.items()}
        if options.save_maps:
            record["map"] = maps_paths if several else next(iter(maps_paths.values()))
        outcome.records.append(record)
    if options.tile:
        _plan_tiles(pictures, outcome.records, place, next(iter(by_method)))
    if not outcome.records:  # nothing passed the threshold, no object was detected: say so
        outcome.records.append(
            {
                "file": str(outcome.path),
                "task": first.task,
                "label": None,
                "output": None,
                "note": _nothing_note(first.task),
                "layer": first.layer,
                "method": ",".join(by_method),
                "model": loaded.name,
                "weights": loaded.weights,
                **({"top5": top5} if top5 is not None else {}),
                **seen,
            }
        )
    return pictures, report


def _thumb_path(out_dir: Path, output: PurePosixPath) -> Path:
    """Where the report's thumbnail of the picture `output` (relative to `out_dir`) goes."""
    return out_dir / assets.THUMBS / output.with_suffix(".jpg")


def _per_row_value(value: float | list[float], k: int) -> float:
    """Target k's value of one image's values: one value (one target) or K."""
    return value[k] if isinstance(value, list) else value


def _rounded(value: float) -> float:
    return round(float(value), 4)


def _objects(result, row: int) -> _Objects | None:
    """A detection result's objects in one photo, or None for other tasks."""
    if result.task != "detect" or result.details is None:
        return None
    details = result.details[row]
    boxes = torch.tensor([d.get("box", [0.0] * 4) if d else [0.0] * 4 for d in details], dtype=torch.float64)
    probs = result.target_probs[row].tolist() if result.target_probs is not None else [None] * len(details)
    valid = result.valid[row] if result.valid is not None else torch.ones(len(details), dtype=torch.bool)
    return _Objects(boxes.reshape(-1, 4), list(result.labels[row]), probs, valid.cpu())


def _plan_tiles(pictures: list[_Picture], records: list[dict], place: PurePath, method: str) -> None:
    """Mark the pictures that also make a contact sheet's tile: the first method's picture of each
    target, or of every object at once (--style boxes), captioned with the photo and what it shows."""
    rows = {record["rank"] - 1: row for row, record in enumerate(records)}
    for picture in pictures:
        if picture.method != method:
            continue
        shown = list(range(len(records))) if picture.k == -1 else [rows[picture.k]]
        what = ", ".join(_shown(records[row], method) for row in shown)
        picture.tile = (f"{place.as_posix()}\n{what}", shown)


def _shown(record: dict, method: str) -> str:
    """A record's label and probability as a tile shows them: ``tabby  0.731``, and ``[flat map]`` or
    ``[empty map]`` where `method`'s map shows no place."""
    probability = record["probability"]
    text = record["label"] if probability is None else f"{record['label']}  {probability:.3f}"
    empty, flat = (
        bool(value.get(method) if isinstance(value, dict) else value)
        for value in (record.get("empty"), record.get("flat"))
    )
    note = no_place(empty, flat)
    return f"{text}  [{note}]" if note else text


def _draw_and_write(
    photo: torch.Tensor,
    raws: dict[str, torch.Tensor],
    box,
    pictures: list[_Picture],
    options: RenderOptions,
    input_size: tuple[int, int] | None = None,
    objects: _Objects | None = None,
    report: _ReportPictures | None = None,
) -> list[Tile]:
    """Draw and write every picture of one photo (in a writer thread, while the model runs on); the
    tiles of a contact sheet are drawn again from the photo shrunk to their size, without a corner label.
    With `report`, also the photo at viewing size, each map's heat layer over it and each picture's
    thumbnail.
    """
    if photo.device.type == "cpu":
        photo = render.to_image(photo)  # Pillow draws on the CPU; see render.show_on_photo
    if report is not None:
        view, view_box = assets.view_photo(render.to_image(photo), box)
        assets.save_jpeg(view, report.view)
        for path, k, method in report.heat:
            layer = assets.heat_layer(raws[method][k], view_box, view.size, options.colormap)
            if layer is not None:
                assets.save_jpeg(layer, path)
    tiles: list[Tile] = []
    small = None  # the photo and its box shrunk to the tiles' size, made once
    on_device = isinstance(photo, torch.Tensor) and photo.device.type == "cuda" and options.format == "jpg"
    for picture in pictures:
        drawn = _draw(photo, raws, box, picture, options, input_size, objects, on_device=on_device)
        if options.save_maps and picture.method is not None and picture.k >= 0:
            _save_npy(raws[picture.method][picture.k].float().cpu().numpy(), picture.path.with_suffix(".npy"))
        render.save_image(drawn, picture.path)
        if picture.thumb is not None:
            assets.save_jpeg(assets.thumbnail(render.to_image(drawn)), picture.thumb)
        if picture.tile is not None and options.tile:
            small = small or render.shrink(render.to_image(photo), box, options.tile)
            tile = _draw(small[0], raws, small[1], picture, options, input_size, objects, tile=True)
            tiles.append(Tile(tile, *picture.tile))
    return tiles


TILE_STYLES = ("overlay", "classic", "heatmap")  # a panel's tile is its overlay


def _draw(
    photo,
    raws: dict[str, torch.Tensor],
    box,
    picture: _Picture,
    options: RenderOptions,
    input_size: tuple[int, int] | None,
    objects: _Objects | None,
    tile: bool = False,
    on_device: bool = False,
) -> Image.Image | torch.Tensor:
    """One picture: a detected object's has its box drawn, a segmentation target's the outline of its
    region; with --style boxes every object of the photo shares one picture. `on_device`: a plain
    picture (no box, no outline) comes back as a tensor on the photo's device, to be encoded there."""
    style = options.style
    if tile and style not in TILE_STYLES:
        style = "overlay"
    if picture.k == -1 and objects is not None and input_size is not None:
        return render.show_objects(
            photo,
            raws[picture.method or next(iter(raws))],
            box,
            input_size,
            objects.boxes,
            objects.names,
            objects.scores,
            valid=objects.valid,
            colormap=options.colormap,
            alpha=options.alpha,
            font=options.font,
            title=picture.title if options.label and not tile else "",
        )
    if picture.method is None:
        return render.methods_panel(
            photo,
            {method: maps[picture.k] for method, maps in raws.items()},
            box,
            picture.title,
            colormap=options.colormap,
            alpha=options.alpha,
            font=options.font,
        )
    plain = picture.region is None and picture.box is None and not tile
    drawing = render.draw_on_device if on_device and plain else render.show_on_photo
    drawn = drawing(
        photo,
        raws[picture.method][picture.k],
        box,
        style=style,
        colormap=options.colormap,
        alpha=options.alpha,
        title=picture.title,
        label=options.label and not tile,
        font=options.font,
    )
    if picture.region is not None and style != "panel":
        drawn = render.outline_region(drawn, picture.region, box)
    if picture.box is not None and input_size is not None and style != "panel":
        on_photo = render.photo_boxes(torch.tensor([picture.box]), box, input_size)
        drawn = render.draw_boxes(drawn, on_photo, [""], font=options.font)
    return drawn


def _nothing_note(task: str) -> str:
    what = {
        "multilabel": "no label reached the threshold",
        "detect": "no object was detected above the minimum score",
        "segment": "no class in the predicted mask",
    }
    return what.get(task, "nothing to explain") + ": no picture written"


def _targets_of(result, row: int) -> int:
    """How many targets a result explains per image (K), from its maps' shape."""
    return 1 if result.maps.dim() == 3 else result.maps.shape[1]


def _per_row(values: list | None, row: int, count: int) -> list:
    """A result's per-image list (one value, or K values) as K values for one image."""
    if values is None:
        return [None] * count
    item = values[row]
    return list(item) if isinstance(item, list) else [item]


def _per_target(raw: torch.Tensor) -> torch.Tensor:
    """A photo's raw maps as (K, h, w), one per target."""
    return raw.unsqueeze(0) if raw.dim() == 2 else raw


def _label(loaded: LoadedModel, index: int) -> str:
    if loaded.labels is not None and 0 <= index < len(loaded.labels):
        return loaded.labels[index]
    return f"class {index}"


def _save_npy(array: np.ndarray, path: Path) -> None:
    with atomic_open(path) as stream:
        np.save(stream, array)
