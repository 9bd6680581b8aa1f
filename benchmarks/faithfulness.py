"""Deletion curves beside plain inference and the peers, in one process, interleaved rounds.

A deletion curve of S steps scores S + 1 inputs per image (nothing deleted, then S steps), so it
should cost about S batched inference passes: the target is at most 1.2x the time of S passes of
``torch.inference_mode()`` inference on the same batch, measured in the same run. Beside it, on the
same model, inputs and maps: torchcam's ``DeletionInsertionMetric`` (which always computes deletion
and insertion together, sharing the all-baseline point: 2S - 1 inputs per image) against mieruka's
deletion + insertion (2S + 2), and Quantus's ``PixelFlipping`` (the deletion curve, S points, one
NumPy step at a time, each step one pass over the batch).

torchvision ``resnet18`` (seeded random weights), batch 4 at 224 x 224, Grad-CAM maps of the
predicted class, S = 24 (Quantus needs a step that divides the image), zeros as the substrate (the mean colour after normalization), CPU by default.

    python benchmarks/faithfulness.py              # writes benchmarks/results/faithfulness.md
    python benchmarks/faithfulness.py --rounds 5 --steps 48
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import DEVICE, machine  # noqa: E402


class _GivenMaps:
    """A torchcam CAM extractor that returns the maps it was given, so every library scores the same maps."""

    def __init__(self, model, maps):
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **_):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    @contextlib.contextmanager
    def _hooks_off(self):
        yield


def implementations(model, x, maps, targets, steps: int, batch_size: int) -> dict:
    from mieruka.metrics import deletion, insertion

    def inference():
        with torch.inference_mode():
            for _ in range(steps):
                model(x)

    def mieruka_deletion():
        return deletion(model, x, maps, targets, steps=steps, batch_size=batch_size).auc()

    def mieruka_both():
        kwargs = {"steps": steps, "batch_size": batch_size}
        return (
            deletion(model, x, maps, targets, **kwargs).auc(),
            insertion(model, x, maps, targets, substrate="zeros", **kwargs).auc(),
        )

    def torchcam_both():
        from torchcam.metrics import DeletionInsertionMetric

        metric = DeletionInsertionMetric(
            _GivenMaps(model, maps), lambda logits: logits.softmax(-1), steps=steps, batch_size=batch_size
        )
        metric.update(x, class_idx=targets.tolist())
        return metric.summary()

    def quantus_deletion():
        import quantus

        pixels = x.shape[-2] * x.shape[-1]
        # Quantus wants a step that divides H*W, and spreads the map over the 3 colours, so a step of
        # 3 * H*W / S features is S steps of H*W / S pixels (S a multiple of 3 dividing 3 * H*W)
        metric = quantus.PixelFlipping(
            features_in_step=3 * pixels // steps,
            perturb_baseline=0.0,
            return_auc_per_sample=False,
            disable_warnings=True,
            display_progressbar=False,
        )
        curves = metric(
            model=model,
            x_batch=x.cpu().numpy(),
            y_batch=targets.cpu().numpy(),
            a_batch=maps[:, None].cpu().numpy(),
            device=str(DEVICE),
            softmax=True,
            channel_first=True,
        )
        return torch.tensor(curves)

    return {
        f"inference x{steps}": inference,
        "mieruka deletion": mieruka_deletion,
        "mieruka deletion + insertion": mieruka_both,
        "torchcam DeletionInsertionMetric": torchcam_both,
        "quantus PixelFlipping": quantus_deletion,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--steps", type=int, default=24, help="a multiple of 3 dividing 3*224*224, for Quantus"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="perturbed inputs per pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "faithfulness.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from mieruka import GradCAM

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval().to(DEVICE)
    x = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    result = GradCAM(model)(x)
    maps, targets = result.maps, result.targets
    impls = implementations(model, x, maps, targets, args.steps, args.batch_size)
    baseline = f"inference x{args.steps}"
    times: dict[str, list[float]] = {name: [] for name in impls}
    outputs, failed = {}, {}
    for round_ in range(-1, args.rounds):
        for name, run in impls.items():
            if name in failed or (name.startswith("quantus") and round_ > 0):  # slow: 1 round is enough
                continue
            start = time.perf_counter()
            try:
                out = run()
            except Exception as error:
                failed[name] = f"{type(error).__name__}: {error}".splitlines()[0][:120]
                print(f"{name} cannot run: {failed[name]}", file=sys.stderr, flush=True)
                continue
            if round_ >= 0:
                times[name].append(time.perf_counter() - start)
            print(f"round {round_}: {name} {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            outputs.setdefault(name, out)
    ours_deletion = outputs["mieruka deletion"].mean().item()
    ours_both = [v.mean().item() for v in outputs["mieruka deletion + insertion"]]
    notes = {}
    if "torchcam DeletionInsertionMetric" in outputs:
        theirs = outputs["torchcam DeletionInsertionMetric"]
        notes["torchcam DeletionInsertionMetric"] = (
            f"mean AUC diff: deletion {abs(theirs['deletion_auc'] - ours_both[0]):.1e}, "
            f"insertion {abs(theirs['insertion_auc'] - ours_both[1]):.1e}"
        )
    if "quantus PixelFlipping" in outputs:
        curves = outputs["quantus PixelFlipping"]
        # Quantus's curve has S points (after each step, none before); its area by the trapezoid rule
        # over the same shares as ours, prepended with the unperturbed score, is comparable
        from mieruka.metrics import deletion

        full = deletion(model, x, maps, targets, steps=args.steps)
        ours_points = full.scores[:, 1:]
        notes["quantus PixelFlipping"] = (
            f"max abs diff of the curve points: {(curves - ours_points.cpu()).abs().max().item():.1e} "
            "(ties inside a pixel's 3 colours are ordered by NumPy's unstable argsort)"
        )
    lines = [
        "# Deletion / insertion curves: cost in inference passes",
        "",
        machine(),
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; resnet18 (random weights), batch {args.batch} at "
        f"224x224, Grad-CAM maps, S = {args.steps} steps, {args.batch_size} perturbed inputs per pass, "
        f"{args.rounds} interleaved rounds (Quantus: 1); `python benchmarks/faithfulness.py`",
        "",
        f"Baseline: {args.steps} passes of `torch.inference_mode()` inference on the batch. Deletion "
        f"scores S + 1 = {args.steps + 1} inputs per image, so {(args.steps + 1) / args.steps:.2f}x is the "
        "floor; the target is <= 1.2x.",
        "",
        "| implementation | inputs scored per image | s per batch (median) | ratio to baseline | agreement with mieruka |",
        "|---|---|---|---|---|",
    ]
    inputs_per_image = {
        baseline: args.steps,
        "mieruka deletion": args.steps + 1,
        "mieruka deletion + insertion": 2 * args.steps + 2,
        "torchcam DeletionInsertionMetric": 2 * args.steps - 1,
        "quantus PixelFlipping": args.steps,
    }
    base = times[baseline]
    for name in impls:
        if name in failed:
            lines.append(f"| {name} | | cannot run: {failed[name]} | | |")
            continue
        samples = times[name]
        if name.startswith("quantus"):
            ratio = samples[0] / statistics.median(base)
        else:
            ratio = statistics.median(t / b for t, b in zip(samples, base))
        lines.append(
            f"| {name} | {inputs_per_image[name]} | {statistics.median(samples):.2f} | {ratio:.2f}x | "
            f"{notes.get(name, '')} |"
        )
    lines += ["", f"mieruka's mean deletion AUC {ours_deletion:.4f}, insertion (zeros) {ours_both[1]:.4f}."]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
