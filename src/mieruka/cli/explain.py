"""`mieruka explain`: photos or folders in, pictures (or maps) and results.jsonl out."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .common import (
    EXIT_BAD_INPUT,
    Progress,
    check_attention_methods,
    check_files_exist,
    class_token_note,
    dummy_input,
    find_photos,
    installed_version,
    interrupts_after,
    load_from_flags,
    model_kwargs_record,
    render_options,
    stop_on_sigterm,
    warn_if_random,
    where_maps_come_from,
)
from .on_ray import check_engine, explain_on_ray
from .parser import with_task_defaults
from .targets import refuse_options_of_other_tasks, task_of, task_target


def run_explain(args, parser: argparse.ArgumentParser) -> int:
    # Flags and paths are checked before anything heavy is imported: a typo costs a blink.
    args.task_options = with_task_defaults(args)  # which were given: those of another task are refused
    _check_explain_flags(args)
    from ..methods import METHODS, parse_methods

    methods = [m.name for m in parse_methods(args.method)]
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:  # reported before any model is loaded or any file is written
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{missing[0]}: no such file or folder{more}")
    check_files_exist(args)
    check_engine(args)

    from ..batch import explain_files
    from ..cam import CAM
    from ..fonts import check_font
    from ..images import lies_in
    from ..outputs import REPORT, RESULTS, find_earlier_run
    from ..render import colormap_table
    from ..runs import ResultsLog, resume, write_settings
    from ..shards import MapShards

    colormap_table(args.colormap)  # fail early on a wrong colormap name
    if args.font is not None:
        check_font(args.font, "--font")
    found = find_photos(args.paths, quiet=getattr(args, "quiet", False))
    out_root = Path(args.out).resolve()
    found = [(path, place) for path, place in found if not lies_in(path, out_root)]
    if not found:
        raise ValueError(f"no images found in {', '.join(args.paths)} besides the output folder {args.out}")
    paths, places = [path for path, _ in found], [place for _, place in found]
    several = len(paths) > 1 or any(Path(p).is_dir() for p in args.paths)
    report = args.report if args.report is not None else several and args.format != "npy"
    out_dir = Path(args.out)
    earlier = find_earlier_run(out_dir)
    if earlier is not None and not args.overwrite and not args.resume and not earlier.replaceable:
        raise ValueError(
            f"{out_dir} holds the results of an earlier run ({RESULTS}): "
            + ("pass --resume to finish that run, " if args.engine != "ray" else "")
            + "--overwrite to replace it, or choose another --out"
        )

    loaded, device = load_from_flags(args)
    check_attention_methods(loaded.model, methods)  # a model without attention: name --method first
    if args.layer is not None and all(METHODS[m].kind == "attention" for m in methods):
        raise ValueError(
            f"--layer names the layer a CAM reads; {', '.join(methods)} "
            f"{'reads' if len(methods) == 1 else 'read'} the attention of every block, "
            f"so drop --layer or add a CAM method (--method gradcam,{methods[0]})"
        )
    if args.eigen_smooth and all(METHODS[m].kind == "attention" for m in methods):
        raise ValueError(
            f"--eigen-smooth takes the first principal component of a CAM's weighted channels; "
            f"{', '.join(methods)} weighs none: drop --eigen-smooth or add a CAM method"
        )
    if args.method.strip().lower() == "all" and _has_attention(loaded.model):
        methods += [name for name, method in METHODS.items() if method.kind == "attention"]
    cam = CAM(
        loaded.model,
        args.layer,
        method=methods[0],
        labels=loaded.labels,
        eigen_smooth=args.eigen_smooth,
        aug_smooth=args.aug_smooth,
        score_channels=args.score_channels,
        layout=None if args.layout == "auto" else args.layout,
        prefix_tokens=args.prefix_tokens,
        grid=args.grid,
    )
    task = task_of(args, loaded, device)  # an output that is no task's is named before the layer is sought
    # a wrong --layer fails here, before any file is read
    layer_names = ",".join(name for name, _ in cam.check(dummy_input(loaded, device)))
    if args.style == "boxes" and task != "detect":
        raise ValueError(f"--style boxes draws a detector's objects; this model's task is {task}")
    target = task_target(args, task, loaded, device)
    classes = len(loaded.labels) if loaded.labels else None
    if task == "classify" and classes is not None and args.top_k > classes:  # before the folder is touched
        raise ValueError(f"--top-k {args.top_k}: the model has {classes} classes; ask for {classes} at most")
    if args.labels is not None:
        _warn_repeated_names(args.labels, loaded.labels)
    if loaded.labels and args.format != "npy":  # every label's missing characters named in one warning
        from ..fonts import choose, warn_missing

        warn_missing(choose("\n".join(map(str, loaded.labels)), args.font))
    if args.format == "npy" and task == "detect":
        raise ValueError(
            "--format npy stacks maps of one size; a detector's follow each photo's size: use png or jpg"
        )
    note = class_token_note(loaded, methods, device) if task == "classify" else None  # said at the end
    if args.engine == "ray":  # the same run on Ray Data's actors; records and files written here
        status = explain_on_ray(args, loaded, earlier, found, methods, task, target, layer_names, report)
        if report:  # from the records and pictures: thumbnails made here, no heat layers
            from ..report import build_report

            build_report(out_dir, font=args.font)
        _say(note)
        return status
    settings = _explain_settings(args, loaded, layer_names, methods, task)
    resumed = resume(out_dir, settings) if args.resume else None  # refused here if the settings differ
    if resumed is None or not resumed.records:
        if earlier is not None:  # every argument is checked: only now is the earlier run replaced
            earlier.remove()
        write_settings(out_dir, settings, installed_version())
    done = len(paths)
    if resumed is not None:
        todo = [i for i, path in enumerate(paths) if os.path.abspath(path) not in resumed.done]
        paths, places = [paths[i] for i in todo], [places[i] for i in todo]
    done -= len(paths)
    progress = Progress(len(paths), enabled=not args.quiet and not args.json, show_photos=len(paths) > 4)
    cam.progress = progress.stage
    failures: list[str] = []
    sheet = _contact_sheet(args, out_dir, loaded, methods, layer_names)
    started = time.perf_counter()
    shards = None
    if args.format == "npy":
        shards = MapShards(out_dir, methods, size=args.shard_size, first=resumed.next_shard if resumed else 0)
    log = ResultsLog(out_dir / RESULTS, fresh=resumed is None or not resumed.records)
    outcomes = explain_files(
        paths,
        loaded,
        cam,
        out_dir,
        methods=methods,
        targets=target,
        top_k=args.top_k if task == "classify" else None,
        options=render_options(args, report, tile=sheet.layout.tile if sheet is not None else None),
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        on_progress=progress.advance,
        places=places,
        shards=shards,
        taken=resumed.names if resumed else (),
    )
    try:
        with log, stop_on_sigterm():
            sheet_error = _explain_into(args, log, failures, outcomes, progress, out_dir, sheet)
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the records written name the open page, so write it
        if sheet is not None:
            _close_sheet(sheet, None)
        raise
    progress.clear()
    if sheet is not None:
        sheet_error = _close_sheet(sheet, sheet_error)
    if report:
        from ..report import build_report

        build_report(out_dir, font=args.font)
    _say(note)
    warn_if_random(loaded)
    if not args.quiet and not args.json:
        seconds = time.perf_counter() - started
        print(
            f"{len(paths) - len(failures)} of {len(paths)} image(s) explained {where_maps_come_from(methods, layer_names)}"
            f" in {seconds:.1f} s -> {out_dir}/ ({RESULTS}{', ' + REPORT if report else ''}{_pages_note(sheet)})"
            + (f"; {done} done before, skipped" if done else "")
            + (f"; {len(failures)} failed:" if failures else "")
        )
        for failure in failures:
            print(f"  {' '.join(failure.split())}")
    return EXIT_BAD_INPUT if failures or sheet_error else 0


def _explain_into(args, log, failures: list[str], outcomes, progress, out_dir: Path, sheet) -> str | None:
    """Append each photo's records to results.jsonl as it is done (its files are in place by then),
    its tiles to the contact sheet first (a record names its page). The sheet's error, if any."""
    sheet_error = None
    outcomes = iter(outcomes)
    stop: KeyboardInterrupt | None = None
    while True:
        try:  # an interruption that came while a photo was taken goes to the run, which hands back
            # the pictures it had drawn (listed below) before it stops
            outcome = next(outcomes) if stop is None else outcomes.throw(stop)
        except StopIteration:
            return sheet_error
        taken = False
        try:
            stop = None
            with interrupts_after():
                sheet_error = _take(args, log, failures, outcome, progress, out_dir, sheet, sheet_error)
                taken = True
        except KeyboardInterrupt as interruption:
            stop = interruption
            if not taken:  # it came before the hold began: this photo is logged all the same
                with interrupts_after():
                    sheet_error = _take(args, log, failures, outcome, progress, out_dir, sheet, sheet_error)


def _take(args, log, failures: list[str], outcome, progress, out_dir: Path, sheet, sheet_error):
    """One photo's outcome into results.jsonl, the contact sheet and the terminal; the sheet's error."""
    if outcome.error:
        failures.append(outcome.error)
        progress.clear()
        print(f"mieruka: error: {outcome.error}", file=sys.stderr)
        log.append([{"file": str(outcome.path), "error": outcome.error}])
        return sheet_error
    if sheet is not None and sheet_error is None:
        sheet_error = _add_tiles(sheet, outcome)
    log.append(outcome.records)
    if args.json:
        for record in outcome.records:
            print(json.dumps(record, ensure_ascii=False))
    elif not args.quiet:
        progress.clear()
        _print_summary(outcome.records, out_dir)
    return sheet_error


def _explain_settings(args, loaded, layer_names: str, methods: list[str], task: str) -> dict:
    """What shapes a folder run's outputs, keyed by flag name (run.json): a resume must match it."""
    from ..runs import file_identity

    weights = args.weights
    named = weights is not None and not Path(weights).is_file()
    return {
        "model": loaded.name,
        "weights": loaded.weights if weights is None or named else file_identity(weights),
        "num-classes": args.num_classes,
        "model-kwargs": model_kwargs_record(args.model_kwargs) or None,  # None: as runs before the flag
        "labels": file_identity(args.labels),
        "method": methods,
        "layer": layer_names,
        "layout": args.layout,
        "prefix-tokens": args.prefix_tokens,
        "grid": list(args.grid) if isinstance(args.grid, tuple) else args.grid,
        "eigen-smooth": args.eigen_smooth,
        "aug-smooth": args.aug_smooth,
        "score-channels": args.score_channels,
        "task": task,
        "target": args.target,
        "top-k": args.top_k,
        "threshold": args.threshold,
        "direction": args.direction,
        "reference": file_identity(args.reference),
        "min-score": args.min_score,
        "max-objects": args.max_objects,
        "format": args.format,
        "shard-size": args.shard_size if args.format == "npy" else None,
        "style": args.style,
        "colormap": args.colormap,
        "alpha": args.alpha,
        "no-label": not args.label,
        "font": file_identity(args.font),
        "save-maps": args.save_maps,
    }


def _check_explain_flags(args) -> None:
    if args.report and args.format == "npy":
        raise ValueError("--report shows the pictures and --format npy writes none: leave out one of them")
    if args.resume and args.overwrite:
        raise ValueError(
            "--resume and --overwrite exclude each other: finish the run in --out, or replace it"
        )
    if args.shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {args.shard_size}")
    if args.format == "npy" and args.save_maps:
        raise ValueError("--format npy already writes every map (in shards): leave out --save-maps")
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be 0 (decode in the main process) or more, got {args.workers}")
    if args.target is not None and args.top_k > 1:
        raise ValueError("--target and --top-k exclude each other: explain one class, or the K best")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold is a probability between 0 and 1, got {args.threshold}")
    if not 0.0 <= args.min_score <= 1.0:
        raise ValueError(f"--min-score is a score between 0 and 1, got {args.min_score}")
    if args.max_objects is not None and args.max_objects < 1:
        raise ValueError(f"--max-objects must be at least 1, got {args.max_objects}")
    if args.task == "embed" and args.reference is None:
        raise ValueError("--task embed explains the similarity to a reference: pass --reference IMAGE|VECTOR")
    if args.task != "auto":  # known now: an option of another task is refused before the model loads
        refuse_options_of_other_tasks(args, args.task)
    if args.style == "boxes" and args.task not in ("auto", "detect"):
        raise ValueError(f"--style boxes draws detections; it does not apply to --task {args.task}")
    if args.score_channels is not None and args.score_channels < 1:
        raise ValueError(f"--score-channels must be at least 1, got {args.score_channels}")
    if args.sheet_columns is not None:
        if not 1 <= args.sheet_columns <= 32:
            raise ValueError(f"--sheet-columns must be between 1 and 32, got {args.sheet_columns}")
        args.sheet = True
    if args.sheet and args.format == "npy":
        raise ValueError("--sheet draws pictures and --format npy writes maps only: choose one")
    if args.sheet and args.resume:
        raise ValueError(
            "--sheet with --resume would page only this run's photos over the earlier pages: "
            "resume without --sheet, or start a new --out with it"
        )
    if args.num_classes is not None and args.num_classes < 0:
        raise ValueError(
            f"--num-classes must be 0 or more (0: timm models without a head), got {args.num_classes}"
        )
    if args.prefix_tokens is not None and args.prefix_tokens < 0:
        raise ValueError(f"--prefix-tokens must be 0 or more, got {args.prefix_tokens}")
    if args.grid is not None:
        parts = args.grid.lower().replace(",", "x").split("x")
        if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
            raise ValueError(f"--grid takes rows x columns such as 14x14, got {args.grid!r}")
        args.grid = (int(parts[0]), int(parts[1]))
    if args.layout in ("channels-first", "channels-last") and (args.prefix_tokens, args.grid) != (None, None):
        raise ValueError(f"--prefix-tokens and --grid describe tokens, not --layout {args.layout}")


def _warn_repeated_names(path: str, labels) -> None:
    """One line when a labels file gives two classes the same name: its pictures and summary cannot
    tell them apart, and --target cannot name them."""
    from ..labels import repeated_names

    repeats = repeated_names(labels)
    if repeats:
        shown = "; ".join(
            f"{labels[group[0]]!r} for classes {', '.join(map(str, group))}" for group in repeats[:3]
        )
        more = f" (and {len(repeats) - 3} more)" if len(repeats) > 3 else ""
        print(
            f"mieruka: warning: --labels {path} repeats names: {shown}{more}; their pictures and the summary "
            "cannot tell those classes apart (give --target by number)",
            file=sys.stderr,
        )


def _has_attention(model) -> bool:
    """Whether the attention methods (rollout, gae) can run on this model."""
    from ..methods.attention import AttentionError, vision_transformer

    try:
        vision_transformer(model)
    except AttentionError:
        return False
    return True


def _contact_sheet(args, out_dir: Path, loaded, methods: list[str], layer: str):
    """The contact sheet --sheet asks for, headed with the model, methods and layer; or None."""
    if not args.sheet:
        return None
    from ..sheet import COLUMNS, ContactSheet

    untrained = "  [random weights]" if loaded.random_weights else ""
    return ContactSheet(
        out_dir,
        suffix="." + args.format,
        columns=args.sheet_columns or COLUMNS,
        title=f"{loaded.name} · {', '.join(methods)} · {where_maps_come_from(methods, layer)}{untrained}",
        font=args.font,
    )


def _add_tiles(sheet, outcome) -> str | None:
    """Put a photo's tiles on the contact sheet; each record it shows names its page. An error that
    stops the sheet is reported once and returned; the pictures and results.jsonl go on."""
    try:
        for tile in outcome.tiles:
            page = sheet.add(tile.picture, tile.caption)
            for row in tile.records:
                outcome.records[row]["sheet"] = page.name
    except OSError as error:
        return _sheet_failed(error)
    return None


def _close_sheet(sheet, error: str | None) -> str | None:
    """Write the last page unless the sheet failed before. The error, if any (the records, already
    written as each photo finished, then name a page that is missing; the error says so)."""
    if error is None:
        try:
            sheet.close()
        except OSError as failure:
            error = _sheet_failed(failure)
    return error


def _sheet_failed(error: OSError) -> str:
    reason = error.strerror or error
    message = f"cannot write the contact sheet ({reason}): the pictures are written, the sheet is not"
    print(f"mieruka: error: {message}", file=sys.stderr)
    return message


def _say(note: str | None) -> None:
    """A note on how to read this run's maps, on stderr after the run (not when a flag was refused)."""
    if note is not None:
        print(note, file=sys.stderr)


def _pages_note(sheet) -> str:
    """`, contact sheet: sheet-001.png to sheet-004.png` for the closing summary."""
    if sheet is None or not sheet.pages:
        return ""
    first, last = sheet.pages[0].name, sheet.pages[-1].name
    return f", contact sheet: {first}" + (f" to {last}" if last != first else "")


_MEASURES = (  # what each task's record says of its target, as the summary shows it
    ("value", "value {:.4g}"),
    ("similarity", "similarity {:.3f}"),
    ("score", "score {:.3f}"),
    ("area", "area {:,} px"),
)


def _shown_target(record: dict) -> str:
    """``class 4 (down), value 0.8``, ``cow, area 1,204 px``, ``similarity 0.873``: a target's label
    and the number behind it (a class of the top 5 has its probability on the line above)."""
    label = record["label"]
    for key, shown in _MEASURES:
        if record.get(key) is not None:
            number = shown.format(record[key])
            return number if label == key else f"{label}, {number}"
    if record.get("probability") is not None and "top5" not in record:
        return f"{label}, p {record['probability']:.3f}"
    return label


def _flagged(flag: bool | dict[str, bool]) -> str | None:
    """Where a record's flag (empty, flat) is raised: '' for its one method, the methods' names where
    several ran and some raise it, None where none does."""
    if isinstance(flag, bool):
        return "" if flag else None
    raised = [method for method, value in flag.items() if value]
    return ", ".join(raised) if raised else None


def _print_summary(records: list[dict], out_dir: Path) -> None:
    """The photo's top classes, then each picture as a path from here (records hold it from `out_dir`)."""
    first = records[0]
    others = ", ".join(f"{t['label']} {t['probability']:.1%}" for t in first.get("top5", [])[:5])
    untrained = "  [random weights]" if first.get("weights") == "random" else ""
    print(f"{first['file']}: {others or first['task']}{untrained}")
    for record in records:
        if "shard" in record:
            shard = (
                record["shard"] if isinstance(record["shard"], str) else ", ".join(record["shard"].values())
            )
            print(f"  {record['label']} -> {out_dir / shard} row {record['row']}")
            continue
        if record.get("output") is None:
            print(f"  {record.get('note', 'nothing explained')}")
            continue
        empty, flat = (_flagged(record.get(key, False)) for key in ("empty", "flat"))
        note = (
            f" ({empty + ': ' if empty else ''}empty map: no positive evidence)" if empty is not None else ""
        )
        if flat is not None and empty is None:
            note = (
                f" ({flat + ': ' if flat else ''}flat map: the same value everywhere, so it shows no place)"
            )
        if record.get("area") == 0:  # a segment asked for by name that the model does not predict here
            note = " (empty map: the model predicts no pixel of it)"
        print(f"  {_shown_target(record)} -> {out_dir / record['output']}{note}")
