"""Grad-CAM on a vision transformer beside inference and the peers, in one process, interleaved rounds.

timm ``vit_small_patch16_224`` (random weights, a random head), batch 16, CPU by default: plain
``torch.inference_mode()`` inference, mieruka's GradCAM at its automatic layer (``blocks.11.norm1``,
tokens read as 1 prefix + 14x14), pytorch-grad-cam's GradCAM with the reshape_transform its tutorial
documents, and torchcam's GradCAM where it can run. Medians of per-image times and of per-round
ratios to inference; maps compared after min-max normalization.

    python benchmarks/transformers.py              # writes benchmarks/results/transformers.md
    python benchmarks/transformers.py --rounds 3
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
from run import DEVICE, _normalize, _upsample, interleave, machine  # noqa: E402

MODEL = "vit_small_patch16_224"
LAYER = "blocks.11.norm1"


def build() -> nn.Module:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False).eval()
    with torch.no_grad():  # timm starts ViT heads at zero: every map would be empty
        model.head.weight.normal_(0, 0.02)
    return model.to(DEVICE)


def reshape(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's documented ViT reshape: drop the class token, 14 x 14 grid, channels first."""
    return tokens[:, 1:, :].reshape(tokens.shape[0], 14, 14, tokens.shape[2]).permute(0, 3, 1, 2)


def implementations(model: nn.Module) -> dict:
    from mieruka import GradCAM

    ours = GradCAM(model)

    def inference(x):
        with torch.inference_mode():
            return model(x)

    def mieruka(x):
        return ours(x).maps

    def pytorch_grad_cam(x):
        from pytorch_grad_cam import GradCAM as PGC
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with torch.no_grad():
            classes = model(x).argmax(1)
        with PGC(model=model, target_layers=[model.get_submodule(LAYER)], reshape_transform=reshape) as cam:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])
        return torch.from_numpy(maps)

    def torchcam(x):
        from torchcam.methods import GradCAM as TorchcamGradCAM

        with TorchcamGradCAM(model, LAYER, input_shape=tuple(x.shape[1:])) as cam:
            scores = model(x)
            maps = cam(scores.argmax(1).tolist(), scores)[0]
        return _normalize(_upsample(maps, x.shape[-2:]))

    return {
        "inference": inference,
        "mieruka": mieruka,
        "pytorch-grad-cam": pytorch_grad_cam,
        "torchcam": torchcam,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "transformers.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build()
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    entries = interleave(implementations(model), x, args.rounds, 1, "inference", "mieruka")
    lines = [
        "# Grad-CAM on a vision transformer",
        "",
        machine(),
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {MODEL}, batch {args.batch}, layer {LAYER}, "
        f"{args.rounds} interleaved rounds; `python benchmarks/transformers.py`",
        "",
        "| implementation | ms per image | ratio to inference | max abs diff to mieruka |",
        "|---|---|---|---|",
    ]
    for name, entry in entries.items():
        if "failed" in entry:
            lines.append(f"| {name} | cannot run: {entry['failed']} | | |")
            continue
        diff = entry.get("max_abs_diff")
        lines.append(
            f"| {name} | {entry['ms_per_image']:.1f} | {entry['ratio']:.2f}x | "
            f"{'' if diff is None else f'{diff:.1e}'} |"
        )
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
