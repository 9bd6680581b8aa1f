"""The CUDA path gives the CPU's maps and metrics: every model family, method and metric, side by side.

Skipped without a CUDA device (CI has none); `benchmarks/gpu.sh` runs it on a GPU machine. TF32 is
turned off so that a difference means a bug, not the tensor cores' 10-bit mantissa.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from conftest import SAMPLES
from mieruka import CAM
from mieruka.methods import METHODS
from mieruka.metrics import deletion, insertion, parameter_randomization, road

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_float32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _both(model: nn.Module, inputs: torch.Tensor, methods: list[str], targets=None, **options):
    """The same CAM call on the CPU and on CUDA: {method: (cpu result, cuda result)}."""
    model = model.eval()
    on_cpu = CAM(model, **options).compare(inputs, methods, targets)
    model_cuda = model.to(CUDA)
    on_cuda = CAM(model_cuda, **options).compare(inputs.to(CUDA), methods, targets)
    model.cpu()
    return {name: (on_cpu[name], on_cuda[name]) for name in methods}


def _assert_same(cpu, cuda, tolerance: float = 2e-4) -> None:
    assert cuda.maps.device.type == "cuda"
    difference = (cpu.maps - cuda.maps.cpu()).abs().max().item()
    assert difference < tolerance, f"{cpu.method}: max difference {difference:.2e}"
    assert torch.equal(cpu.targets, cuda.targets.cpu())


CNN_METHODS = [name for name, m in METHODS.items() if m.kind != "attention"]


def test_every_cam_method_on_a_cnn():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    for cpu, cuda in _both(model, x, CNN_METHODS, score_channels=64).values():
        _assert_same(cpu, cuda)


def test_a_vision_transformer_with_token_layouts_and_attention_methods():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=96)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.02)
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    results = _both(model, x, ["gradcam", "gradcam++", "layercam"])
    results |= _both(model, x, ["rollout", "gae"], target_layer=None)
    for cpu, cuda in results.values():
        _assert_same(cpu, cuda)
        assert cuda.maps.shape[-2:] == (96, 96)


def test_a_detector_and_a_segmenter():
    from mieruka.targets import DetectionTarget, SegmentationTarget
    from test_detection import build_detector
    from test_segmentation import _deeplab

    x = torch.rand(1, 3, 120, 100, generator=torch.Generator().manual_seed(0))
    objects = DetectionTarget(min_score=0.05, max_objects=3)
    for cpu, cuda in _both(build_detector(), x, ["gradcam", "eigencam"], objects).values():
        assert cpu.maps.shape == cuda.maps.shape == (1, 3, 120, 100)
        assert torch.equal(cpu.targets, cuda.targets.cpu())
        assert (cpu.maps - cuda.maps.cpu()).abs().max() < 1e-3  # roi_align on CUDA sums in another order
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    for cpu, cuda in _both(_deeplab(), x, ["gradcam"], SegmentationTarget(5)).values():
        _assert_same(cpu, cuda, tolerance=1e-3)


def test_metrics_on_cuda_equal_the_cpus():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 2])

    def every_metric(model, x, maps, targets):
        generator = torch.Generator(device=x.device).manual_seed(0)
        return (
            deletion(model, x, maps, targets, steps=8).scores,
            insertion(model, x, maps, targets, steps=8).scores,
            road(model, x, maps, targets, noise=0.0, generator=generator).morf,
        )

    on_cpu = every_metric(model, x, maps, targets)
    on_cuda = every_metric(model.to(CUDA), x.to(CUDA), maps.to(CUDA), targets.to(CUDA))
    for cpu, cuda in zip(on_cpu, on_cuda):
        assert cuda.device.type == "cuda"
        assert (cpu - cuda.cpu()).abs().max() < 1e-4

    def explain(net, inputs):
        return CAM(net, "layer4").compare(inputs, ["gradcam"], targets.to(inputs.device))["gradcam"].maps

    sanity = parameter_randomization(model, x.to(CUDA), explain)
    model.cpu()
    reference = parameter_randomization(model, x, explain)
    # a map that became constant has no ranking: NaN on both devices
    assert torch.allclose(sanity.spearman.cpu(), reference.spearman, atol=1e-3, equal_nan=True)


@pytest.mark.parametrize("command", ["explain", "evaluate"])
def test_the_command_runs_on_cuda(tmp_path, command):
    extra = ["--metrics", "deletion,insertion,drop", "--steps", "8"] if command == "evaluate" else []
    where = ["--device", "cuda", "--out", str(tmp_path / "out")]
    run = subprocess.run(
        [sys.executable, "-m", "mieruka", command, str(SAMPLES), *where, *extra],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out").is_dir()


def test_a_jpg_folder_run_on_cuda_draws_and_encodes_the_cpus_pictures(tmp_path):
    """--format jpg on CUDA keeps each picture on the GPU until nvJPEG has encoded it: the files
    decode to what the CPU run wrote (JPEG's own noise apart)."""
    from PIL import Image

    runs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        command = ["explain", str(SAMPLES), "--device", device, "--out", str(out), "--format", "jpg"]
        run = subprocess.run([sys.executable, "-m", "mieruka", *command], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        runs[device] = sorted(out.glob("*.jpg"))
    assert [p.name for p in runs["cpu"]] == [p.name for p in runs["cuda"]] and runs["cpu"]
    for on_cpu, on_cuda in zip(runs["cpu"], runs["cuda"]):
        a, b = (np.asarray(Image.open(p), dtype=float) for p in (on_cpu, on_cuda))
        assert a.shape == b.shape and np.abs(a - b).mean() < 3.0, on_cpu.name
