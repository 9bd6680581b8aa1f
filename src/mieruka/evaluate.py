"""Evaluate CAM methods on photos: maps per method and control, metrics per image, a table per method.

The pipeline `mieruka evaluate` runs, usable from Python with tensors in and tensors out:
:func:`evaluate_batch` scores one preprocessed batch; :func:`evaluate_files` reads photos (in
DataLoader workers, as ``explain`` does, one unreadable photo costing only its own result) and yields
per-photo values; :class:`Evaluation` (:mod:`mieruka.scoretable`) gathers them into the table (mean,
bootstrap interval and count per method and metric), mean deletion/insertion curves and sanity-check
similarities.

Each method explains the model's predicted class (or the class given); the random map and the
centre prior (:mod:`mieruka.metrics.controls`) are scored beside the methods, on the same targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import metric_names as defaults
from .boxes import Box, BoxesError, Truth, photo_truth
from .cam import CAM
from .images import CropBox
from .metric_names import DEFAULT_METRICS, METRICS, NEEDS_BOXES, parse_metrics
from .metrics import controls, faithfulness, localization, sanity
from .scoretable import CONTROL_ROWS, Evaluation, format_table

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "NEEDS_BOXES",
    "BatchScores",
    "Evaluation",
    "PhotoScores",
    "Settings",
    "evaluate_batch",
    "evaluate_files",
    "format_table",
    "parse_metrics",
]


@dataclass
class Settings:
    """How each metric is computed (see :mod:`mieruka.metrics`); the defaults are the library
    functions' and the command's, from :mod:`mieruka.metric_names`."""

    steps: int = defaults.STEPS  # deletion / insertion: steps, so steps + 1 points (a batched pass each)
    deletion_substrate: str = defaults.DELETION_SUBSTRATE
    insertion_substrate: str = defaults.INSERTION_SUBSTRATE
    road_fractions: tuple[float, ...] = defaults.ROAD_FRACTIONS
    tolerance: int = defaults.TOLERANCE  # pointing game, in photo pixels
    sanity_blocks: int = defaults.SANITY_BLOCKS  # sanity: the head alone, then the rest in this many groups
    batch_size: int = defaults.BATCH_SIZE  # perturbed inputs per forward pass
    # photo i's random map is drawn from seed + i; ROAD's noise and the sanity check's re-initialization
    # are seeded from it too, so the same seed gives the same numbers
    seed: int = defaults.SEED


@dataclass
class BatchScores:
    """Per-image values ``values[row][column]`` (N,), per row the curves (N, P) and sanity similarities
    (S, N) of one batch; rows are the methods and then the controls."""

    values: dict[str, dict[str, torch.Tensor]]
    targets: torch.Tensor  # (N,) the explained classes
    curves: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # metric -> row -> (N, P)
    fractions: dict[str, torch.Tensor] = field(default_factory=dict)  # metric -> (P,)
    randomization: dict[str, sanity.Randomization] = field(default_factory=dict)


def evaluate_batch(
    cam: CAM,
    inputs: torch.Tensor,
    methods: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    targets: torch.Tensor | int | None = None,
    *,
    settings: Settings | None = None,
    photos: Sequence[tuple[CropBox, tuple[int, int], Sequence[Box] | torch.Tensor | None]] | None = None,
    controls_seed: int | Sequence[int] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BatchScores:
    """Score the maps of `methods` and of the two controls on a preprocessed batch (N, C, H, W).

    `photos` (one per input: its crop box, its (width, height) and its ground truth: boxes, a mask
    (H, W) of the photo, or None) is needed for ``pointing``, which is computed in the photo's own
    pixels; a photo without boxes, or whose mask is empty, scores NaN there. The random control's map
    of input k is drawn from ``controls_seed + k`` (one seed per input given a sequence; by default
    ``settings.seed``), at the methods' grid.

    >>> scores = evaluate_batch(CAM(model), images, ["gradcam"], ["deletion"])  # doctest: +SKIP
    >>> scores.values["gradcam"]["deletion"]  # (N,) areas under the deletion curve  # doctest: +SKIP
    """
    settings = settings or Settings()
    model = cam.model
    if "pointing" in metrics and photos is None:
        raise ValueError("the pointing metric needs each photo's crop box, size and boxes (`photos`)")
    if photos is not None and len(photos) != len(inputs):
        raise ValueError(f"expected one entry of `photos` per input ({len(inputs)}), got {len(photos)}")
    say = progress or (lambda stage, done, total: None)
    if isinstance(targets, int):
        targets = torch.full((len(inputs),), targets, dtype=torch.long)
    results = cam.compare(inputs, list(methods), targets)
    first = next(iter(results.values()))
    if first.targets is None or first.maps.dim() != 3:
        raise ValueError("evaluate explains one class per image of a classifier; this model's output is not")
    chosen = first.targets.to(first.maps.device)
    size = tuple(first.maps.shape[-2:])
    maps = {name: result.maps for name, result in results.items()}
    # the layer's grid: the coarsest raw map (guided methods' are at the input's resolution)
    grid = min((tuple(r.raw.shape[-2:]) for r in results.values()), key=lambda g: g[0] * g[1])
    seed = settings.seed if controls_seed is None else controls_seed
    maps["random"] = controls.random_map(len(inputs), size, seed, chosen.device, grid=grid)
    maps["centre"] = controls.centre_prior(len(inputs), size, device=chosen.device)
    scores = BatchScores({row: {} for row in maps}, chosen.cpu())
    for metric in metrics:
        for row, row_maps in maps.items():
            stage = f"{metric} {row}"
            say(stage, 0, 1)
            _score(
                scores,
                metric,
                row,
                model,
                inputs,
                row_maps,
                chosen,
                settings,
                photos,
                (cam, first.layer),
                lambda done, total, stage=stage: say(stage, done, total),
            )
    return scores


def _score(
    scores, metric, row, model, inputs, maps, targets, settings: Settings, photos, cam, progress
) -> None:
    values = scores.values[row]
    if metric in ("deletion", "insertion"):
        curve = (faithfulness.deletion if metric == "deletion" else faithfulness.insertion)(
            model,
            inputs,
            maps,
            targets,
            steps=settings.steps,
            substrate=settings.deletion_substrate if metric == "deletion" else settings.insertion_substrate,
            batch_size=settings.batch_size,
            progress=progress,
        )
        values[metric] = curve.auc().cpu()
        scores.curves.setdefault(metric, {})[row] = curve.scores.cpu()
        scores.fractions[metric] = curve.fractions.cpu()
    elif metric == "road":
        generator = torch.Generator(device=inputs.device).manual_seed(settings.seed)
        result = faithfulness.road(
            model,
            inputs,
            maps,
            targets,
            fractions=settings.road_fractions,
            generator=generator,
            batch_size=settings.batch_size,
            progress=progress,
        )
        values["road"] = result.score().cpu()
    elif metric == "drop":
        original, masked = faithfulness.masked_confidence(
            model, inputs, maps, targets, batch_size=settings.batch_size
        )
        values["drop"] = faithfulness.average_drop(original, masked).cpu()
        values["increase"] = faithfulness.increase_in_confidence(original, masked).float().cpu()
    elif metric == "pointing":
        hits, energies = [], []
        for i, (box, photo_size, truth) in enumerate(photos):
            if truth is None or not (truth.any() if isinstance(truth, torch.Tensor) else len(truth)):
                hits.append(float("nan"))
                energies.append(float("nan"))
                continue
            hit, energy = localization.localize_in_photo(
                maps[i : i + 1], box, photo_size, truth, settings.tolerance
            )
            hits.append(float(hit[0]))
            energies.append(float(energy[0]))
        values["pointing"], values["energy"] = torch.tensor(hits), torch.tensor(energies)
    elif metric == "sanity":
        check = sanity.parameter_randomization(
            model,
            inputs,
            _explainer(*cam, row, maps, targets),
            blocks=sanity.randomizable_blocks(model, groups=settings.sanity_blocks),
            seed=settings.seed,
        )
        values["sanity"] = check.spearman_abs[0].cpu()  # the head alone randomized; NaN: no ranking
        scores.randomization[row] = check
    else:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def _explainer(cam: CAM, layers: str, row: str, maps: torch.Tensor, targets: torch.Tensor):
    """(model, inputs) -> maps of `row` for the fixed targets at the same layers (by name, so they are
    found in the randomized copy); a control ignores the model."""
    if row in CONTROL_ROWS:
        return lambda model, inputs: maps

    def explain(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        copy = CAM(
            model,
            layers,
            method=row,
            eigen_smooth=cam.eigen_smooth,
            score_channels=cam.score_channels,
            batch_size=cam.batch_size,
            layout=cam.layout.kind,  # the same request as the user's CAM
            prefix_tokens=cam.layout.prefix,
            grid=cam.layout.grid,
        )
        return copy(inputs, targets).maps

    return explain


# ---- photos ----------------------------------------------------------------------------------------


@dataclass
class PhotoScores:
    """One photo's outcome: its values per row and column, or an error."""

    path: Path
    place: PurePath
    values: dict[str, dict[str, float]] = field(default_factory=dict)
    target: int | None = None
    error: str | None = None


def evaluate_files(
    paths: Sequence[Path],
    loaded,
    cam: CAM,
    methods: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    target: int | None = None,
    truth: Sequence[Truth | None] | None = None,
    places: Sequence[PurePath] | None = None,
    settings: Settings | None = None,
    evaluation: Evaluation | None = None,
    batch_size: int = 16,
    workers: int | None = None,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int], None] | None = None,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> Iterator[PhotoScores]:
    """Read `paths`, evaluate them batch by batch and yield one :class:`PhotoScores` per photo, in
    order; curves and sanity similarities go into `evaluation` when given. `truth` holds each photo's
    ground truth for ``pointing`` (:func:`mieruka.boxes.ground_truth` gives it from the files): checked
    against the photo as it is read, a box or mask that does not fit makes that photo's error, and
    the others are still evaluated."""
    from .batch import _keep_list, _Photos, _same_size, say_warnings

    places = list(places) if places is not None else [PurePath(path.name) for path in paths]
    settings = settings or Settings()
    device = torch.device(device)
    if workers is None:
        workers = 0 if len(paths) <= 4 else 2
    loader = DataLoader(
        _Photos(paths, loaded.preprocess),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_keep_list,
        prefetch_factor=2 if workers else None,
    )
    for batch in loader:
        say_warnings(batch)
        outcomes = {item[0]: PhotoScores(paths[item[0]], places[item[0]], error=item[3]) for item in batch}
        photos = {}  # index -> (crop box, size, ground truth) of each photo read, whose truth fits
        for index, _, photo, error, _ in batch:
            if error is not None:
                continue
            size = (photo.shape[-1], photo.shape[-2])
            try:
                fitted = None
                if truth is not None and truth[index] is not None and "pointing" in metrics:
                    fitted = photo_truth(truth[index], size)
                photos[index] = (loaded.preprocess.crop_box(size), size, fitted)
            except BoxesError as problem:  # this photo's boxes or mask: it alone is not evaluated
                outcomes[index].error = str(problem)
        for good in _same_size([item for item in batch if item[0] in photos]):
            inputs = torch.stack([item[1] for item in good]).to(device)
            scores = evaluate_batch(
                cam,
                inputs,
                methods,
                metrics,
                target,
                settings=settings,
                photos=[photos[item[0]] for item in good],
                controls_seed=[settings.seed + index for index, *_ in good],  # photo i: seed + i
                progress=on_stage,
            )
            if evaluation is not None:
                evaluation.add(scores)
            for row, (index, *_) in enumerate(good):
                outcomes[index].target = int(scores.targets[row])
                outcomes[index].values = {
                    name: {column: float(value[row]) for column, value in columns.items()}
                    for name, columns in scores.values.items()
                }
        for index in sorted(outcomes):
            yield outcomes[index]
        if on_progress:
            on_progress(len(batch))
