"""`mieruka explain --engine ray`: the same folder run on a Ray cluster (or local Ray workers)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .common import (
    EXIT_BAD_INPUT,
    Progress,
    model_kwargs_from_flag,
    render_options,
    stop_on_sigterm,
    warn_if_random,
)


def check_engine(args) -> None:
    """--engine ray's flags, its extra, and an --address that answers: before any model loads."""
    if args.engine != "ray":
        if args.address is not None or args.num_workers is not None:
            raise ValueError("--address and --num-workers are for --engine ray")
        return
    if args.num_workers is not None and args.num_workers < 1:
        raise ValueError(f"--num-workers must be at least 1, got {args.num_workers}")
    unsupported = [flag for flag, given in (("--resume", args.resume), ("--sheet", args.sheet)) if given]
    if args.format == "npy":
        unsupported.append("--format npy")
    if unsupported:
        raise ValueError(
            f"--engine ray does not take {' or '.join(unsupported)} yet: leave it out, or use the local engine"
        )
    import importlib

    try:
        importlib.import_module("ray.data")
    except ImportError:
        raise ValueError('--engine ray needs Ray: pip install "mieruka[ray]"') from None
    from ..scale.ray import check_address

    if args.address and args.address != "auto":
        check_address(args.address)


def explain_on_ray(args, loaded, earlier, found, methods, task, target, layer_names, report: bool) -> int:
    """--engine ray: the photos through mieruka.scale.ray's actors, each building the model the flags
    name; the rows come back here and are written into --out as a local run writes them."""
    if task != "classify":
        raise ValueError(
            f"--engine ray explains classifiers; this model's task is {task}: leave out --engine"
        )
    import ray

    from ..images import resolved
    from ..outputs import REPORT
    from ..scale.ray import FolderWriter, ModelSpec, connect, explain_dataset

    def absolute(value):  # the actors do not run in this folder
        return str(Path(value).resolve()) if value is not None and Path(value).exists() else value

    spec = ModelSpec(
        args.model,
        absolute(args.weights),
        num_classes=args.num_classes,
        labels=tuple(loaded.labels) if loaded.labels is not None else None,
        trust_checkpoint=args.trust_checkpoint,
        random_weights=args.random_weights,
        device=args.device,
        model_kwargs=tuple(model_kwargs_from_flag(args.model_kwargs).items()),
    )
    pictures = args.format in ("png", "jpg")  # anything else writes maps only
    options = render_options(args, report, save_maps=False, font=absolute(args.font))  # maps: the writer's
    workers = args.num_workers or 1
    out_dir = Path(args.out)
    if earlier is not None:  # every argument is checked: only now is the earlier run replaced
        earlier.remove()
    names = {str(resolved(path)): str(path) for path, _ in found}
    places = {str(resolved(path)): place for path, place in found}
    connect(args.address, num_cpus=workers if not args.address and workers > (os.cpu_count() or 1) else None)
    try:
        with stop_on_sigterm():  # a scheduler's SIGTERM stops the run as Ctrl-C does
            rows = explain_dataset(
                ray.data.from_items([{"path": path} for path in names]),
                spec,
                methods=methods,
                layer=layer_names,
                target=target,
                top_k=args.top_k if task == "classify" else 1,  # multilabel: in its target
                cam_options={
                    "eigen_smooth": args.eigen_smooth,
                    "aug_smooth": args.aug_smooth,
                    "score_channels": args.score_channels,
                    "layout": None if args.layout in (None, "auto") else args.layout,
                    "prefix_tokens": args.prefix_tokens,
                    "grid": args.grid,
                },
                render=options if pictures else None,
                batch_size=args.batch_size,
                concurrency=workers,
                num_gpus=1 if args.device == "cuda" else 0,
            )
            writer = FolderWriter(
                out_dir, places=places, names=names, save_maps=args.save_maps or not pictures,
                several_methods=len(methods) > 1,
            )  # fmt: skip
            progress = Progress(len(names), enabled=not args.quiet and not args.json)
            failures, done, started = [], set(), time.perf_counter()
            order = [str(path) for path, _ in found]
            try:
                for row in rows.iter_rows():
                    record = writer.add(row)
                    if row["path"] not in done:
                        done.add(row["path"])
                        progress.advance(1)
                    if "error" in record:
                        failures.append(record["error"])
                        progress.clear()
                        print(f"mieruka: error: {record['error']}", file=sys.stderr)
                    elif args.json:
                        print(json.dumps(record, ensure_ascii=False))
            except KeyboardInterrupt:  # what was written is listed, so --overwrite can replace it
                progress.clear()
                writer.close(order=order)
                raise
            progress.clear()
            results = writer.close(order=order)
    finally:
        ray.shutdown()
    warn_if_random(loaded)
    if not args.quiet and not args.json:
        print(
            f"{len(names) - len(failures)} of {len(names)} image(s) explained at layer {layer_names} on Ray "
            f"({workers} worker(s)) in {time.perf_counter() - started:.1f} s -> {out_dir}/ "
            f"({results.name}{', ' + REPORT if report else ''})"
            + (f"; {len(failures)} failed:" if failures else "")
        )
        for failure in failures:
            print(f"  {' '.join(failure.split())}")
    return EXIT_BAD_INPUT if failures else 0
