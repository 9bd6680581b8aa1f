"""The `mieruka` command: parse arguments, call the library, write files. No maths here."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2

EXPLAIN_EXAMPLES = """examples:
  mieruka explain photo.jpg                      # default ImageNet model, predicted class
  mieruka explain photos/ --out maps --top-k 3   # a folder, three classes per photo; maps/report.html
  mieruka explain photos/ --out maps --overwrite # replace the earlier run in maps/
  mieruka explain photos/ --out maps --resume    # finish an interrupted run, skipping what it wrote
  mieruka explain dataset/ --out maps --format npy --resume   # maps only, 1,000 photos a shard
  mieruka explain cat.jpg --target "tabby" --style panel
  mieruka explain photos/ --out maps --sheet     # and a contact sheet: maps/sheet-001.png, ...
  mieruka explain photo.jpg --model resnet18 --num-classes 5 --weights ft.pth --labels labels.txt
  mieruka explain photo.jpg --model vgg16 --weights IMAGENET1K_V1 --layer features.29
  mieruka explain cat.jpg --method gradcam,gradcam++,layercam,scorecam   # side by side
  mieruka explain cat.jpg --method all --layer layer3,layer4 --model resnet18 --weights IMAGENET1K_V1
"""

EVALUATE_EXAMPLES = """examples:
  mieruka evaluate samples --method gradcam,gradcam++,layercam,scorecam
  mieruka evaluate photos/ --method gradcam,layercam --metrics deletion,insertion,drop,road --out eval
  mieruka evaluate photos/ --metrics pointing,drop --boxes boxes.json --out eval
  mieruka evaluate photos/ --metrics pointing --masks masks/ --out eval
  mieruka evaluate photos/ --metrics sanity --method gradcam,guidedbackprop --out eval

boxes files (photo names as found: a/cat.jpg under a folder given, cat.jpg given directly, or the
end of a path that fits one photo only; corners in the original photo's pixels, upright):
  {"cat.jpg": [[x0, y0, x1, y1], ...]}            JSON
  {"cat.jpg": {"boxes": [...], "mask": "m.png"}}  JSON with a mask file (relative to the JSON file)
  {"images": [...], "annotations": [...]}          COCO-style JSON (bbox = [x, y, width, height])
  photo,x0,y0,x1,y1                                CSV, one box a row
A box up to 1 px past the photo's edge is clipped to it; one further out, or empty, fails its photo.
masks (--masks DIR): PNG files the size of the original photo (upright), nonzero = object, one per
photo at its path with .png for its suffix: photos/a/cat.jpg (photos/ given) -> DIR/a/cat.png.
A photo with a mask is scored on it, otherwise on its boxes. A name that fits no photo is a warning,
one that fits two an error for both; a box or mask that does not fit its photo fails that photo
only (exit status 2), and the others are still evaluated.
"""

REPORT_EXAMPLES = """examples:
  mieruka report maps                            # maps/report.html from the run in maps/
  mieruka report maps --evaluation eval          # with the metrics `mieruka evaluate --out eval` wrote
"""

SERVE_EXAMPLES = """examples:
  mieruka serve                                  # the default ImageNet model; upload photos in the page
  mieruka serve photos/                          # ... or pick them from photos/ (only images under it)
  mieruka serve photos/ --model resnet18 --num-classes 5 --weights ft.pth --labels labels.txt
  mieruka serve photos/ --port 8123 --max-upload-mb 50
then open the address it prints (http://127.0.0.1:8000/ by default) in a browser; Ctrl+C stops it.
"""

LAYERS_EXAMPLES = """examples:
  mieruka layers                                 # the default model
  mieruka layers --model vgg16                   # marks features.29, the automatic choice
  mieruka layers --model resnet18 --num-classes 5 --weights ft.pth
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mieruka",
        description="See which part of an image a PyTorch vision model based its decision on (Grad-CAM).",
        epilog="examples:\n  mieruka explain samples/ --out out\n  mieruka layers --model resnet18\n"
        "run 'mieruka COMMAND --help' for each command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    explain = commands.add_parser(
        "explain",
        help="write Grad-CAM overlays for photos and folders",
        description="Explain each photo: a Grad-CAM map drawn onto the original photo, one PNG per target,\n"
        "plus results.jsonl with the labels and probabilities (paths relative to the output folder).\n"
        "Pictures mirror the subfolders of each folder given: photos/a/cat.jpg -> OUT/a/cat_LABEL.png.\n"
        "A folder or several photos also get OUT/report.html, a page to browse, sort and filter the run\n"
        "in any browser, offline (--no-report: not written; `mieruka report OUT` writes it later).\n"
        "A run never destroys an earlier one: an output folder that holds results.jsonl is refused\n"
        "unless --overwrite (replace it) or --resume (finish it) is given, and nothing is written or\n"
        "removed before every argument is checked. A killed run leaves no half-written file.",
        epilog=EXPLAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)"
    )
    explain.add_argument(
        "--out", "-o", default="mieruka-out", metavar="DIR", help="output folder (default: %(default)s)"
    )
    explain.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the earlier run in --out: remove the files its results.jsonl lists, its run.json and "
        "its report (report.html, report/) and nothing else, then write this run",
    )
    explain.add_argument(
        "--resume",
        action="store_true",
        help="finish the run in --out: skip the photos it explained (their records and files complete), "
        "explain the rest; refused if it ran with other settings (its run.json)",
    )
    _model_arguments(explain)
    explain.add_argument(
        "--layer", metavar="NAME", help="dotted module name(s), comma-separated to fuse (default: automatic)"
    )
    explain.add_argument(
        "--layout",
        choices=["auto", "channels-first", "channels-last", "tokens"],
        default=None,
        help="how the layer's output lies over the image (default: inferred from its shape and the model; "
        "an ambiguous one is refused and names what to set)",
    )
    explain.add_argument(
        "--prefix-tokens",
        type=int,
        metavar="P",
        help="tokens layout: class/distillation/register tokens before the patches (implies --layout tokens)",
    )
    explain.add_argument(
        "--grid", metavar="HxW", help="tokens layout: the patch grid, e.g. 14x14 (implies --layout tokens)"
    )
    explain.add_argument(
        "--method",
        default="gradcam",
        metavar="NAMES",
        help="CAM method(s), comma-separated, or 'all'; several give a comparison panel "
        "(default: %(default)s; `mieruka methods` lists them)",
    )
    explain.add_argument(
        "--eigen-smooth", action="store_true", help="reduce channels by their first principal component"
    )
    explain.add_argument(
        "--aug-smooth", action="store_true", help="average over mirrored and shifted inputs (6 passes)"
    )
    explain.add_argument(
        "--score-channels",
        type=int,
        metavar="N",
        help="Score-CAM: use only the N most active channels (faster, approximate)",
    )
    tasks = explain.add_argument_group(
        "what to explain",
        "The task is told from the model: torchvision detectors and segmenters by name, else from its\n"
        "output on a blank image: detections -> detect, (N, classes, H, W) or {'out': ...} -> segment,\n"
        "one value per image -> binary, (N, classes) -> classify. Multi-label, regression and embedding\n"
        "heads look like classifiers: name them with --task (--reference implies embed).",
    )
    tasks.add_argument(
        "--task",
        default="auto",
        choices=["auto", "classify", "binary", "multilabel", "regression", "embed", "segment", "detect"],
        help="(default: %(default)s, as above)",
    )
    tasks.add_argument(
        "--target",
        metavar="CLASS",
        help="class index or name to explain (default: the predicted class; binary: the predicted side; "
        "multilabel: the labels above --threshold; regression: every output; segment: every class in "
        "the predicted mask; detect: every object above --min-score). Several comma-separated for "
        "multilabel, regression, segment and detect",
    )
    tasks.add_argument(
        "--top-k",
        type=int,
        default=1,
        metavar="K",
        help="explain the K most probable classes (multilabel: the K most probable labels) (default: 1)",
    )
    tasks.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="multilabel: explain each label whose sigmoid probability is at least P (default: %(default)s)",
    )
    tasks.add_argument(
        "--direction",
        choices=["up", "down"],
        default="up",
        help="regression: what pushes the output up, or down (default: %(default)s)",
    )
    tasks.add_argument(
        "--reference",
        metavar="IMAGE|VECTOR",
        help="embed: explain the cosine similarity to this image's embedding, or to a vector (.npy, .pt)",
    )
    tasks.add_argument(
        "--min-score",
        type=float,
        default=0.5,
        metavar="S",
        help="detect: explain every object detected with at least this score (default: %(default)s)",
    )
    tasks.add_argument(
        "--max-objects",
        type=int,
        metavar="N",
        help="detect: at most N objects per photo, the highest scores first (default: all)",
    )
    explain.add_argument(
        "--style",
        default="overlay",
        choices=["overlay", "classic", "panel", "heatmap", "boxes"],
        help="picture style; boxes: detect, every object's map and box in one picture (default: %(default)s)",
    )
    explain.add_argument(
        "--colormap", default="jet", metavar="NAME", help="any matplotlib colormap (default: %(default)s)"
    )
    explain.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="heat opacity for --style overlay/panel (default: %(default)s)",
    )
    explain.add_argument(
        "--no-label",
        dest="label",
        action="store_false",
        help="overlay/classic: leave out the label and probability drawn in the top-left corner",
    )
    explain.add_argument(
        "--font",
        metavar="PATH",
        help="font file (.ttf/.otf/.ttc) for labels; by default DejaVu Sans, IPAexGothic for Japanese, "
        "then system fonts for other scripts",
    )
    explain.add_argument(
        "--format",
        default="png",
        choices=["png", "jpg", "npy"],
        help="picture format; jpg encodes a 12-megapixel picture about 15x faster than png; npy: maps only, "
        "no pictures, float16 at the layer's resolution in one array per shard (default: %(default)s)",
    )
    explain.add_argument(
        "--shard-size",
        type=int,
        default=1000,
        metavar="N",
        help="--format npy: photos per array file, maps-00000.npy, ... (default: %(default)s)",
    )
    explain.add_argument(
        "--save-maps", action="store_true", help="also write each raw map at layer resolution as .npy"
    )
    explain.add_argument(
        "--sheet",
        action="store_true",
        help="also write a contact sheet: each target's picture small, captioned with the photo, label and "
        "probability, in pages of about 48 (sheet-001.png, sheet-002.png, ...); a panel's tile is its overlay",
    )
    explain.add_argument(
        "--sheet-columns",
        type=int,
        metavar="N",
        help="tiles per row of the contact sheet, 1 to 32; implies --sheet (default: 6)",
    )
    explain.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write OUT/report.html: the run as a page of thumbnails to sort, filter and open, with each map "
        "over its photo at any opacity; the small pictures it shows go to OUT/report/ "
        "(default: on for a folder or several photos, off for one photo)",
    )
    explain.add_argument(
        "--batch-size",
        type=int,
        default=16,
        metavar="N",
        help="images per forward pass (default: %(default)s)",
    )
    explain.add_argument(
        "--workers", type=int, default=None, metavar="N", help="decoding processes (default: automatic)"
    )
    explain.add_argument(
        "--json", action="store_true", help="print the result records as JSON lines instead of a summary"
    )
    explain.add_argument("--quiet", "-q", action="store_true", help="no summary and no progress bar")
    engine = explain.add_argument_group(
        "engine", 'Where the work runs: here (local), or on Ray Data\'s actors (pip install "mieruka[ray]").'
    )
    engine.add_argument("--engine", choices=["local", "ray"], default="local", help="(default: %(default)s)")
    engine.add_argument(
        "--address",
        metavar="ADDR",
        help="ray: the cluster's address (HOST:PORT, ray://HOST:PORT, auto); default: a Ray started here. "
        "PATHs must be readable on every node",
    )
    engine.add_argument(
        "--num-workers", type=int, metavar="N", help="ray: actors, each with its own model (default: 1)"
    )
    _common(explain)

    _evaluate_parser(commands)
    _report_parser(commands)

    layers = commands.add_parser(
        "layers",
        help="list the model's modules with their output shapes",
        description="Print the module tree with each module's output shape from one dummy forward pass; "
        "the layer chosen automatically is marked.",
        epilog=LAYERS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_arguments(layers)
    layers.add_argument("--all", action="store_true", help="also list modules that did not run")
    _common(layers)

    methods = commands.add_parser(
        "methods",
        help="list the CAM methods",
        description="List the CAM methods with one line each.",
        epilog="examples:\n  mieruka methods\n  mieruka explain cat.jpg --method all\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(methods)

    _serve_parser(commands)
    return parser


def _report_parser(commands) -> None:
    report = commands.add_parser(
        "report",
        help="write the HTML report of a run: report.html in its folder",
        description="Write OUT_DIR/report.html from the run `mieruka explain --out OUT_DIR` left there\n"
        "(results.jsonl): a grid of the photos with their overlay, label, probability and top 5; sort by\n"
        "confidence, name, energy in the main region or an evaluate metric; filter by label, file name,\n"
        "and 'confident but attention outside the main region' (probability >= 0.8 and under 0.25 of the\n"
        "map's energy in the central quarter of the crop the model saw, or in the ground-truth boxes\n"
        "where evaluate scored them; both thresholds can be changed on the page); click a photo for the\n"
        "map over it at any opacity, each target and method side by side. One file with its data, script\n"
        "and fonts inside: it opens from file:// with no network. Thumbnails the run did not write are\n"
        "made once in OUT_DIR/report/.",
        epilog=REPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("folder", metavar="OUT_DIR", help="the output folder of a `mieruka explain` run")
    report.add_argument(
        "--evaluation",
        metavar="DIR",
        help="the folder `mieruka evaluate --out` wrote for the same photos, to sort and filter by its "
        "metrics (default: OUT_DIR itself when it holds per_image.jsonl)",
    )
    report.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    _common(report)


def _serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="a local web viewer: open a photo, choose methods, layer and class, see the maps",
        description="A web page on this machine to explain photos one at a time: upload one or pick it from\n"
        "FOLDER, choose the methods (side by side), the layer, the class or the top k, the colormap and\n"
        "the opacity (these two change without recomputing). The model loads once, at start. Listens on\n"
        "127.0.0.1 only unless --host says otherwise; serves no file outside FOLDER. Needs the serve\n"
        "extra: pip install 'mieruka[serve]'.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "folder", nargs="?", metavar="FOLDER", help="photos to pick from in the page (searched recursively)"
    )
    _model_arguments(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0: every network)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on; 0 takes a free one (default: %(default)s)"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=20.0,
        metavar="MB",
        help="refuse uploaded photos larger than this (default: %(default)s)",
    )
    _common(serve)


def _evaluate_parser(commands) -> None:
    from . import metric_names as defaults

    evaluate = commands.add_parser(
        "evaluate",
        help="score CAM methods on your photos: faithfulness, localization, sanity",
        description="Can I trust this map? Score each method's maps of the predicted class (or --target) on\n"
        "the photos, beside two controls that know nothing of the model (a random map, a centre prior):\n"
        "a table of means with 95% bootstrap intervals and the photos each is over (n) in the terminal,\n"
        "the best method per metric marked, and in --out: metrics.json (the table and the settings),\n"
        "per_image.jsonl, curves.png (with deletion or insertion) and sanity.png (with sanity).\n"
        "Metrics (cost per photo and method or control, in forward passes of the model):\n"
        "  deletion   area under the deletion curve, pixels -> 0 most salient first; lower is better\n"
        "             (--steps + 1 passes)\n"
        "  insertion  area under the insertion curve, pixels back onto a blurred copy; higher is better\n"
        "             (--steps + 1 passes)\n"
        "  drop       Average Drop (relative, Grad-CAM++ paper), lower is better, and Increase in\n"
        "             Confidence, higher is better (1 pass)\n"
        "  road       ROAD (LeRF - MoRF)/2 with noisy linear imputation; higher is better. SLOW on a CPU:\n"
        "             2 x --road-fractions passes plus an imputation of each (seconds per photo at 224 px)\n"
        "  pointing   pointing game (the map's peak within 15 px of a box or mask) and energy inside\n"
        "             them, in the photo's own pixels; higher is better; needs --boxes or --masks\n"
        "             (no passes)\n"
        "  sanity     Spearman of |map| with the head (the logits layer) alone randomized (Adebayo et al.);\n"
        f"             lower is better; a method above {defaults.SANITY_THRESHOLD} is flagged (!): its maps barely depend\n"
        "             on what the model learned. SLOW: --sanity-blocks + 1 maps per method (Score-CAM: a\n"
        "             pass per channel each)\n"
        "Score-CAM itself costs one pass per channel of the layer (1280 on the default model).",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files and folders (searched recursively)"
    )
    evaluate.add_argument(
        "--method",
        default="gradcam,gradcam++,layercam",
        metavar="NAMES",
        help="CAM methods, comma-separated, or 'all' (default: %(default)s)",
    )
    evaluate.add_argument(
        "--metrics",
        default=None,
        metavar="NAMES",
        help="comma-separated: deletion, insertion, drop (columns drop and increase), road, pointing "
        "(columns pointing and energy), sanity (default: deletion,insertion,drop; and pointing with --boxes "
        "or --masks)",
    )
    evaluate.add_argument(
        "--boxes", metavar="FILE", help="ground-truth boxes (JSON, COCO-style JSON or CSV; below)"
    )
    evaluate.add_argument(
        "--masks",
        metavar="DIR",
        help="ground-truth masks: a folder of PNGs named like the photos, nonzero = object (below)",
    )
    evaluate.add_argument(
        "--out", "-o", default="mieruka-eval", metavar="DIR", help="output folder (default: %(default)s)"
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace the earlier evaluation in --out (its metrics.json)"
    )
    _model_arguments(evaluate)
    evaluate.add_argument("--layer", metavar="NAME", help="dotted module name(s) (default: automatic)")
    evaluate.add_argument(
        "--target", metavar="CLASS", help="class index or name (default: the predicted class)"
    )
    evaluate.add_argument(
        "--steps",
        type=int,
        default=defaults.STEPS,
        metavar="S",
        help="deletion/insertion: steps along each curve, so S + 1 points, one pass each (default: %(default)s)",
    )
    evaluate.add_argument(
        "--road-fractions",
        default=",".join(map(str, defaults.ROAD_FRACTIONS)),
        metavar="P,...",
        help="ROAD: shares of pixels removed (default: %(default)s)",
    )
    evaluate.add_argument(
        "--tolerance",
        type=int,
        default=defaults.TOLERANCE,
        metavar="PX",
        help="pointing game: pixels (default: %(default)s)",
    )
    evaluate.add_argument(
        "--sanity-blocks",
        type=int,
        default=defaults.SANITY_BLOCKS,
        metavar="B",
        help="sanity: randomize cascading from the head: the head alone, then the layers below it in B "
        "groups (default: %(default)s)",
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        default=defaults.SEED,
        metavar="N",
        help="seed of the random map (photo i: N + i), ROAD's noise, the sanity check's re-initialization "
        "and the bootstrap; the same seed gives the same numbers (default: %(default)s)",
    )
    evaluate.add_argument(
        "--score-channels",
        type=int,
        metavar="N",
        help="Score-CAM: use only the N most active channels (faster, approximate)",
    )
    evaluate.add_argument(
        "--batch-size",
        type=int,
        default=defaults.BATCH_SIZE,
        metavar="N",
        help="perturbed inputs per pass (default: %(default)s)",
    )
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no table and no progress")
    _common(evaluate)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        "-m",
        metavar="NAME",
        help="torchvision architecture or timm:NAME (default: efficientnet_lite0, ImageNet)",
    )
    group.add_argument(
        "--weights",
        "-w",
        metavar="PATH|NAME",
        help="state_dict / checkpoint / TorchScript file, or torchvision weights name (IMAGENET1K_V1) from the local cache",
    )
    group.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        help="rebuild the classifier head for N classes (fine-tuned models); 0 removes a timm model's head, "
        "so it returns embeddings",
    )
    group.add_argument("--labels", metavar="FILE", help="class names: one a line, or JSON")
    group.add_argument(
        "--random-weights",
        action="store_true",
        help="run a named architecture untrained, on purpose (tests, sanity checks), initialized from a fixed "
        "seed so every run gets the same network; every output says so",
    )
    group.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow loading a whole pickled model (runs code from the file)",
    )
    group.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="(default: %(default)s)"
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restores the way warnings are shown on the way out
        warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
        return _run(args, parser)


def _show_warning(show, message, category, filename, lineno, file=None, line=None) -> None:
    """mieruka's own warnings as one line, like its errors; others as `show` shows them."""
    from .fonts import MissingGlyphsWarning

    if issubclass(category, MissingGlyphsWarning):
        print(f"mieruka: warning: {message}", file=sys.stderr)
    else:
        show(message, category, filename, lineno, file, line)


def _run(args, parser: argparse.ArgumentParser) -> int:
    try:
        if args.command == "explain":
            return run_explain(args, parser)
        if args.command == "methods":
            return run_methods()
        if args.command == "evaluate":
            return run_evaluate(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "serve":
            return run_serve(args)
        return run_layers(args)
    except KeyboardInterrupt:
        print("mieruka: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        if not isinstance(error, ValueError | OSError):
            print(
                f"mieruka: internal error: {type(error).__name__}: {error} (rerun with --debug)",
                file=sys.stderr,
            )
            return 1
        print(f"mieruka: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: MPS is not available; use --device cpu")
    return torch.device(name)


def _load(args, shapes_only: bool = False):
    """The model the flags name; `shapes_only` (listing layers) needs no trained weights."""
    from .models import DEFAULT_MODEL, load_model

    if args.num_classes is not None and args.num_classes < 0:
        raise ValueError(
            f"--num-classes must be 0 or more (0: timm models without a head), got {args.num_classes}"
        )
    device = _device(args.device)
    untrained = args.random_weights or (
        shapes_only and args.weights is None and args.model not in (None, DEFAULT_MODEL)
    )
    loaded = load_model(
        args.model,
        args.weights,
        num_classes=args.num_classes,
        labels=args.labels,
        trust_checkpoint=args.trust_checkpoint,
        random_weights=untrained,
        device=device,
    )
    return loaded, device


def _dummy_input(loaded, device):
    import torch

    width, height = loaded.preprocess.crop_size((512, 512))
    parameter = next((p for p in loaded.model.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    return torch.zeros(1, 3, height, width, device=device, dtype=dtype)


def run_explain(args, parser: argparse.ArgumentParser) -> int:
    # Flags and paths are checked before anything heavy is imported: a typo costs a blink.
    _check_explain_flags(args)
    from .methods import METHODS, parse_methods

    methods = [m.name for m in parse_methods(args.method)]
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:  # reported before any model is loaded or any file is written
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{missing[0]}: no such file or folder{more}")
    _check_files_exist(args)
    _check_engine(args)

    from .batch import RenderOptions, explain_files
    from .cam import CAM
    from .fonts import check_font
    from .images import find_images_relative
    from .outputs import REPORT, RESULTS, find_earlier_run
    from .render import colormap_table
    from .runs import ResultsLog, resume, write_settings
    from .shards import MapShards

    colormap_table(args.colormap)  # fail early on a wrong colormap name
    if args.font is not None:
        check_font(args.font, "--font")
    found = find_images_relative(args.paths)
    if not found:
        raise ValueError(
            f"no images found in {', '.join(args.paths)} (looked for .jpg .png .webp .bmp .tif .gif)"
        )
    out_root = Path(args.out).resolve()
    found = [(path, place) for path, place in found if not path.resolve().is_relative_to(out_root)]
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

    loaded, device = _load(args)
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
    # a wrong --layer fails here, before any file is read
    layer_names = ",".join(name for name, _ in cam.layers(_dummy_input(loaded, device)))
    task = _task(args, loaded, device)
    if args.style == "boxes" and task != "detect":
        raise ValueError(f"--style boxes draws a detector's objects; this model's task is {task}")
    target = _task_target(args, task, loaded, device)
    if args.format == "npy" and task == "detect":
        raise ValueError(
            "--format npy stacks maps of one size; a detector's follow each photo's size: use png or jpg"
        )
    if args.engine == "ray":  # the same run on Ray Data's actors; records and files written here
        status = _explain_on_ray(args, loaded, earlier, found, methods, task, target, layer_names, report)
        if report:  # from the records and pictures: thumbnails made here, no heat layers
            from .report import build_report

            build_report(out_dir, font=args.font)
        return status
    settings = _explain_settings(args, loaded, layer_names, methods, task)
    resumed = resume(out_dir, settings) if args.resume else None  # refused here if the settings differ
    if resumed is None or not resumed.records:
        if earlier is not None:  # every argument is checked: only now is the earlier run replaced
            earlier.remove()
        write_settings(out_dir, settings, _version())
    done = len(paths)
    if resumed is not None:
        todo = [i for i, path in enumerate(paths) if os.path.abspath(path) not in resumed.done]
        paths, places = [paths[i] for i in todo], [places[i] for i in todo]
    done -= len(paths)
    progress = _Progress(len(paths), enabled=not args.quiet and not args.json, show_photos=len(paths) > 4)
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
        options=RenderOptions(
            style=args.style,
            colormap=args.colormap,
            alpha=args.alpha,
            save_maps=args.save_maps,
            format=args.format,
            label=args.label,
            font=args.font,
            tile=sheet.layout.tile if sheet is not None else None,
            report=report,
        ),
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        on_progress=progress.advance,
        places=places,
        shards=shards,
        taken=resumed.names if resumed else (),
    )
    with log, _stop_on_sigterm():
        sheet_error = _explain_into(args, log, failures, outcomes, progress, out_dir, sheet)
    progress.clear()
    if sheet is not None:
        sheet_error = _close_sheet(sheet, sheet_error)
    if report:
        from .report import build_report

        build_report(out_dir, font=args.font)
    if loaded.random_weights:
        print(
            f"mieruka: warning: {loaded.name} ran with random weights (--random-weights): "
            "its predictions and maps mean nothing",
            file=sys.stderr,
        )
    if not args.quiet and not args.json:
        seconds = time.perf_counter() - started
        print(
            f"{len(paths) - len(failures)} of {len(paths)} image(s) explained at layer {layer_names}"
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
    for outcome in outcomes:
        if outcome.error:
            failures.append(outcome.error)
            progress.clear()
            print(f"mieruka: error: {outcome.error}", file=sys.stderr)
            log.append([{"file": str(outcome.path), "error": outcome.error}])
            continue
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
    from .runs import file_identity

    weights = args.weights
    named = weights is not None and not Path(weights).is_file()
    return {
        "model": loaded.name,
        "weights": loaded.weights if weights is None or named else file_identity(weights),
        "num-classes": args.num_classes,
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


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's stop) ends the run as Ctrl-C does: the picture being written is
    removed, not left half-written, and results.jsonl is closed on a whole line."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set it
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:  # None: a handler set outside Python (Ray's), which cannot be put back
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_report(args) -> int:
    from .report import build_report

    page = build_report(args.folder, args.evaluation)
    if not args.quiet:
        print(f"{page} (open it in a browser)")
    return 0


def run_evaluate(args) -> int:
    # flags, paths and the boxes file are checked before anything heavy is imported
    metrics, fractions = _check_evaluate_flags(args)
    from .methods import parse_methods

    methods = [m.name for m in parse_methods(args.method)]
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{missing[0]}: no such file or folder{more}")
    _check_files_exist(args)
    from .images import find_images_relative

    out_root = Path(args.out).resolve()
    found = [
        (p, place)
        for p, place in find_images_relative(args.paths)
        if not p.resolve().is_relative_to(out_root)
    ]
    if not found:
        raise ValueError(
            f"no images found in {', '.join(args.paths)} (looked for .jpg .png .webp .bmp .tif .gif)"
        )
    paths, places = [path for path, _ in found], [place for _, place in found]
    out_dir = Path(args.out)
    earlier = _earlier_evaluation(out_dir, args.overwrite)
    _check_evaluate_out(out_dir)
    truth, unmatched = None, False
    if args.boxes is not None or args.masks is not None:
        from .boxes import NOT_GIVEN, ground_truth

        truth, notes = ground_truth(found, args.boxes, args.masks)  # a file that cannot be read: here
        for note in notes if "pointing" in metrics else ():
            unmatched = unmatched or NOT_GIVEN in note  # the others are scored; the run exits 2
            print(f"mieruka: {'error' if NOT_GIVEN in note else 'warning'}: {note}", file=sys.stderr)

    import torch

    from . import scoreboard
    from .cam import CAM
    from .evaluate import Evaluation, Settings, evaluate_files

    loaded, device = _load(args)
    if loaded.task not in (None, "classify"):
        raise ValueError(f"evaluate scores classifiers' maps; {loaded.name} is a {loaded.task} model")
    cam = CAM(
        loaded.model, args.layer, method=methods[0], labels=loaded.labels, score_channels=args.score_channels
    )
    dummy = _dummy_input(loaded, device)
    layer_names = ",".join(name for name, _ in cam.layers(dummy))  # a wrong --layer fails here
    from .layers import evaluating

    with torch.no_grad(), evaluating(loaded.model):
        output = loaded.model(dummy)
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        raise ValueError(
            f"evaluate scores classifiers' maps; {loaded.name} does not output (N, classes) scores"
        )
    target = _parse_target(args.target, loaded.labels)
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
    progress = _Progress(len(paths), enabled=not args.quiet, show_photos=True)
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
    if loaded.random_weights:
        print(
            f"mieruka: warning: {loaded.name} ran with random weights (--random-weights): its maps mean nothing",
            file=sys.stderr,
        )
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
    from .metric_names import DEFAULT_METRICS, NEEDS_BOXES, parse_metrics

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
            "mieruka": _version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
    }


def _check_engine(args) -> None:
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
    from .scale.ray import check_address

    if args.address and args.address != "auto":
        check_address(args.address)


def _explain_on_ray(args, loaded, earlier, found, methods, task, target, layer_names, report: bool) -> int:
    """--engine ray: the photos through mieruka.scale.ray's actors, each building the model the flags
    name; the rows come back here and are written into --out as a local run writes them."""
    if task != "classify":
        raise ValueError(
            f"--engine ray explains classifiers; this model's task is {task}: leave out --engine"
        )
    import ray

    from .batch import RenderOptions
    from .outputs import REPORT
    from .scale.ray import FolderWriter, ModelSpec, connect, explain_dataset

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
    )
    pictures = args.format in ("png", "jpg")  # anything else writes maps only
    options = RenderOptions(
        style=args.style,
        colormap=args.colormap,
        alpha=args.alpha,
        format=args.format,
        label=args.label,
        font=absolute(args.font),
        report=report,
    )
    workers = args.num_workers or 1
    out_dir = Path(args.out)
    if earlier is not None:  # every argument is checked: only now is the earlier run replaced
        earlier.remove()
    names = {str(path.resolve()): str(path) for path, _ in found}
    places = {str(path.resolve()): place for path, place in found}
    connect(args.address, num_cpus=workers if not args.address and workers > (os.cpu_count() or 1) else None)
    try:
        with _stop_on_sigterm():  # a scheduler's SIGTERM stops the run as Ctrl-C does
            rows = explain_dataset(
                ray.data.from_items([{"path": path} for path in names]),
                spec,
                methods=methods,
                layer=layer_names,
                target=target,
                top_k=args.top_k,
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
            progress = _Progress(len(names), enabled=not args.quiet and not args.json)
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
    if loaded.random_weights:
        print(
            f"mieruka: warning: {loaded.name} ran with random weights (--random-weights): "
            "its predictions and maps mean nothing",
            file=sys.stderr,
        )
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
    if args.reference is not None and args.task not in ("auto", "embed"):
        raise ValueError(f"--reference is for --task embed, not --task {args.task}")
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


def _check_files_exist(args) -> None:
    """Files the flags name, and a writable output folder: checked before anything heavy loads."""
    for flag, value in (
        ("--labels", args.labels),
        ("--font", getattr(args, "font", None)),
        ("--reference", getattr(args, "reference", None)),
    ):
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{flag} {value}: no such file")
    if args.weights is not None and Path(args.weights).suffix and not Path(args.weights).exists():
        raise ValueError(f"--weights {args.weights}: no such file")
    existing = Path(args.out).resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {args.out}: {existing} is a file, not a folder: choose another --out")
    if not _can_write_in(existing):
        raise ValueError(
            f"--out {args.out}: cannot write there ({existing} is not a writable folder): "
            "choose another --out"
        )


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be made in `folder`, by making one (gone once closed): os.access alone
    tells root yes where nothing can be written, such as /proc, and the run would fail at its end."""
    import tempfile

    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _has_attention(model) -> bool:
    """Whether the attention methods (rollout, gae) can run on this model."""
    from .methods.attention import AttentionError, vision_transformer

    try:
        vision_transformer(model)
    except AttentionError:
        return False
    return True


def _task(args, loaded, device) -> str:
    """The task named by --task, by the model's family, or read from its output on a blank image."""
    import torch

    from .layers import evaluating
    from .targets.tasks import infer_task

    if args.task != "auto":
        return args.task
    if loaded.task is not None:
        return loaded.task
    if args.reference is not None:
        return "embed"
    with torch.no_grad(), evaluating(loaded.model):
        output = loaded.model(_dummy_input(loaded, device))
    task = infer_task(output)
    if task == "binary" and not args.quiet:
        print(
            "mieruka: note: the model gives one value per image: explained as a binary classifier's logit "
            "(--task regression to explain a value)",
            file=sys.stderr,
        )
    return task


def _task_target(args, task: str, loaded, device):
    """What explain_files gets as targets for this task and these flags."""
    from .targets.tasks import default_target

    if task == "classify":
        return _parse_target(args.target, loaded.labels)
    if task == "detect":
        _lower_score_threshold(loaded.model, args.min_score)
    reference = _reference(args.reference, loaded, device) if task == "embed" else None
    return default_target(
        task,
        target=args.target,
        top_k=args.top_k,
        threshold=args.threshold,
        direction=args.direction,
        reference=reference,
        min_score=args.min_score,
        max_objects=args.max_objects,
    )


def _lower_score_threshold(model, min_score: float) -> None:
    """A torchvision detector drops boxes below its own threshold (0.05) before anyone sees them:
    lower it to --min-score so that a lower --min-score is honoured."""
    for owner in (getattr(model, "roi_heads", None), model):
        if owner is not None and isinstance(getattr(owner, "score_thresh", None), float):
            owner.score_thresh = min(owner.score_thresh, min_score)


def _reference(path: str | None, loaded, device):
    """The reference embedding of --reference: a photo run through the model, or a vector file."""
    import numpy as np
    import torch

    from .images import load_image
    from .layers import evaluating
    from .targets import output_tensor

    if path is None:
        raise ValueError("--task embed explains the similarity to a reference: pass --reference IMAGE|VECTOR")
    suffix = Path(path).suffix.lower()
    if suffix in (".npy", ".pt", ".pth"):
        try:
            if suffix == ".npy":
                vector = torch.from_numpy(np.load(path, allow_pickle=False)).float()
            else:
                vector = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(
                f"--reference {path}: cannot read a vector ({type(error).__name__}: {error})"
            ) from None
        if not isinstance(vector, torch.Tensor) or (
            vector.dim() != 1 and not (vector.dim() == 2 and len(vector) == 1)
        ):
            shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
            raise ValueError(f"--reference {path}: expected one embedding vector (D,), got {shape}")
        return vector.reshape(-1)
    try:
        image = load_image(path)
    except ValueError as error:
        raise ValueError(f"--reference {error}") from None
    inputs = loaded.preprocess(image)[None].to(device)
    with torch.no_grad(), evaluating(loaded.model):
        output = loaded.model(inputs)
    embedding = output_tensor(output)
    if embedding is None:
        embedding = getattr(output, "pooler_output", None)
    if embedding is None:
        raise ValueError(f"--reference {path}: the model's output holds no embedding tensor")
    return embedding.flatten(1)[0].float().cpu()


def _parse_target(text: str | None, labels):
    if text is None:
        return None
    from .targets import class_index

    index = class_index(text, labels)
    if labels is not None and not 0 <= index < len(labels):
        raise ValueError(f"--target {text}: the model has {len(labels)} classes (0 to {len(labels) - 1})")
    return index


def _contact_sheet(args, out_dir: Path, loaded, methods: list[str], layer: str):
    """The contact sheet --sheet asks for, headed with the model, methods and layer; or None."""
    if not args.sheet:
        return None
    from .sheet import COLUMNS, ContactSheet

    untrained = "  [random weights]" if loaded.random_weights else ""
    return ContactSheet(
        out_dir,
        suffix="." + args.format,
        columns=args.sheet_columns or COLUMNS,
        title=f"{loaded.name} · {', '.join(methods)} · {layer}{untrained}",
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


def _pages_note(sheet) -> str:
    """`, contact sheet: sheet-001.png to sheet-004.png` for the closing summary."""
    if sheet is None or not sheet.pages:
        return ""
    first, last = sheet.pages[0].name, sheet.pages[-1].name
    return f", contact sheet: {first}" + (f" to {last}" if last != first else "")


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
        empty = record["empty"] if isinstance(record["empty"], bool) else any(record["empty"].values())
        note = " (empty map: no positive evidence)" if empty else ""
        print(f"  {record['label']} -> {out_dir / record['output']}{note}")


class _Progress:
    """One line of progress on stderr, only when it is a terminal: photos done (for folders) and the
    method running now, with the extra passes of Score-CAM and Ablation-CAM."""

    def __init__(self, total: int, enabled: bool, show_photos: bool = True) -> None:
        self.total, self.done = total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.show_photos = show_photos
        self.started = time.perf_counter()
        self.method = ""

    def advance(self, count: int) -> None:
        self.done += count
        self.method = ""
        self._draw()

    def stage(self, method: str, done: int, total: int) -> None:
        """For CAM(progress=...): `method` has done `done` of `total` steps."""
        self.method = f"{method} {done}/{total}" if total > 1 else f"{method}..."
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        parts = []
        if self.show_photos:
            filled = int(30 * self.done / self.total)
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            parts.append(f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {rate:.1f} img/s")
        if self.method:
            parts.append(self.method)
        if parts:
            sys.stderr.write("\r\033[K" + "  ".join(parts))
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def run_methods() -> int:
    from .methods import METHODS

    width = max(len(name) for name in METHODS)
    for name, method in METHODS.items():
        print(f"{name:<{width}}  {method.kind:<12}  {method.summary}")
    print(
        "\nGradient methods and eigencam share one forward/backward pass; pick several with --method a,b,c."
        "\nThe CAM family runs at a layer of any model (CNN or transformer); attention methods (rollout, gae) "
        "need a timm ViT-family model (ViT, DeiT, DINOv2, BEiT, EVA). 'all' adds them where they apply."
        "\nOn a transformer whose head reads the class token, hirescam, layercam, rollout and gae follow the "
        "tokens it reads; gradcam shows what each token would add if read (README: 'Which method to trust')."
    )
    return 0


def run_serve(args) -> int:
    """Check the flags and the folder, take the port, load the model once, then serve until Ctrl+C."""
    import importlib.util

    missing = [
        name for name in ("starlette", "uvicorn", "multipart") if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ValueError(
            f"mieruka serve needs the web stack ({', '.join(missing)} missing): install mieruka[serve] "
            "(pip install 'mieruka[serve]')"
        )
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be more than 0, got {args.max_upload_mb}")
    if args.folder is not None and not Path(args.folder).is_dir():
        what = "is a file, expected a folder of photos" if Path(args.folder).exists() else "no such folder"
        raise ValueError(f"{args.folder}: {what}")
    for flag, value in (("--labels", args.labels), ("--weights", args.weights)):
        if value is not None and Path(value).suffix and not Path(value).is_file():
            raise ValueError(f"{flag} {value}: no such file")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"mieruka: warning: listening on {args.host}, not only this machine: whoever reaches it can "
            f"run the model{' and see the photos in ' + args.folder if args.folder else ''}",
            file=sys.stderr,
        )

    from .serve import Viewer, create_app, listen, serve

    sock = listen(args.host, args.port)  # a busy port is told before the model loads
    try:
        loaded, device = _load(args)
        app = create_app(
            Viewer(loaded, device),
            args.folder,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            host=args.host,
        )
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        untrained = " [random weights]" if loaded.random_weights else ""
        print(
            f"mieruka serve: http://{shown}:{port}/  ({loaded.name}{untrained} on {device}; Ctrl+C stops it)",
            flush=True,
        )
        serve(app, sock)
    finally:
        sock.close()
    return 0


def run_layers(args) -> int:
    from .layers import LayerError, auto_layer, layout_describer, trace_layers

    loaded, device = _load(args, shapes_only=True)
    dummy = _dummy_input(loaded, device)
    image = (dummy.shape[-2], dummy.shape[-1])
    infos, _ = trace_layers(loaded.model, dummy)
    try:
        auto = auto_layer(loaded.model, dummy)
    except LayerError:
        auto = None
    describe = layout_describer(loaded.model, image)
    by_name = {info.name: info for info in infos}
    rows = []
    for name, module in loaded.model.named_modules():
        if not name:
            continue
        info = by_name.get(name)
        if info is None and not args.all:
            continue
        shape = "x".join(map(str, info.shape[1:])) if info and info.shape else "-"
        kind = describe(name, info) if info and info.shape else ""
        calls = "" if info is None or info.calls == 1 else f"ran {info.calls}x"
        mark = "<- auto" if name == auto else ""
        rows.append(("  " * name.count(".") + name, type(module).__name__, shape, kind, calls, mark))
    width = max(len(r[0]) for r in rows) if rows else 10
    kind_width = max(len(r[1]) for r in rows) if rows else 10
    weights = "" if loaded.weights not in ("random",) else " (untrained: shapes only)"
    print(
        f"{loaded.name}{weights}: {sum(p.numel() for p in loaded.model.parameters()):,} parameters; "
        f"output shapes for one {'x'.join(map(str, image))} input"
    )
    for row in rows:
        print(
            f"{row[0]:<{width}}  {row[1]:<{kind_width}}  {row[2]:<14} {row[3]:<24} {row[4]:<8} {row[5]}".rstrip()
        )
    if auto:
        print(f"automatic target layer: {auto}")
    else:
        print("no automatic target layer: name one with --layer")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mieruka")
    except PackageNotFoundError:
        return "0+unknown"


if __name__ == "__main__":
    sys.exit(main())
