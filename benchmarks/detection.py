"""Per-object Grad-CAM on a detector: mieruka (every object from one call) beside pytorch-grad-cam.

torchvision ``fasterrcnn_mobilenet_v3_large_fpn`` at its default size (short side 800, 1000
proposals; random weights, batch-norm statistics from noise, every detection kept), one 480 x 640
photo, layer ``backbone.body.16`` (mieruka's automatic choice). For K objects mieruka runs one
forward pass and K backward passes from the last backbone stage up; pytorch-grad-cam's tutorial runs
one call per object (``FasterRCNNBoxScoreTarget`` of that object), each a forward pass with gradients
and a backward pass into the parameters; plain ``torch.inference_mode()`` inference shows what the
forward pass alone costs. Interleaved rounds; medians of the time per image and of the per-round
ratios to mieruka.

Agreement: pytorch-grad-cam resizes its map over the whole padded batch onto the input; its raw map,
carried back through the detector's resize with ``mieruka.geometry.to_input``, is compared with
mieruka's after normalization by the maximum.

    python benchmarks/detection.py              # writes benchmarks/results/detection.md
    python benchmarks/detection.py --rounds 2 --objects 1,4
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import DEVICE, interleave, machine  # noqa: E402

MODEL = "fasterrcnn_mobilenet_v3_large_fpn"
LAYER = "backbone.body.16"


def build() -> nn.Module:
    """Random weights straight from initialization give features of about 1e-8 and one score for
    every detection; batch-norm statistics from a batch of noise and a gentler class head give
    detections that differ, as a trained model's do. The timing does not depend on it."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, box_score_thresh=0.0)
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            norm.momentum = 1.0
    model.backbone.train()
    with torch.no_grad():
        model.backbone(torch.rand(2, 3, 320, 320, generator=torch.Generator().manual_seed(1)))
        model.roi_heads.box_predictor.cls_score.weight.mul_(0.02)
    return model.eval().to(DEVICE)


def implementations(model: nn.Module, k: int) -> dict:
    from mieruka import GradCAM
    from mieruka.targets import DetectionTarget

    ours = GradCAM(model, LAYER)
    layer = model.get_submodule(LAYER)

    def inference(x):
        with torch.inference_mode():
            return model(x)

    def mieruka(x):
        return ours(x, DetectionTarget(min_score=0.0, max_objects=k)).maps.flatten(0, 1)

    def pytorch_grad_cam(x):
        from pytorch_grad_cam import GradCAM as PGC
        from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

        with torch.no_grad():  # the tutorial's first step: run the detector, then explain each box
            found = model(x)[0]
        maps = []
        with PGC(model=model, target_layers=[layer]) as cam:
            for j in range(k):
                target = FasterRCNNBoxScoreTarget([found["labels"][j]], [found["boxes"][j]])
                maps.append(torch.from_numpy(cam(input_tensor=x, targets=[target])))
        return torch.cat(maps)

    return {"inference": inference, "mieruka": mieruka, "pytorch-grad-cam": pytorch_grad_cam}


def agreement(model: nn.Module, x: torch.Tensor, k: int) -> float:
    """Max abs difference between mieruka's maps and pytorch-grad-cam's raw maps carried through the
    detector's resize, both normalized by their maximum (see the module docstring)."""
    import numpy as np
    from pytorch_grad_cam import GradCAM as PGC
    from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget

    from mieruka import GradCAM
    from mieruka.geometry import recording, to_input
    from mieruka.maps import normalize
    from mieruka.targets import DetectionTarget

    ours = GradCAM(model, LAYER)(x, DetectionTarget(min_score=0.0, max_objects=k)).maps[0]
    with torch.no_grad(), recording(model) as frames:
        found = model(x)[0]
    raws: list = []

    class Raw(PGC):
        def get_cam_image(self, *args, **kwargs):
            raws.append(super().get_cam_image(*args, **kwargs))
            return raws[-1]

    with Raw(model=model, target_layers=[model.get_submodule(LAYER)]) as cam:
        for j in range(k):
            cam(input_tensor=x, targets=[FasterRCNNBoxScoreTarget([found["labels"][j]], [found["boxes"][j]])])
    raw = torch.from_numpy(np.stack(raws)[:, 0]).clamp_min(0)[None]  # (1, K, h, w)
    theirs = normalize(to_input(raw, frames[0], tuple(x.shape[-2:])))[0][0]
    return float((ours.cpu() - theirs).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", default="1,4,8", help="K values, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "detection.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build()
    x = torch.rand(1, 3, 480, 640, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    lines = [
        "# Per-object Grad-CAM on a detector",
        "",
        machine(),
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {MODEL} (random weights, default size: "
        f"short side 800, 1000 proposals), one 480x640 image, layer {LAYER}, {args.rounds} interleaved "
        "rounds; `python benchmarks/detection.py`",
        "",
        "Times per image move with the load of a shared machine from "
        "row to row; the ratios, taken within each round, are the numbers to compare.",
        "",
        "| objects K | implementation | ms per image | ratio to mieruka |",
        "|---|---|---|---|",
    ]
    differences = []
    for k in (int(v) for v in args.objects.split(",")):
        # ratios are medians of per-round ratios to mieruka: a noisy neighbour slows a round's runs alike
        entries = interleave(implementations(model, k), x, args.rounds, 1, "mieruka", "mieruka")
        for name, entry in entries.items():
            if "failed" in entry:
                lines.append(f"| {k} | {name} | cannot run: {entry['failed']} | |")
                continue
            lines.append(f"| {k} | {name} | {entry['ms_per_image']:.0f} | {entry['ratio']:.2f}x |")
        differences.append((k, agreement(model, x, k), entries["pytorch-grad-cam"].get("max_abs_diff")))
        print("\n".join(lines[-3:]), flush=True)
    lines += [
        "",
        "Maps: max abs difference to mieruka's after normalization by the maximum, per K: pytorch-grad-cam's "
        "raw maps carried through the detector's resize | pytorch-grad-cam's own output (its map stretched "
        "over the padded batch, min-max scaled):",
        "",
        *(f"- K={k}: {like:.1e} | {own if own is None else f'{own:.2f}'}" for k, like, own in differences),
    ]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
