"""Shared fixtures: tiny hand-weighted nets, random-weight torchvision models, devices, sample photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `pytest -n N --dist loadfile` (make test)
if _WORKERS > 1:  # the cores are shared out, to this process and the commands it starts
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    torch.set_num_threads(int(_THREADS))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = _THREADS


@pytest.fixture(params=DEVICES)
def torch_device(request) -> torch.device:
    return torch.device(request.param)


class TinyGapNet(nn.Module):
    """conv(1 -> 2 channels, identity-like kernels) -> ReLU -> global average pool -> linear.

    Hand-set weights make Grad-CAM closed-form: for class c the channel weights are W[c, k] / (h * w).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3, bias=True)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[[1.0]]], [[[-1.0]]]]))
            self.fc.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]]))
            self.fc.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


@pytest.fixture
def tiny_net() -> TinyGapNet:
    return TinyGapNet().eval()


def random_model(name: str, seed: int = 0) -> nn.Module:
    """A torchvision architecture with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).eval()


@pytest.fixture(scope="session")
def default_model():
    from mieruka import load_model

    return load_model()


def trained_once(tmp_path_factory, name: str, train, build) -> nn.Module:
    """`train()` in one process of the run; the other xdist workers wait for its weights and load them
    into `build()`, instead of each training its own copy. Training leaves torch's random state as it
    found it, so later tests see the same numbers on every worker."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        with torch.random.fork_rng():
            return train()
    from filelock import FileLock  # a dependency of torch

    path = tmp_path_factory.getbasetemp().parent / f"{name}.pt"
    with FileLock(f"{path}.lock"):
        if not path.exists():
            with torch.random.fork_rng():
                model = train()
            torch.save(model.state_dict(), f"{path}.partial")
            os.replace(f"{path}.partial", path)
            return model
    model = build()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


@pytest.fixture(scope="session")
def shapes_net(tmp_path_factory):
    """A small CNN trained on synthetic shapes (about 30 s, once per run)."""
    from synthetic import ShapesNet, train_shapes_net

    return trained_once(tmp_path_factory, "shapes_net", train_shapes_net, ShapesNet)


@pytest.fixture(scope="session")
def shapes_vit(tmp_path_factory):
    """A small vision transformer with a class-token head trained on synthetic shapes (once per run)."""
    from synthetic import build_shapes_vit, train_shapes_vit

    return trained_once(tmp_path_factory, "shapes_vit", train_shapes_vit, build_shapes_vit)


@pytest.fixture(scope="session")
def held_out():
    """Held-out synthetic images with their labels and ground-truth object masks."""
    from synthetic import make_shapes

    return make_shapes(300, seed=999)


def hook_count(model: nn.Module) -> int:
    """Hooks registered on any module of `model`: a call must leave as many as it found."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    )


def model_state(model: nn.Module) -> tuple:
    """What a call must leave as it found: every module's mode, each parameter's flags and .grad, hooks."""
    return (
        [m.training for m in model.modules()],
        [(p.requires_grad, p.grad) for p in model.parameters()],
        hook_count(model),
    )


# ---- a real browser --------------------------------------------------------------------------------

SCREENSHOTS = ROOT / "out" / "screenshots"  # where the browser tests leave what they saw
CHROMIUM_FLAGS = [  # a closed network: no background connections, no sandbox as root, no GPU
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system's Chromium (Debian's ``chromium`` package), or MIERUKA_CHROMIUM: Playwright's own
    browser download cannot be reached from our machines."""
    import os
    import shutil

    given = os.environ.get("MIERUKA_CHROMIUM")
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, pointed at the system Chromium (skips without one)."""
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium: install Debian's chromium package (make test does, as root) or set MIERUKA_CHROMIUM"
        )
    return {**browser_type_launch_args, "executable_path": path, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# ---- the quick subset ------------------------------------------------------------------------------

TRAINED = {"shapes_net", "shapes_vit", "pairs_net", "shapes_segmenter"}  # fixtures that train a model
END_TO_END = {  # modules that run the command in subprocesses
    "test_cli",
    "test_tasks",
    "test_evaluate",
    "test_resume",
    "test_ray",
}
BROWSER = {"page", "browser", "context"}  # pytest-playwright's fixtures: a real Chromium


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: trains a model or runs the command end to end; `make test-quick` leaves it out"
    )
    config.addinivalue_line("markers", "browser: drives a real Chromium through Playwright")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        fixtures = set(getattr(item, "fixturenames", ()))
        if BROWSER & fixtures:
            item.add_marker(pytest.mark.browser)
        if TRAINED & fixtures or BROWSER & fixtures or (module and module.__name__ in END_TO_END):
            item.add_marker(pytest.mark.slow)
