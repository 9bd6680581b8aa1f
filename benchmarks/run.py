"""Side-by-side speed and memory of Grad-CAM: plain inference, mieruka and the peers, in one process.

Every row times the same model, batch and target layer for all implementations in interleaved rounds
(so a noisy neighbour slows them all alike) and reports the median time per image and the median of the
per-round ratios to plain ``torch.inference_mode()`` inference. Peak memory growth is measured in a fresh
subprocess per implementation. The maps of all implementations are checked against each other.

    python benchmarks/run.py            # full table, written to benchmarks/results/
    python benchmarks/run.py --quick    # fewer rounds and rows, for a smoke test
    python benchmarks/run.py --device cuda --autocast bf16   # on a GPU (see benchmarks/gpu.sh)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
warnings.filterwarnings("ignore")

DEVICE = torch.device(os.environ.get("BENCH_DEVICE", "cpu"))
AUTOCAST = os.environ.get("BENCH_AUTOCAST", "")  # "" or "bf16": every implementation runs under autocast


def context():
    """Autocast for every timed call when asked for, so all implementations see the same precision."""
    if AUTOCAST == "bf16":
        return torch.autocast(DEVICE.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def make_input(batch: int, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(DEVICE)


LAYERS = {"resnet18": "layer4", "resnet50": "layer4", "vgg16": "features.29", "efficientnet_lite0": "bn2"}


def build_model(name: str) -> nn.Module:
    """Random weights are fine for timing; the default model loads its real weights (offline)."""
    if name == "efficientnet_lite0":
        from mieruka import load_model

        return load_model(device=DEVICE).model.eval()
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    # Random heads give maps spanning ~1e-15, which pytorch-grad-cam's additive epsilon flattens; a
    # larger head scales every map by one constant and keeps the agreement check meaningful.
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(1e6)
    return model.to(DEVICE)


def module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


def _upsample(maps: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def implementations(
    model: nn.Module, layer_name: str, k: int
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """name -> f(x) returning the normalized maps (N*k, H, W) for the top-k classes (k=1: predicted)."""
    from mieruka import GradCAM

    layer = module(model, layer_name)
    size = None
    mieruka_cam = GradCAM(model, layer_name)

    def inference(x):
        with torch.inference_mode():
            return model(x)

    def mieruka(x):
        result = mieruka_cam(x, top_k=k if k > 1 else None)
        return result.maps.reshape(-1, *x.shape[-2:])

    def top_k(x):
        with torch.no_grad():
            return model(x).topk(k, dim=1).indices

    def grad_cam_peer(x):
        from pytorch_grad_cam import GradCAM as PGC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        classes = top_k(x)
        maps = []
        with PGC(model=model, target_layers=[layer]) as cam:
            for j in range(k):
                maps.append(
                    torch.from_numpy(
                        cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, j]])
                    )
                )
        return torch.stack(maps, 1).reshape(-1, *x.shape[-2:])

    def captum_peer(x):
        from captum.attr import LayerGradCam

        classes = top_k(x)
        method = LayerGradCam(model, layer)
        maps = [
            _upsample(
                method.attribute(x, target=classes[:, j].tolist(), relu_attributions=True)[:, 0], x.shape[-2:]
            )
            for j in range(k)
        ]
        return _normalize(torch.stack(maps, 1).reshape(-1, *x.shape[-2:]))

    def torchcam_peer(x):
        from torchcam.methods import GradCAM as TorchcamGradCAM

        with TorchcamGradCAM(model, layer_name, input_shape=tuple(x.shape[1:])) as cam:
            scores = model(x)
            classes = scores.topk(k, dim=1).indices
            maps = [
                _upsample(cam(classes[:, j].tolist(), scores, retain_graph=j < k - 1)[0], x.shape[-2:])
                for j in range(k)
            ]
        return torch.stack(maps, 1).reshape(-1, *x.shape[-2:])

    del size
    return {
        "inference": inference,
        "mieruka": mieruka,
        "pytorch-grad-cam": grad_cam_peer,
        "captum": captum_peer,
        "torchcam": torchcam_peer,
    }


def _normalize(maps: torch.Tensor) -> torch.Tensor:
    low = maps.amin((-2, -1), keepdim=True)
    high = maps.amax((-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-30)


def interleave(impls: dict, x: torch.Tensor, rounds: int, warmup: int, baseline: str, reference: str) -> dict:
    """Time every implementation once per round, in turn; medians of times and of per-round ratios.

    Also compares each implementation's normalized maps with the `reference` one (max abs difference).
    """
    outputs: dict[str, torch.Tensor] = {}
    failed: dict[str, str] = {}
    times: dict[str, list[float]] = {name: [] for name in impls}
    for round_ in range(-warmup, rounds):
        for name, run in impls.items():
            if name in failed:
                continue
            gc.collect()
            synchronize()
            start = time.perf_counter()
            try:
                with context():
                    out = run(x)
            except Exception as error:  # a peer that cannot run this configuration (e.g. bf16 autocast)
                failed[name] = f"{type(error).__name__}: {error}".splitlines()[0][:120]
                continue
            synchronize()
            if round_ >= 0:
                times[name].append(time.perf_counter() - start)
            if name not in outputs and isinstance(out, torch.Tensor) and out.dim() == 3:
                outputs[name] = _normalize(out.detach().float().cpu())
    entries: dict[str, dict] = {name: {"failed": reason} for name, reason in failed.items()}
    for name, samples in times.items():
        if name in failed:
            continue
        ratios = [t / base for t, base in zip(samples, times[baseline])]
        entry = {
            "ms_per_image": 1000 * statistics.median(samples) / len(x),
            "ratio": statistics.median(ratios),
        }
        if name in outputs and reference in outputs and name != reference:
            entry["max_abs_diff"] = (outputs[name] - outputs[reference]).abs().max().item()
        entries[name] = entry
    return entries


def time_row(model_name: str, batch: int, k: int, rounds: int, warmup: int = 2) -> dict:
    model = build_model(model_name)
    x = make_input(batch)
    impls = implementations(model, LAYERS[model_name], k)
    row = {"model": model_name, "batch": batch, "k": k, "layer": LAYERS[model_name]}
    row["impls"] = interleave(impls, x, rounds, warmup, "inference", "mieruka")
    return row


SEVEN = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam", "eigencam"]
PGC_CLASSES = ["GradCAM", "GradCAMPlusPlus", "XGradCAM", "HiResCAM", "LayerCAM", "EigenGradCAM", "EigenCAM"]


def methods_row(rounds: int) -> dict:
    """All seven gradient-based methods at once (resnet50, batch 16) against one inference pass."""
    import pytorch_grad_cam

    from mieruka import CAM

    model = build_model("resnet50")
    x = make_input(16)
    cam = CAM(model, "layer4")

    def inference(x):
        with torch.inference_mode():
            return model(x)

    def ours(x):
        return cam.compare(x, SEVEN)

    def peers(x):
        for name in PGC_CLASSES:
            with getattr(pytorch_grad_cam, name)(model=model, target_layers=[model.layer4]) as peer:
                peer(input_tensor=x, targets=None)

    entries = interleave(
        {"inference": inference, "mieruka": ours, "pytorch-grad-cam": peers},
        x,
        rounds,
        1,
        "inference",
        "mieruka",
    )
    return {"model": "resnet50", "batch": 16, "what": "7 gradient methods", "impls": entries}


def scorecam_row(rounds: int, fast_channels: int = 64) -> dict:
    """Score-CAM on resnet18 layer4 (512 channels), one image: against its floor of 512 inference passes."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import ScoreCAM as TorchcamScoreCAM

    from mieruka import CAM

    torch.manual_seed(0)
    import torchvision

    model = torchvision.models.resnet18().eval().to(DEVICE)
    x = make_input(1)
    exact = CAM(model, "layer4", method="scorecam", batch_size=64)
    fast = CAM(model, "layer4", method="scorecam", batch_size=64, score_channels=fast_channels)
    with torch.no_grad():
        target = int(model(x).argmax())
    floor_batch = x.expand(64, -1, -1, -1).contiguous()

    def floor(x):
        with torch.inference_mode():
            for _ in range(512 // 64):
                model(floor_batch)

    def peer_pgc(x):
        with pytorch_grad_cam.ScoreCAM(model=model, target_layers=[model.layer4]) as peer:
            peer.batch_size = 64
            return torch.from_numpy(peer(input_tensor=x, targets=[ClassifierOutputTarget(target)]))

    def peer_torchcam(x):
        with TorchcamScoreCAM(model, "layer4", batch_size=64) as peer:
            with torch.no_grad():
                model(x)
            return _upsample(peer(target)[0], x.shape[-2:])

    impls = {
        "512 inference passes": floor,
        "mieruka": lambda x: exact(x, target).maps,
        f"mieruka top-{fast_channels} channels": lambda x: fast(x, target).maps,
        "pytorch-grad-cam": peer_pgc,
        "torchcam": peer_torchcam,
    }
    import contextlib as _c
    import io

    with _c.redirect_stderr(io.StringIO()):  # pytorch-grad-cam draws tqdm bars
        entries = interleave(impls, x, rounds, 0, "512 inference passes", "mieruka")
    return {"model": "resnet18", "batch": 1, "what": "Score-CAM", "impls": entries}


def ablation_row(model_name: str, rounds: int) -> dict:
    """Ablation-CAM, one image: mieruka re-runs only the part after the layer; pytorch-grad-cam the whole net."""
    import contextlib as _c
    import io

    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from mieruka import CAM

    model = build_model(model_name)
    layer = LAYERS[model_name]
    x = make_input(1)
    ours = CAM(model, layer, method="ablationcam", batch_size=256)
    with torch.no_grad():
        target = int(model(x).argmax())

    def inference(x):
        with torch.inference_mode():
            return model(x)

    def peer(x):
        with pytorch_grad_cam.AblationCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
            cam.batch_size = 64
            return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)]))

    impls = {"inference": inference, "mieruka": lambda x: ours(x, target).maps, "pytorch-grad-cam": peer}
    with _c.redirect_stderr(io.StringIO()):
        ours(x[:, :, :64, :64])  # warm up our side (the fx split is built once per layer)
        entries = interleave(impls, x, rounds, 0, "inference", "mieruka")
    return {"model": model_name, "batch": 1, "what": "Ablation-CAM", "impls": entries}


# ---- memory: one fresh process per implementation ------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(model_name: str, batch: int, impl: str) -> None:
    """Runs in a subprocess: peak RSS growth (MB) of one call, printed as JSON."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = build_model(model_name)
    x = make_input(batch)
    run = implementations(model, LAYERS[model_name], 1)[impl]
    with context():
        run(x[:1])  # load lazy modules, allocate caches that a second call would reuse
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with context():
            run(x)
        torch.cuda.synchronize()
        print(json.dumps({"peak_mb": (torch.cuda.max_memory_allocated() - before) / 2**20}))
        return
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    with context():
        run(x)
    peak = _rss_kib("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024}))


def memory_row(model_name: str, batch: int, impls: list[str]) -> dict[str, float]:
    peaks = {}
    for impl in impls:
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", model_name, str(batch), impl],
            capture_output=True,
            text=True,
            check=True,
            # glibc keeps freed blocks below a moving threshold and RSS then lags behind live memory;
            # a fixed threshold makes every large block come back at free(), so peaks are repeatable.
            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
        ).stdout
        peaks[impl] = json.loads(output.strip().splitlines()[-1])["peak_mb"]
    return peaks


# ---- end to end: a folder of photos ----------------------------------------------------------------


def make_folder(count: int, folder: Path) -> Path:
    """`count` JPEG photos of mixed sizes up to 4000x3000 (smooth random content), made once and kept."""
    import numpy as np
    from PIL import Image

    sizes = [
        (4000, 3000),
        (3000, 4000),
        (1920, 1080),
        (1024, 768),
        (640, 480),
        (2048, 1536),
        (800, 800),
        (451, 300),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"photo{i:03d}.jpg"
        if path.exists():
            continue
        width, height = sizes[i % len(sizes)]
        small = rng.integers(0, 256, (height // 50 + 2, width // 50 + 2, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path, quality=90)
    return folder


def folder_row(count: int, rounds: int, batch: int = 16, formats: tuple[str, ...] = ("png", "jpg")) -> dict:
    """`mieruka explain` over the folder vs bare decode + preprocess + inference, same model and batches."""
    from torch.utils.data import DataLoader

    from mieruka.batch import _Photos  # the same decoding path mieruka uses
    from mieruka.cli import main
    from mieruka.images import find_images
    from mieruka.models import load_model

    folder = make_folder(count, HERE / ".cache" / f"photos{count}")
    paths = find_images([folder])
    workers = min(4, os.cpu_count() or 1)

    def bare():
        loaded = load_model()
        loader = DataLoader(
            _Photos(paths, loaded.preprocess), batch_size=batch, num_workers=workers, collate_fn=list
        )
        for items in loader:
            with torch.inference_mode():
                loaded.model(torch.stack([item[1] for item in items]))

    def explain(fmt: str):
        def run():
            with tempfile.TemporaryDirectory() as out:
                args = [
                    "explain",
                    str(folder),
                    "--out",
                    out,
                    "--quiet",
                    "--batch-size",
                    str(batch),
                    "--format",
                    fmt,
                ]
                assert main(args) == 0

        return run

    runs = {"bare": bare, **{f"mieruka explain --format {fmt}": explain(fmt) for fmt in formats}}
    times: dict[str, list[float]] = {name: [] for name in runs}
    if rounds > 1:  # one untimed round: first calls, file cache
        for run in runs.values():
            run()
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    result = {"photos": count, "seconds": {name: statistics.median(t) for name, t in times.items()}}
    result["ratios"] = {
        name: statistics.median(t / b for t, b in zip(samples, times["bare"]))
        for name, samples in times.items()
    }
    return result


# ---- report -------------------------------------------------------------------------------------------


PEERS = ["mieruka", "pytorch-grad-cam", "captum", "torchcam"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    device = torch.cuda.get_device_name() if DEVICE.type == "cuda" else "CPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {device}{', bf16 autocast' if AUTOCAST else ''}, Python {platform.python_version()}"
    )


def extra_table(extras: list[dict]) -> str:
    """One line per implementation for the method rows (their baselines differ)."""
    lines = [
        "| row | implementation | ms per image | ratio to baseline | max map diff vs mieruka |",
        "|---|---|---|---|---|",
    ]
    for row in extras:
        title = f"{row['what']}, {row['model']}, batch {row['batch']}"
        for name, entry in row["impls"].items():
            if "failed" in entry:
                lines.append(f"| {title} | {name} | fails: {entry['failed']} | | |")
                continue
            diff = f"{entry['max_abs_diff']:.1e}" if "max_abs_diff" in entry else ""
            lines.append(
                f"| {title} | {name} | {entry['ms_per_image']:.0f} | {entry['ratio']:.2f}x | {diff} |"
            )
    return "\n".join(lines)


def table(rows: list[dict], memory: dict, folder: dict | None) -> str:
    lines = [
        "| model | batch | targets | inference | " + " | ".join(PEERS) + " | max map diff vs mieruka |",
        "|---|---|---|---|" + "---|" * len(PEERS) + "---|",
    ]
    for row in rows:
        impls = row["impls"]
        cells = [f"{impls['inference']['ms_per_image']:.1f} (1.00x)"]
        for peer in PEERS:
            entry = impls[peer]
            cells.append(
                "fails" if "failed" in entry else f"{entry['ms_per_image']:.1f} ({entry['ratio']:.2f}x)"
            )
        diff = max(impls[p].get("max_abs_diff", 0.0) for p in PEERS[1:])
        lines.append(
            f"| {row['model']} | {row['batch']} | {'top-' + str(row['k']) if row['k'] > 1 else 'top-1'} | "
            + " | ".join(cells)
            + f" | {diff:.1e} |"
        )
    text = "ms per image (ratio to inference in the same rounds, median of per-round ratios)\n\n" + "\n".join(
        lines
    )
    if memory:
        text += "\n\nPeak resident memory growth of one call, MB (fresh process each)\n\n"
        text += (
            "| model | batch | inference | "
            + " | ".join(PEERS)
            + " |\n|---|---|---|"
            + "---|" * len(PEERS)
            + "\n"
        )
        for (model_name, batch), peaks in memory.items():
            base = peaks["inference"]
            cells = [f"{peaks['inference']:.0f}"] + [
                f"{peaks[p]:.0f} ({peaks[p] / base:.2f}x)" for p in PEERS
            ]
            text += f"| {model_name} | {batch} | " + " | ".join(cells) + " |\n"
    if folder:
        text += (
            f"\nEnd to end over a folder of {folder['photos']} JPEG photos of mixed sizes up to 4000x3000 "
            "(default model, batch 16, overlays written at each photo's full size; seconds, ratio to bare "
            "decode + preprocess + inference)\n\n| run | seconds | ratio |\n|---|---|---|\n"
        )
        for name, seconds in folder["seconds"].items():
            text += f"| {name} | {seconds:.1f} | {folder['ratios'][name]:.2f}x |\n"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and rows")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--models", default="resnet18,resnet50,vgg16,efficientnet_lite0")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-batch1", action="store_true", help="skip the batch-1 rows")
    parser.add_argument(
        "--folder-photos", type=int, default=None, help="photos in the folder row (default: 64)"
    )
    parser.add_argument("--no-folder", action="store_true")
    parser.add_argument("--no-methods", action="store_true", help="skip the CAM-family rows")
    parser.add_argument("--memory-child", nargs=3, metavar=("MODEL", "BATCH", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="result file name (default: cpu.md, cuda.md ...)")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="(default: cpu)")
    parser.add_argument(
        "--autocast", default=None, choices=["bf16"], help="run every implementation under autocast"
    )
    args = parser.parse_args()
    global DEVICE, AUTOCAST
    if args.device:
        os.environ["BENCH_DEVICE"] = args.device  # memory children inherit the settings
        DEVICE = torch.device(args.device)
    if args.autocast:
        os.environ["BENCH_AUTOCAST"] = args.autocast
        AUTOCAST = args.autocast
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.memory_child[2])
        return
    torch.set_num_threads(args.threads)
    os.environ["BENCH_THREADS"] = str(args.threads)
    rounds = args.rounds or (3 if args.quick else 9)
    models = args.models.split(",")
    rows = []
    for model_name in models:
        big = 8 if model_name == "vgg16" else 16
        batches = [big] if args.quick or args.no_batch1 else [1, big]
        for batch in batches:
            rows.append(time_row(model_name, batch, 1, rounds))
            print(f"timed {model_name} batch {batch}", file=sys.stderr)
    for model_name in models[:1] if args.quick else ["resnet50"]:
        rows.append(time_row(model_name, 16, 5, max(1, rounds - 1), warmup=1))
        print(f"timed {model_name} top-5", file=sys.stderr)
    extras = []
    if not args.no_methods:
        extras.append(methods_row(max(1, rounds - 1)))
        print("timed the seven gradient methods", file=sys.stderr)
        extras.append(ablation_row("resnet18", 1 if args.quick else 3))
        if not args.quick and rounds >= 5:  # pytorch-grad-cam needs about five minutes a resnet50 image here
            extras.append(ablation_row("resnet50", 1))
        print("timed Ablation-CAM", file=sys.stderr)
        extras.append(scorecam_row(1 if args.quick or rounds < 5 else 3))
        print("timed Score-CAM", file=sys.stderr)
    memory = {}
    if not args.no_memory:
        memory[("resnet50", 16)] = memory_row("resnet50", 16, ["inference", *PEERS])
        print("measured memory", file=sys.stderr)
    photos = args.folder_photos or (16 if args.quick else 64)
    folder = None if args.no_folder else folder_row(photos, 1 if args.quick or args.folder_photos else 3)
    report = table(rows, memory, folder)
    if extras:
        report += (
            "\n\nCAM methods (ms per image; ratios to the row's baseline, the first line)\n\n"
            + extra_table(extras)
            + "\n"
        )
    header = f"# Grad-CAM benchmark\n\n{machine()}\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {rounds} rounds{' (quick)' if args.quick else ''}\n\n"
    print(report)
    RESULTS.mkdir(exist_ok=True)
    kind = DEVICE.type + (f"-{AUTOCAST}" if AUTOCAST else "")
    name = args.out or f"{kind}{'-quick' if args.quick else ''}.md"
    (RESULTS / name).write_text(header + report)
    record = {
        "rows": rows,
        "extras": extras,
        "memory": {f"{m} {b}": v for (m, b), v in memory.items()},
        "folder": folder,
    }
    (RESULTS / name).with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(f"written to {RESULTS / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
