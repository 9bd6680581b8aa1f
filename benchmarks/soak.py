"""Soak: memory over many Grad-CAM calls, and a maps-only folder run against bare inference.

1. `--calls` Grad-CAM calls on resnet18 (random weights), a batch of 8 each, `--size` pixels square
   (224 px: about 0.4 s a call on 2 CPU cores, over an hour for 10,000): the resident memory's peak
   after a warm-up, minus the memory at the end of the warm-up (target: < 50 MB for 10,000 calls).
2. `--photos` generated JPEGs (640x480) explained by `mieruka explain --format npy` (the command's own
   code, in this process) against a bare loop over the same photos: decode + preprocess in the same
   DataLoader workers, the same batches, the model's forward in inference mode (target: <= 1.2x).
   Both in the same run, interleaved, so a busy machine slows them alike.

    python benchmarks/soak.py                          # 10,000 calls, 2,000 photos: a quiet machine
    python benchmarks/soak.py --calls 1000 --photos 300 --note "shortened: a busy 2-core machine"
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    """This process's resident memory now (Linux: /proc/self/statm)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak_calls(calls: int, warmup: int, batch: int, device: torch.device, size: int = 224) -> dict:
    from mieruka import CAM, load_model

    loaded = load_model("resnet18", random_weights=True, device=device)
    cam = CAM(loaded.model, "layer4")
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(batch, 3, size, size, generator=generator).to(device) for _ in range(4)]
    for i in range(warmup):
        cam(inputs[i % 4])
    base = peak = rss_mb()
    started = time.perf_counter()
    for i in range(calls):
        result = cam(inputs[i % 4])
        if i % 10 == 0:
            peak = max(peak, rss_mb())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    del result
    return {"calls": calls, "base": base, "peak": peak, "growth": peak - base, "seconds": seconds}


def make_photos(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(count):  # smooth shapes over noise: JPEG sizes like photos', not like pure noise
        cx, cy = rng.integers(100, 540), rng.integers(100, 380)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 60.0**2))[..., None]
        colour = rng.integers(0, 256, 3)
        noise = rng.normal(0, 12, (480, 640, 3))
        pixels = np.clip(90 + blob * (colour - 90) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i:05d}.jpg", quality=90)


def bare_inference(folder: Path, batch: int, workers: int, device: torch.device) -> float:
    """Decode + preprocess (the same workers and batches as mieruka) + forward in inference mode."""
    from torch.utils.data import DataLoader

    from mieruka import load_model
    from mieruka.batch import _keep_list, _Photos

    loaded = load_model("resnet18", random_weights=True, device=device)
    paths = sorted(folder.glob("*.jpg"))
    started = time.perf_counter()
    loader = DataLoader(
        _Photos(paths, loaded.preprocess, keep_photo=False),
        batch_size=batch,
        num_workers=workers,
        collate_fn=_keep_list,
        prefetch_factor=2 if workers else None,
    )
    with torch.inference_mode():
        for items in loader:
            inputs = torch.stack([item[1] for item in items]).to(device)
            loaded.model(inputs).argmax(1).tolist()  # the predictions come back, as a real loop needs
    return time.perf_counter() - started


def mieruka_run(
    folder: Path, out: Path, batch: int, workers: int, device: torch.device, format: str = "npy"
) -> float:
    """`mieruka explain FOLDER --format FORMAT` in this process, model loading included."""
    from mieruka.cli import main

    args = ["explain", str(folder), "--out", str(out), "--overwrite", "--model", "resnet18", "--no-report"]
    args += ["--random-weights", "--format", format, "--batch-size", str(batch), "--workers", str(workers)]
    args += ["--device", device.type, "--quiet"]
    started = time.perf_counter()
    status = main(args)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"mieruka explain failed ({status})")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--photos", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--size",
        type=int,
        default=224,
        help="input side of the calls (what a call keeps does not depend on it)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="folder runs of each kind, interleaved")
    parser.add_argument(
        "--formats", default="npy", help="the folder run's --format(s), comma-separated (npy, jpg, png)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--note", default="", help="a line for the results file (e.g. why shortened)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "soak.md")
    args = parser.parse_args()
    device = torch.device(args.device)

    memory = soak_calls(args.calls, args.warmup, args.batch_size, device, args.size)
    print(f"{memory['calls']} calls: RSS {memory['base']:.0f} MB -> peak {memory['peak']:.0f} MB "
          f"(+{memory['growth']:.1f} MB) in {memory['seconds']:.0f} s", flush=True)  # fmt: skip

    formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    bare, ours = [], {name: [] for name in formats}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        folder.mkdir()
        make_photos(folder, args.photos)
        for _ in range(args.rounds):
            bare.append(bare_inference(folder, args.batch_size, args.workers, device))
            for name in formats:
                seconds = mieruka_run(
                    folder, Path(scratch) / "out", args.batch_size, args.workers, device, name
                )
                ours[name].append(seconds)
                print(f"bare {bare[-1]:.1f} s, mieruka --format {name} {seconds:.1f} s", flush=True)

    lines = [
        "# Soak: memory over many calls, a maps-only folder run against bare inference",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}, device {device}; "
        f"`python benchmarks/soak.py {' '.join(sys.argv[1:])}`.",
    ]
    if args.note:
        lines += ["", f"**{args.note}**"]
    lines += [
        "",
        "| check | measured | target |",
        "|---|---|---|",
        f"| {memory['calls']} Grad-CAM calls, resnet18, batch {args.batch_size} of {args.size}x{args.size}: "
        "peak RSS growth after "
        f"{args.warmup} warm-up calls | {memory['growth']:.1f} MB ({memory['base']:.0f} -> "
        f"{memory['peak']:.0f} MB, {memory['seconds'] / memory['calls'] * 1000:.0f} ms a call) | < 50 MB |",
        *(
            f"| {args.photos} photos (640x480 JPEG), `explain --format {name}` / bare decode + preprocess + "
            f"inference (best of {args.rounds}) | {min(times) / min(bare):.2f}x ({min(times):.1f} s / "
            f"{min(bare):.1f} s, {args.photos / min(times):.1f} photos/s) | "
            + ("<= 1.2x |" if name == "npy" else "(pictures: no target) |")
            for name, times in ours.items()
        ),
        "",
        "The folder run's time includes loading the model and choosing its layer (once); the bare loop's",
        "does not. Both use the same DataLoader workers and batches; the bare loop gets the predictions",
        "back to the CPU, as a real inference loop must.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
