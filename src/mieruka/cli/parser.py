"""The command line's arguments: one parser per subcommand, with examples in each --help."""

from __future__ import annotations

import argparse
import sys

from .common import installed_version, model_kwarg

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


# The options that choose a task's targets: their defaults, and the tasks each applies to. They parse
# as None (so that a given one is known even at its default: one for another task is refused, never
# ignored); with_task_defaults() fills them in.
TASK_OPTIONS: dict[str, tuple[object, tuple[str, ...]]] = {
    "target": (None, ("classify", "binary", "multilabel", "regression", "segment", "detect")),
    "top_k": (1, ("classify", "multilabel")),
    "threshold": (0.5, ("multilabel",)),
    "direction": ("up", ("regression",)),
    "reference": (None, ("embed",)),
    "min_score": (0.5, ("detect",)),
    "max_objects": (None, ("detect",)),
}


def with_task_defaults(args: argparse.Namespace) -> frozenset[str]:
    """Fill in the task options left out; returns the ones given on the command line."""
    given = frozenset(dest for dest in TASK_OPTIONS if getattr(args, dest) is not None)
    for dest, (default, _) in TASK_OPTIONS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    return given


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what is wrong, and where the options are), not the usage block."""

    commands: tuple[str, ...] = ()  # the subcommands, on the top-level parser

    def error(self, message: str):
        # a stray argument after a command is reported by the top-level parser: point at that command's help
        command = next((word for word in sys.argv[1:2] if word in self.commands), None)
        where = f"{self.prog} {command}" if command else self.prog
        self.exit(2, f"{self.prog}: error: {message} (see '{where} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mieruka",
        description="See which part of an image a PyTorch vision model based its decision on (Grad-CAM).",
        epilog="examples:\n  mieruka explain samples/ --out out\n  mieruka layers --model resnet18\n"
        "run 'mieruka COMMAND --help' for each command's options",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
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
        default=None,
        metavar="K",
        help="explain the K most probable classes (multilabel: the K most probable labels) "
        f"(default: {TASK_OPTIONS['top_k'][0]})",
    )
    tasks.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="multilabel: explain each label whose sigmoid probability is at least P "
        f"(default: {TASK_OPTIONS['threshold'][0]})",
    )
    tasks.add_argument(
        "--direction",
        choices=["up", "down"],
        default=None,
        help=f"regression: what pushes the output up, or down (default: {TASK_OPTIONS['direction'][0]})",
    )
    tasks.add_argument(
        "--reference",
        metavar="IMAGE|VECTOR",
        help="embed: explain the cosine similarity to this image's embedding, or to a vector (.npy, .pt)",
    )
    tasks.add_argument(
        "--min-score",
        type=float,
        default=None,
        metavar="S",
        help="detect: explain every object detected with at least this score "
        f"(default: {TASK_OPTIONS['min_score'][0]})",
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
        "NanumGothic for Korean (with mieruka[korean]), then system fonts for other scripts",
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
    parser.commands = tuple(commands.choices)
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
    from .. import metric_names as defaults

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
    group.add_argument(
        "--model-kwargs",
        nargs="+",
        action="extend",
        type=_model_kwarg,
        metavar="KEY=VALUE",
        help="arguments of the architecture's builder, as the model was built for training (timm's "
        "create_model, torchvision's builders): global_pool=avg class_token=False, img_size=384; values "
        "are Python literals, else text",
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


def _model_kwarg(item: str) -> str:
    """argparse's check of one --model-kwargs item, kept as given: its own message, not "invalid value"."""
    try:
        model_kwarg(item)
        return item
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
