"""The Ray Data adapter (mieruka.scale.ray) and `mieruka explain --engine ray`, on a local Ray of 2 CPUs.

The adapter must give the local engine's maps, photo by photo, in whatever order Ray returns them;
an unreadable photo costs only its own row; gradients work under the caller's inference mode.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is not installed: pip install "mieruka[ray]"')
PHOTOS = 24


def mieruka(*args: str, code: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
    """The command in a subprocess; `code` runs first (to hide a package, say)."""
    run = f"import sys; {code or 'pass'}; from mieruka.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", run, *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A few dozen small synthetic photos of several sizes and formats, in two folders."""
    root = tmp_path_factory.mktemp("photos")
    generator = np.random.default_rng(0)
    for i in range(PHOTOS):
        height, width = int(generator.integers(40, 90)), int(generator.integers(40, 90))
        pixels = generator.integers(0, 80, (height, width, 3), dtype=np.uint8)
        top, left = int(generator.integers(0, height // 2)), int(generator.integers(0, width // 2))
        pixels[top : top + height // 3, left : left + width // 3] = generator.integers(150, 255, 3)
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.{'png' if i % 3 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A seeded random resnet18's weights: every actor builds the very same model from the file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def local_maps(photos, weights, tmp_path_factory) -> dict[str, dict]:
    """The local engine's records by photo (path -> record with its map), --save-maps as written."""
    from mieruka import CAM, load_model
    from mieruka.batch import RenderOptions, explain_files
    from mieruka.images import find_images

    out = tmp_path_factory.mktemp("local")
    loaded = load_model("resnet18", str(weights))
    paths = find_images([photos])
    records = {}
    for outcome in explain_files(
        paths, loaded, CAM(loaded.model), out, options=RenderOptions(save_maps=True), batch_size=5, workers=0
    ):
        (record,) = outcome.records
        records[str(outcome.path)] = {**record, "array": np.load(out / record["map"])}
    return records


@pytest.fixture(scope="module")
def ray_session():
    if not HAS_RAY:
        pytest.skip('Ray is not installed: pip install "mieruka[ray]"')
    import ray

    from mieruka.scale.ray import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()


def _spec(weights: Path):
    from mieruka.scale.ray import ModelSpec

    return ModelSpec("resnet18", str(weights), device="cpu")


def _assert_same_maps(rows: list[dict], local_maps: dict[str, dict]) -> None:
    by_path = {row["path"]: row for row in rows}
    assert set(by_path) == set(local_maps)
    for path, local in local_maps.items():
        row = by_path[path]
        assert (row["index"], row["label"], row["layer"]) == (local["index"], local["label"], local["layer"])
        assert row["probability"] == pytest.approx(local["probability"], abs=1e-6)
        assert row["map"].shape == local["array"].shape == (7, 7)
        assert local["array"].max() > 0  # a map with something in it, not two zeros compared
        np.testing.assert_allclose(row["map"], local["array"], rtol=0, atol=1e-6, err_msg=path)


@needs_ray
def test_adapter_maps_equal_the_local_engines_and_an_unreadable_photo_costs_its_row(
    ray_session, photos, weights, local_maps, tmp_path
):
    from mieruka.scale.ray import explain_dataset

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = [*local_maps, str(broken)]
    dataset = ray_session.data.read_binary_files(paths, include_paths=True)
    # two actors of half a CPU each: Ray's read tasks need a CPU of the two too
    rows = explain_dataset(dataset, _spec(weights), batch_size=5, concurrency=2, num_cpus=0.5).materialize()
    taken = rows.take_all()
    assert sorted(row["path"] for row in taken) == sorted(paths)
    (failed,) = [row for row in taken if row["error"] is not None]
    assert failed["path"] == str(broken) and "not a readable image" in failed["error"]
    assert failed["map"].shape == (0, 0) and failed["label"] is None
    _assert_same_maps([row for row in taken if row["error"] is None], local_maps)
    # Ray's own writer takes the rows as they are: the maps' tensor column, nulls for the failed photo
    rows.write_parquet(str(tmp_path / "parquet"))
    table = ray_session.data.read_parquet(str(tmp_path / "parquet")).take_all()
    assert len(table) == len(paths) and sum(row["error"] is not None for row in table) == 1


@needs_ray
def test_maps_on_the_photo_in_float16_with_pictures(ray_session, photos, weights, local_maps):
    from mieruka.batch import RenderOptions
    from mieruka.maps import normalize, to_photo
    from mieruka.models import load_model
    from mieruka.scale.ray import explain_dataset

    paths = sorted(local_maps)[:4]
    dataset = ray_session.data.from_items([{"path": path} for path in paths])  # the actors read the files
    rows = explain_dataset(
        dataset,
        _spec(weights),
        resolution="photo",
        dtype="float16",
        render=RenderOptions(format="jpg"),
        batch_size=2,
    ).take_all()
    preprocess = load_model("resnet18", str(weights)).preprocess
    for row in rows:
        photo = Image.open(row["path"])
        assert row["map"].dtype == np.float16 and row["map"].shape == (photo.height, photo.width)
        raw = torch.from_numpy(local_maps[row["path"]]["array"])
        expected = to_photo(normalize(raw[None])[0], preprocess.crop_box(photo.size), photo.size)[0][0]
        np.testing.assert_allclose(row["map"].astype(np.float32), expected.numpy(), atol=1e-3)
        picture = Image.open(__import__("io").BytesIO(row["picture"]))
        assert picture.format == "JPEG" and picture.size == photo.size


@needs_ray
def test_gradients_work_under_the_callers_inference_mode(ray_session, photos, weights, local_maps):
    """Ray's batch-inference recipe runs the model under torch.inference_mode(): the maps stay right,
    in this process and in actors whose __call__ is wrapped in it."""
    from mieruka.scale.ray import Explainer

    paths = sorted(local_maps)
    with torch.inference_mode():
        explainer = Explainer(_spec(weights))  # its parameters must still be able to take gradients
        columns = explainer({"path": np.array(paths[:6])})
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    _assert_same_maps(rows, {path: local_maps[path] for path in paths[:6]})

    class InferenceRecipe(Explainer):  # the documented recipe, as a user would write it around ours
        def __call__(self, batch):
            with torch.inference_mode():
                return super().__call__(batch)

    dataset = ray_session.data.from_items([{"path": path} for path in paths])
    rows = dataset.map_batches(
        InferenceRecipe,
        fn_constructor_kwargs={"model": _spec(weights)},
        batch_size=8,
        batch_format="numpy",
        compute=ray_session.data.ActorPoolStrategy(size=1),
    ).take_all()
    _assert_same_maps(rows, local_maps)


@needs_ray
def test_the_command_on_ray_writes_what_a_local_run_writes(
    ray_session, photos, weights, local_maps, tmp_path
):
    """`--engine ray` end to end, joining the running Ray by its address as a cluster user would."""
    address = ray_session.get_runtime_context().gcs_address
    flags = ["--model", "resnet18", "--weights", weights, "--save-maps", "--batch-size", "4"]
    run = mieruka("explain", photos, "--out", tmp_path / "ray", "--engine", "ray", "--address", address,
                  "--num-workers", "2", *flags)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"{PHOTOS} of {PHOTOS} image(s) explained at layer layer4 on Ray (2 worker(s))" in run.stdout
    assert "(results.jsonl, report.html)" in run.stdout and (tmp_path / "ray" / "report.html").is_file()
    local = mieruka("explain", photos, "--out", tmp_path / "local", *flags)
    assert local.returncode == 0, local.stderr
    records = [json.loads(line) for line in (tmp_path / "ray" / "results.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "local" / "results.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == [r["file"] for r in expected]  # input order, one record a photo
    for mine, theirs in zip(records, expected):
        assert set(mine) == set(theirs)
        same = {key: value for key, value in theirs.items() if key not in ("probability", "centre_energy")}
        assert {key: mine[key] for key in same} == same  # names of pictures, maps and report pictures too
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-6)
        assert mine["centre_energy"] == pytest.approx(theirs["centre_energy"], abs=2e-4)
        picture = Image.open(tmp_path / "ray" / mine["output"])
        assert picture.size == Image.open(mine["file"]).size
        for shown in ("thumb", "view", "heat"):  # the report's pictures, as the local run drew them
            ours, local_one = (
                np.asarray(Image.open(tmp_path / run / mine[shown]), float) for run in ("ray", "local")
            )
            assert ours.shape == local_one.shape and np.abs(ours - local_one).mean() < 2.0, shown
        np.testing.assert_allclose(
            np.load(tmp_path / "ray" / mine["map"]), np.load(tmp_path / "local" / theirs["map"]), atol=1e-6
        )
    assert not list((tmp_path / "ray").rglob("*.part"))


@needs_ray
def test_sigterm_stops_a_ray_run_as_it_stops_a_local_one(weights, tmp_path):
    """A scheduler's SIGTERM: exit status 130 and one line, no Ray stack dump, no half-written file,
    and results.jsonl listing what was written (so --overwrite can replace it)."""
    import signal

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):  # enough that the run is still going when the first picture is written
        Image.fromarray(np.full((64, 64, 3), i % 256, dtype=np.uint8)).save(folder / f"p{i:03d}.png")
    out = tmp_path / "out"
    code = "import sys; from mieruka.cli import main; sys.exit(main(sys.argv[1:]))"
    flags = ["explain", folder, "--out", out, "--engine", "ray", "--num-workers", "1", "--no-report", "-q"]
    flags += ["--model", "resnet18", "--weights", weights, "--batch-size", "2"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, flags)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and not list(out.glob("*.png")):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the signal"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "mieruka: interrupted" and "SIGTERM received" not in stderr
    assert not list(out.rglob("*.part"))
    listed = [json.loads(line)["output"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert 0 < len(listed) < 400 and sorted(listed) == sorted(p.name for p in out.glob("*.png"))


@needs_ray
def test_an_address_nobody_answers_at_is_one_line_and_status_2(photos, tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    run = mieruka("explain", photos, "--out", tmp_path, "--engine", "ray", "--address", f"127.0.0.1:{port}")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "no Ray cluster answers there" in run.stderr, run.stderr
    assert time.perf_counter() - started < 60 and not (tmp_path / "results.jsonl").exists()


def test_without_the_extra_engine_ray_says_what_to_install(photos, tmp_path):
    run = mieruka("explain", photos, "--out", tmp_path, "--engine", "ray", code="sys.modules['ray'] = None")
    assert run.returncode == 2
    assert run.stderr == 'mieruka: error: --engine ray needs Ray: pip install "mieruka[ray]"\n'


def test_ray_is_imported_only_when_asked_for():
    code = "import sys, mieruka, mieruka.cli; mieruka.cli.build_parser(); print('ray' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr
