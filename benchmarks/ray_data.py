"""The Ray Data adapter beside the local engine: the same photos, the same model, the same files written.

(Not named ray.py: run as a script, that name would hide the ray package from its own import.)

Makes ~200 small JPEG photos once (`benchmarks/.cache/ray-photos/`) and a seeded random resnet18, then
times, in interleaved rounds, the local engine (:func:`mieruka.batch.explain_files`: overlays and
maps) and :func:`mieruka.scale.ray.explain_dataset` + :func:`~mieruka.scale.ray.write_folder` (the
same overlays and maps) with 1 and 2 actors on a local Ray. A Ray run's time includes starting its
actors and building their models; starting Ray itself is timed apart. Overhead per photo is
(Ray run - local run) / photos.

    python benchmarks/ray_data.py                   # writes benchmarks/results/ray.md
    python benchmarks/ray_data.py --photos 50 --rounds 1 --note "a quick look"
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"


def make_photos(count: int) -> list[Path]:
    folder = CACHE / "ray-photos"
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"photo{i:04d}.jpg"
        if not path.exists():
            height, width = int(generator.integers(96, 200)), int(generator.integers(96, 200))
            pixels = generator.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def make_weights() -> Path:
    path = CACHE / "ray-resnet18.pth"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def run_local(paths: list[Path], weights: Path, out: Path, batch_size: int) -> float:
    from mieruka import CAM, load_model
    from mieruka.batch import RenderOptions, explain_files

    started = time.perf_counter()
    loaded = load_model("resnet18", str(weights))
    options = RenderOptions(save_maps=True)
    for outcome in explain_files(
        paths, loaded, CAM(loaded.model), out, options=options, batch_size=batch_size
    ):
        if outcome.error:
            raise RuntimeError(outcome.error)
    return time.perf_counter() - started


def run_ray(paths: list[Path], weights: Path, out: Path, batch_size: int, workers: int) -> float:
    import ray

    from mieruka.batch import RenderOptions
    from mieruka.scale.ray import ModelSpec, explain_dataset, write_folder

    started = time.perf_counter()
    rows = explain_dataset(
        ray.data.from_items([{"path": str(path)} for path in paths]),
        ModelSpec("resnet18", str(weights), device="cpu"),
        render=RenderOptions(),
        batch_size=batch_size,
        concurrency=workers,
    )
    records = write_folder(rows, out)
    if any("error" in record for record in records):
        raise RuntimeError(next(record["error"] for record in records if "error" in record))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--note", default="", help="a line about the machine's state, for the results")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ray.md")
    args = parser.parse_args()

    from mieruka.scale.ray import connect

    paths, weights = make_photos(args.photos), make_weights()
    started = time.perf_counter()
    connect(num_cpus=os.cpu_count())
    start_up = time.perf_counter() - started
    import ray

    engines = {
        "local engine (explain_files)": lambda out: run_local(paths, weights, out, args.batch_size),
        "Ray, 1 worker": lambda out: run_ray(paths, weights, out, args.batch_size, 1),
        "Ray, 2 workers": lambda out: run_ray(paths, weights, out, args.batch_size, 2),
    }
    times: dict[str, list[float]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, engine in engines.items():
                out = Path(scratch) / f"{round_}-{len(times[name])}"
                times[name].append(engine(out))
                shutil.rmtree(out)
                print(f"round {round_ + 1}: {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    ray.shutdown()

    local = statistics.median(times["local engine (explain_files)"])
    lines = [
        "# Ray Data adapter beside the local engine",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}; "
        f"{args.photos} JPEG photos 96-200 px, resnet18 (random, seeded) Grad-CAM at layer4, "
        f"batch {args.batch_size}, overlays (PNG) and maps (.npy) written; median of {args.rounds} "
        "round(s), engines interleaved; `python benchmarks/ray_data.py`.",
        "",
        "| engine | run (s) | per photo (ms) | overhead per photo vs local (ms) |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        overhead = "-" if name.startswith("local") else f"{(median - local) / args.photos * 1000:+.1f}"
        lines.append(f"| {name} | {median:.1f} | {median / args.photos * 1000:.1f} | {overhead} |")
    lines += [
        "",
        f"Starting the local Ray itself (`connect()`, once per command) took {start_up:.1f} s, not counted "
        "above. A Ray run counts its actors' start and model build. The local engine's torch uses every "
        "core; each Ray actor has one CPU (Ray sets its threads to 1), so 2 workers on 2 cores is the "
        "fair comparison.",
    ]
    if args.note:
        lines += ["", f"Note: {args.note}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
