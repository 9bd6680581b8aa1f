"""How much Grad-CAM's localization on a small ViT depends on the training run and the head.

The small ViT of the test suite is retrained with its own recipe and a few common changes (QK
normalization alone, then with two wider heads or with four register tokens; a wider model; twice the
epochs; two or three blocks instead of four; an average-pooled head instead of the class token), each
with several seeds, and every run is
explained on the same held-out shapes at the automatic layer. The pointing game of Grad-CAM beside
token-wise methods (HiResCAM, LayerCAM) and attention methods (rollout, GAE) shows which method's reading
survives a change of recipe or seed. Each run trains on one thread; `--jobs` runs go at once. The rows
are kept in `results/vit-recipes.json`: `--add` runs only the recipes and seeds asked for and keeps the
other rows, so one recipe can join the table without retraining the rest.

    python benchmarks/vit_recipes.py                   # writes benchmarks/results/vit-recipes.md
    python benchmarks/vit_recipes.py --seeds 0,1 --jobs 1
    python benchmarks/vit_recipes.py --recipes "average-pooled" --add
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
synthetic = importlib.import_module("synthetic")  # the shapes and the ViT of the test suite
localization = importlib.import_module("localization")  # scoring and the machine line, shared

RECIPES = {  # name: (build_shapes_vit changes, train_shapes_vit settings)
    "test suite": ({}, {}),
    "qk-norm": ({"qk_norm": True}, {}),
    "qk-norm + 2 heads": ({"qk_norm": True, "num_heads": 2}, {}),
    "qk-norm + 4 registers": ({"qk_norm": True, "reg_tokens": 4}, {}),
    "width 128": ({"embed_dim": 128}, {}),
    "20 epochs": ({}, {"epochs": 20}),
    "depth 2": ({"depth": 2}, {}),
    "depth 3": ({"depth": 3}, {}),
    # No class token: the head averages the patches. It needs twice the epochs to learn the task.
    "average-pooled": ({"global_pool": "avg", "class_token": False}, {"epochs": 20}),
}
METHODS = ("gradcam", "hirescam", "layercam", "rollout", "gae")
TRAINED = 0.95  # held-out accuracy a run needs to count in the summary: the suite asks as much


def one_run(recipe: str, seed: int, count: int) -> dict:
    """Train one recipe with one seed; its held-out accuracy and each method's pointing game."""
    changes, settings = RECIPES[recipe]
    torch.set_num_threads(1)
    start = time.perf_counter()
    model = synthetic.train_shapes_vit(seed=seed, **settings, **changes)
    seconds = time.perf_counter() - start
    held_out = synthetic.make_shapes(count, seed=localization.HELD_OUT_SEED)
    images, labels, masks = held_out
    pointing, layers = {}, {}
    for method in METHODS:
        maps, layers[method] = localization.explain(model, method, images, labels)
        pointing[method] = localization.scores(maps, masks)[0]
    row = {
        "recipe": recipe,
        "seed": seed,
        "count": count,
        "accuracy": localization.accuracy(model, held_out),
        "seconds": seconds,
        "layer": layers["gradcam"],
        "pointing": pointing,
    }
    shown = " ".join(f"{m} {v:.2f}" for m, v in pointing.items())
    print(f"{recipe:22} seed {seed}: accuracy {row['accuracy']:.3f}  {shown}  ({seconds:.0f} s)", flush=True)
    return row


def head(recipe: str) -> str:
    """What the recipe's head reads: the class token or the average of the patches."""
    return "average-pooled" if RECIPES[recipe][0].get("global_pool") == "avg" else "class-token"


def summary(rows: list[dict]) -> list[str]:
    """Per head and method: min, median and max pointing over the trained runs, and how many reach 0.8."""
    lines = [
        "| head | method | min | median | max | runs >= 0.8 |",
        "|---|---|---|---|---|---|",
    ]
    for kind in dict.fromkeys(head(r["recipe"]) for r in rows):
        trained = [r for r in rows if r["accuracy"] >= TRAINED and head(r["recipe"]) == kind]
        for method in METHODS:
            values = [r["pointing"][method] for r in trained]
            if not values:
                continue
            reached = sum(v >= 0.8 for v in values)
            lines.append(
                f"| {kind} | {method} | {min(values):.2f} | {statistics.median(values):.2f} "
                f"| {max(values):.2f} | {reached} of {len(values)} |"
            )
    return lines


def report(rows: list[dict], count: int) -> str:
    rows = sorted(rows, key=lambda r: (list(RECIPES).index(r["recipe"]), r["seed"]))
    masks = synthetic.make_shapes(count, seed=localization.HELD_OUT_SEED)[2]
    baselines = {
        "random map": localization.scores(synthetic.random_maps(count), masks)[0],
        "centre prior": localization.scores(synthetic.centre_prior(count), masks)[0],
    }
    trained = sum(r["accuracy"] >= TRAINED for r in rows)
    lines = [
        "# Grad-CAM on a small ViT across training recipes and seeds",
        "",
        localization.machine(threads="1 thread per run"),
        datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "",
        f"The test suite's ViT (`synthetic.build_shapes_vit`: 4 blocks, 64 wide, 4 heads, class-token head) "
        f"retrained with each recipe change and seed; {count} held-out shapes "
        f"(`make_shapes({count}, seed={localization.HELD_OUT_SEED})`), the true class as target, each method at "
        "its automatic layer (the CAMs' in the layer column); pointing game with a "
        f"{localization.TOLERANCE}-pixel tolerance. A random map scores {baselines['random map']:.2f}, a centre "
        f"prior {baselines['centre prior']:.2f}. One bright object per image: rollout, which is not "
        "class-specific, can point at it as well. On the average-pooled head every patch token gets the "
        "same gradient at its automatic layer (`norm`), so there Grad-CAM and HiResCAM draw the same map "
        "to 1e-6 (where two patches tie at the peak, either may win).",
        "",
        "| recipe | seed | accuracy | layer | " + " | ".join(METHODS) + " | trained in |",
        "|---" * (5 + len(METHODS)) + "|",
    ]
    for r in rows:
        cells = " | ".join(f"{r['pointing'][m]:.2f}" for m in METHODS)
        lines.append(
            f"| {r['recipe']} | {r['seed']} | {r['accuracy']:.3f} | `{r['layer']}` | {cells} "
            f"| {r['seconds']:.0f} s |"
        )
    lines += [
        "",
        f"Over the {trained} runs that learned the task (held-out accuracy >= {TRAINED}):",
        "",
        *summary(rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--count", type=int, default=300, help="held-out images")
    parser.add_argument("--out", type=Path, default=RESULTS / "vit-recipes.md")
    parser.add_argument(
        "--add", action="store_true", help="keep the other rows of the .json beside --out; rerun only these"
    )
    args = parser.parse_args()

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"--recipes: unknown {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: whole numbers separated by commas, got {args.seeds!r}")
    if not recipes or not seeds or args.jobs < 1:
        parser.error("--recipes and --seeds need at least one value each, --jobs at least 1")
    runs = [(recipe, seed) for recipe in recipes for seed in seeds]
    stored = args.out.with_suffix(".json")
    kept = []
    if args.add and stored.exists():
        kept = [r for r in json.loads(stored.read_text()) if r["recipe"] in RECIPES]
        if any(r["count"] != args.count for r in kept):
            parser.error(f"--add: the rows in {stored} were scored on other held-out images than --count")
        kept = [r for r in kept if (r["recipe"], r["seed"]) not in runs]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = kept + list(pool.map(one_run, *zip(*runs), [args.count] * len(runs)))
    text = report(rows, args.count)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    stored.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
