"""`mieruka evaluate`: how faithful, how well placed and how sane each method's maps are on a folder."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .common import (
    EXIT_BAD_INPUT,
    Progress,
    blank_output,
    check_attention_methods,
    check_files_exist,
    dummy_input,
    find_photos,
    installed_version,
    load_from_flags,
    model_kwargs_record,
    no_classifier,
    parse_target,
    warn_if_random,
)


def run_evaluate(args) -> int:
    # flags, paths and the boxes file are checked before anything heavy is imported
    metrics, fractions = _check_evaluate_flags(args)
    from ..methods import parse_methods

    methods = [m.name for m in parse_methods(args.method)]
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{missing[0]}: no such file or folder{more}")
    check_files_exist(args)
    from ..images import lies_in

    out_root = Path(args.out).resolve()
    found = [
        (p, place)
        for p, place in find_photos(args.paths, quiet=getattr(args, "quiet", False))
        if not lies_in(p, out_root)
    ]
    if not found:
        raise ValueError(f"no images found in {', '.join(args.paths)} besides the output folder {args.out}")
    paths, places = [path for path, _ in found], [place for _, place in found]
    out_dir = Path(args.out)
    earlier = _earlier_evaluation(out_dir, args.overwrite)
    _check_evaluate_out(out_dir)
    truth, unmatched = None, False
    if args.boxes is not None or args.masks is not None:
        from ..boxes import NOT_GIVEN, ground_truth

        truth, notes = ground_truth(found, args.boxes, args.masks)  # a file that cannot be read: here
        for note in notes if "pointing" in metrics else ():
            unmatched = unmatched or NOT_GIVEN in note  # the others are scored; the run exits 2
            print(f"mieruka: {'error' if NOT_GIVEN in note else 'warning'}: {note}", file=sys.stderr)

    import torch

    from .. import scoreboard
    from ..cam import CAM
    from ..evaluate import Evaluation, Settings, evaluate_files

    loaded, device = load_from_flags(args)
    if loaded.task not in (None, "classify"):
        raise ValueError(f"evaluate scores classifiers' maps; {loaded.name} is a {loaded.task} model")
    cam = CAM(
        loaded.model, args.layer, method=methods[0], labels=loaded.labels, score_channels=args.score_channels
    )
    layer_names = ",".join(
        name for name, _ in cam.check(dummy_input(loaded, device))
    )  # a wrong --layer fails here
    output = blank_output(loaded, device)
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise ValueError(
            f"evaluate scores classifiers' maps; {loaded.name} does not output (N, classes) scores"
        )
    embedding = no_classifier(loaded, output)
    if embedding is not None:
        raise ValueError(
            f"evaluate scores classifiers' maps; {embedding}; give --num-classes N with --weights holding a head"
        )
    check_attention_methods(loaded.model, methods)
    target = parse_target(args.target, loaded.labels)
    settings = Settings(
        steps=args.steps,
        road_fractions=fractions,
        tolerance=args.tolerance,
        sanity_blocks=args.sanity_blocks,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    for path in earlier:  # every argument is checked: only now is the earlier evaluation replaced
        path.unlink(missing_ok=True)
    progress = Progress(len(paths), enabled=not args.quiet, show_photos=True)
    cam.progress = progress.stage
    evaluation, outcomes, failures = Evaluation(settings.seed), [], []
    started = time.perf_counter()
    for outcome in evaluate_files(
        paths,
        loaded,
        cam,
        methods,
        metrics,
        target=target,
        truth=truth,
        places=places,
        settings=settings,
        evaluation=evaluation,
        batch_size=16,
        device=device,
        on_progress=progress.advance,
        on_stage=progress.stage,
    ):
        outcomes.append(outcome)
        if outcome.error:
            failures.append(outcome.error)
            progress.clear()
            print(f"mieruka: error: {outcome.error}", file=sys.stderr)
    progress.clear()
    if evaluation.values and not args.quiet:  # shown before the files are written: never lost
        print(evaluation.text())
    written = [scoreboard.PER_IMAGE_FILE]
    try:
        scoreboard.write_jsonl(scoreboard.per_image_records(outcomes), out_dir / scoreboard.PER_IMAGE_FILE)
        if evaluation.values:
            document = scoreboard.metrics_document(evaluation, {})
            if "curves" in document:
                scoreboard.plot_curves(document, out_dir / scoreboard.CURVES_PLOT)
                written.append(scoreboard.CURVES_PLOT)
            if "sanity" in document:
                scoreboard.plot_sanity(document, out_dir / scoreboard.SANITY_PLOT)
                written.append(scoreboard.SANITY_PLOT)
            document["settings"] = _evaluate_settings(
                args, loaded, layer_names, methods, metrics, settings, paths, failures
            )
            document["files"] = [*written, scoreboard.METRICS_FILE]
            scoreboard.write_json(document, out_dir / scoreboard.METRICS_FILE)
    except OSError as error:  # the folder was checked up front; a disk can still fill up
        raise ValueError(
            f"--out {out_dir}: cannot write the results there ({error.strerror or error}): "
            "free some space or choose another --out"
        ) from None
    warn_if_random(loaded, "its maps")
    if not args.quiet:
        seconds = time.perf_counter() - started
        print(
            f"{len(paths) - len(failures)} of {len(paths)} image(s) evaluated at layer {layer_names} in {seconds:.1f} s"
            f" -> {out_dir}/ ({', '.join(written)}{', ' + scoreboard.METRICS_FILE if evaluation.values else ''})"
            + (f"; {len(failures)} failed:" if failures else "")
        )
        for failure in failures:
            print(f"  {' '.join(failure.split())}")
    return EXIT_BAD_INPUT if failures or unmatched else 0


def _check_evaluate_flags(args) -> tuple[list[str], tuple[float, ...]]:
    from ..metric_names import DEFAULT_METRICS, NEEDS_BOXES, parse_metrics

    truth = args.boxes is not None or args.masks is not None
    if args.metrics is None:
        metrics = [*DEFAULT_METRICS, *(NEEDS_BOXES if truth else ())]
    else:
        metrics = parse_metrics(args.metrics)
    needing = [m for m in metrics if m in NEEDS_BOXES]
    if needing and not truth:
        raise ValueError(
            f"--metrics {needing[0]} needs ground truth: pass --boxes FILE or --masks DIR (see --help)"
        )
    if args.masks is not None and not Path(args.masks).is_dir():
        raise ValueError(
            f"--masks {args.masks}: no such folder (a folder of PNG masks named like the photos)"
        )
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be 0 or more pixels, got {args.tolerance}")
    if args.sanity_blocks < 1:
        raise ValueError(f"--sanity-blocks must be at least 1, got {args.sanity_blocks}")
    if args.score_channels is not None and args.score_channels < 1:
        raise ValueError(f"--score-channels must be at least 1, got {args.score_channels}")
    try:
        fractions = tuple(float(p) for p in args.road_fractions.split(",") if p.strip())
    except ValueError:
        raise ValueError(
            f"--road-fractions takes shares such as 0.2,0.4, got {args.road_fractions!r}"
        ) from None
    if not fractions or not all(0 < p < 1 for p in fractions):
        raise ValueError(
            f"--road-fractions: each share must lie strictly between 0 and 1, got {args.road_fractions!r}"
        )
    return metrics, fractions


EVALUATE_FILES = ("per_image.jsonl", "metrics.json", "curves.png", "sanity.png")  # scoreboard's names


def _check_evaluate_out(out_dir: Path) -> None:
    """No folder stands where evaluate writes a file: found before any model work, not at the end."""
    for name in EVALUATE_FILES:
        if (out_dir / name).exists() and not (out_dir / name).is_file():
            raise ValueError(
                f"--out {out_dir}: {out_dir / name} is a folder, and evaluate writes a file there: "
                "move it away or choose another --out"
            )


def _earlier_evaluation(out_dir: Path, overwrite: bool) -> list[Path]:
    """The files an earlier evaluation in `out_dir` wrote (listed in its metrics.json): refused unless
    --overwrite; otherwise removed once every argument is checked."""
    METRICS_FILE = "metrics.json"  # scoreboard.METRICS_FILE, without importing torch

    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file, expected an output folder: choose another --out")
    document = out_dir / METRICS_FILE
    if not document.is_file():
        return []
    if not overwrite:
        raise ValueError(
            f"{out_dir} holds an earlier evaluation ({METRICS_FILE}): pass --overwrite to replace it, "
            "or choose another --out"
        )
    try:
        listed = json.loads(document.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        listed = []
    return [out_dir / Path(name).name for name in listed if isinstance(name, str)] + [document]


def _evaluate_settings(args, loaded, layer, methods, metrics, settings, paths, failures) -> dict:
    import dataclasses

    import torch
    import torchvision

    return {
        "model": loaded.name,
        "weights": loaded.weights,
        "num_classes": args.num_classes,
        "model_kwargs": model_kwargs_record(args.model_kwargs),
        "layer": layer,
        "methods": methods,
        "controls": ["random", "centre"],
        "metrics": metrics,
        "target": args.target,
        "score_channels": args.score_channels,  # Score-CAM approximated when set: its row differs
        "boxes": args.boxes and str(args.boxes),
        "masks": args.masks and str(args.masks),
        "photos": len(paths),
        "failed": len(failures),
        **dataclasses.asdict(settings),
        "confidence_interval": "percentile bootstrap, 95%, 1000 resamples of the photos",
        "versions": {
            "mieruka": installed_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
    }
