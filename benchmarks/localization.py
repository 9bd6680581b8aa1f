"""Localization on synthetic shapes with known object masks: every CAM method on a small ViT and a CNN.

Both models are trained here on the shapes of ``tests/synthetic.py`` exactly as in the test suite
(seeded), then explained on held-out images with their true class as the target, each at its automatic
layer. Pointing game: the share of maps whose maximum falls on the object, grown by 4 pixels (the 15 of
224 scaled to 64). Energy: the mean share of a map's total that lies on the object mask. A random map
and a centre prior (a Gaussian in the middle of the image) are the baselines.

    python benchmarks/localization.py                         # writes benchmarks/results/localization.md
    python benchmarks/localization.py --methods rollout,gae   # more methods; unknown names are skipped
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from mieruka import CAM
from mieruka.methods import get_method, parse_methods
from mieruka.metrics import energy_inside, pointing_game

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "tests"))
synthetic = importlib.import_module("synthetic")  # the shapes and models of the test suite

TOLERANCE = 4
HELD_OUT_SEED = 999  # the test suite's held-out images
CHUNK = 50  # images per call: bounds the memory of Score-CAM and Ablation-CAM


def method_names(extra: str) -> tuple[list[str], list[str]]:
    """The registered CAM family, then the extra names that are registered; and notes on the others."""
    names = [m.name for m in parse_methods("all")]
    notes = []
    for part in (p.strip() for p in extra.split(",")):
        if not part:
            continue
        try:
            name = get_method(part).name
        except ValueError:
            notes.append(f"`{part}`: not a registered method here, skipped")
            continue
        if name not in names:
            names.append(name)
    return names, notes


def scores(maps: torch.Tensor, masks: torch.Tensor) -> tuple[float, float]:
    """(pointing game, mean energy inside the mask) of maps (N, H, W)."""
    pointing = pointing_game(maps, masks, TOLERANCE).float().mean().item()
    return pointing, energy_inside(maps, masks).mean().item()


def explain(model, method: str, images, labels) -> tuple[torch.Tensor, str]:
    """Maps (N, H, W) of one method at the automatic layer, and the layer."""
    cam = CAM(model, method=method)
    results = [
        cam(images[i : i + CHUNK], targets=labels[i : i + CHUNK]) for i in range(0, len(images), CHUNK)
    ]
    return torch.cat([r.maps for r in results]), results[0].layer


def evaluate(name: str, model, methods: list[str], held_out) -> tuple[dict, list[str]]:
    """Per method: (pointing, energy), or "n/a" / "error"; and notes saying why."""
    images, labels, masks = held_out
    cells: dict = {}
    notes: list[str] = []
    for method in methods:
        try:
            maps, layer = explain(model, method, images, labels)
        except ValueError as error:  # MierukaError and kin: the method does not apply to this model
            cells[method] = "n/a"
            notes.append(f"`{method}` on the {name}: n/a, {first_line(error)}")
            continue
        except Exception as error:  # a failure of this checkout, recorded in the table, not hidden
            cells[method] = "error"
            notes.append(f"`{method}` on the {name}: error, {type(error).__name__}: {first_line(error)}")
            continue
        cells[method] = scores(maps, masks)
        print(
            f"{name:4} {method:15} {layer:15} pointing {cells[method][0]:.3f} energy {cells[method][1]:.3f}"
        )
    return cells, notes


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else "(no message)"


def accuracy(model, held_out) -> float:
    images, labels, _ = held_out
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def timed(train) -> tuple[object, float]:
    start = time.perf_counter()
    model = train()
    return model, time.perf_counter() - start


def cell(value: tuple | str, index: int) -> str:
    """Pointing or energy to two decimals; "n/a" or "error" as they are."""
    return value if isinstance(value, str) else f"{value[index]:.2f}"


def table(models: dict, cells: dict, baselines: dict) -> str:
    """Markdown: one row per method, then the baselines; pointing and energy per model."""
    header = "| method | " + " | ".join(f"{m} pointing | {m} energy" for m in models) + " |"
    lines = [header, "|---" * (1 + 2 * len(models)) + "|"]
    for method in next(iter(cells.values())):
        row = [cell(cells[m][method], i) for m in models for i in range(2)]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    for name, (pointing, energy) in baselines.items():
        row = [f"{pointing:.2f}", f"{energy:.2f}"] * len(models)
        lines.append(f"| *{name}* | " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine(threads: str | None = None) -> str:
    """The CPU, its cores, torch's version and the threads used (`threads` when the runs set their own)."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    described = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
    return described + (threads or f"{torch.get_num_threads()} threads")


def report(models: dict, cells: dict, baselines: dict, notes: list[str], count: int) -> str:
    lines = [
        "# Localization on synthetic shapes",
        "",
        machine(),
        datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "",
        f"{count} held-out 64x64 images (`synthetic.make_shapes({count}, seed={HELD_OUT_SEED})`), the true class as "
        f"target, each model at its automatic layer; pointing game with a {TOLERANCE}-pixel tolerance; "
        "energy = mean share of the map on the object mask. One bright object per image: maps that are not "
        "class-discriminative (Eigen-CAM, Guided Backpropagation) can point at it as well.",
        "",
    ]
    for name, info in models.items():
        lines.append(
            f"- {name}: {info['about']}; layer `{info['layer']}`; held-out accuracy {info['accuracy']:.3f}; "
            f"trained in {info['seconds']:.0f} s"
        )
    lines += ["", table(models, cells, baselines)]
    if notes:
        lines += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default="", help="extra method names, comma-separated (e.g. rollout,gae)"
    )
    parser.add_argument("--count", type=int, default=300, help="held-out images")
    parser.add_argument("--out", type=Path, default=RESULTS / "localization.md")
    args = parser.parse_args()

    methods, notes = method_names(args.methods)
    held_out = synthetic.make_shapes(args.count, seed=HELD_OUT_SEED)
    trained = {
        "ViT": (synthetic.train_shapes_vit, "timm VisionTransformer, 8x8 patches of 8 px, class-token head"),
        "CNN": (synthetic.train_shapes_net, "ShapesNet, four convolutions and global average pooling"),
    }
    models, cells = {}, {}
    for name, (train, about) in trained.items():
        model, seconds = timed(train)
        images = held_out[0][:1]
        models[name] = {
            "about": about,
            "layer": CAM(model).layers(images)[0][0],
            "accuracy": accuracy(model, held_out),
            "seconds": seconds,
        }
        cells[name], found = evaluate(name, model, methods, held_out)
        notes += found
    masks = held_out[2]
    baselines = {
        "random map": scores(synthetic.random_maps(len(masks)), masks),
        "centre prior": scores(synthetic.centre_prior(len(masks)), masks),
    }
    text = report(models, cells, baselines, notes, args.count)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
