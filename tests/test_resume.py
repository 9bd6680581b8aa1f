"""Folder runs that survive interruption: a real signal to a running `mieruka explain`, then --resume.

Whatever the moment of the kill, the resumed folder holds exactly one record per photo, only whole
files, and the maps an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

PHOTOS = 30


def command(*args) -> list[str]:
    return [sys.executable, "-m", "mieruka", "explain", *map(str, args)]


def mieruka(*args) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """30 small photos of a few sizes and a 5-class resnet18 with seeded weights in a file."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    for i in range(PHOTOS):
        folder = root / "photos" / ("a" if i % 3 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (40 + i, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), root / "net.pth")
    model = ["--model", "resnet18", "--num-classes", "5", "--weights", root / "net.pth", "--batch-size", "2"]
    return {"photos": root / "photos", "model": model, "root": root}


@pytest.fixture(scope="module")
def uninterrupted(dataset) -> dict[str, Path]:
    """The same runs left alone: the answers an interrupted and resumed run must give."""
    runs = {}
    for name, extra in (("png", []), ("npy", ["--format", "npy", "--shard-size", "4"])):
        out = dataset["root"] / f"whole-{name}"
        run = mieruka(dataset["photos"], "--out", out, *dataset["model"], "-q", *extra)
        assert run.returncode == 0, run.stderr
        runs[name] = out
    return runs


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def by_photo(out: Path) -> dict[str, dict]:
    found = records(out)
    names = [Path(r["file"]).as_posix() for r in found]
    assert len(names) == len(set(names)) == PHOTOS, "every photo has exactly one record"
    return {Path(r["file"]).relative_to(r["file"].split("photos")[0] + "photos").as_posix(): r for r in found}


def interrupt(args: list, out: Path, how: signal.Signals, lines: int) -> None:
    """Start a folder run, wait until results.jsonl holds `lines` lines, then send `how`."""
    process = subprocess.Popen(
        command(*args, "--out", out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and results.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before the signal: give it more photos"
    process.send_signal(how)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 130), stderr
    assert 0 < results.read_bytes().count(b"\n") < PHOTOS, "interrupted partway"
    if how != signal.SIGKILL:  # a run stopped by Ctrl-C or SIGTERM removes what it was writing
        assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
        # and lists every picture it finished, so no later run (even in another format) leaves orphans
        listed = {record.get("output") for record in records(out)}
        assert {p.relative_to(out).as_posix() for p in out.rglob("*.png")} <= listed


def _default_sigint() -> None:
    """Ctrl-C's usual meaning in the child even when the suite runs as a background job, whose
    children start with SIGINT ignored (POSIX), so that Python would never raise KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_while_a_photo_is_logged_still_lists_every_picture(dataset, tmp_path, how):
    """The signal lands while the run writes a photo's line (where a race once left pictures drawn
    after the log had closed): that line is finished, every picture already drawn is listed too."""
    out = tmp_path / "out"
    code = (
        "import os, sys\n"
        "from mieruka import runs\n"
        "append, calls = runs.ResultsLog.append, []\n"
        "def stopping(self, records):\n"
        "    calls.append(1)\n"
        f"    if len(calls) == 3: os.kill(os.getpid(), {int(how)})\n"
        "    append(self, records)\n"
        "runs.ResultsLog.append = stopping\n"
        "from mieruka.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, "explain", dataset["photos"], *dataset["model"], "-q", "--out", out],
        capture_output=True, text=True, timeout=600, preexec_fn=_default_sigint,
    )  # fmt: skip
    assert run.returncode == 130, run.stderr
    found = records(out)
    assert 3 <= len(found) < PHOTOS
    drawn = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert drawn and drawn <= {record.get("output") for record in found}


def test_a_stopped_run_with_a_contact_sheet_writes_the_page_its_records_name(dataset, tmp_path):
    """The page a stopped run was filling is written: every page a record names exists."""
    out = tmp_path / "out"
    code = (
        "import os, signal, sys\n"
        "from mieruka import runs\n"
        "append, calls = runs.ResultsLog.append, []\n"
        "def stopping(self, records):\n"
        "    calls.append(1)\n"
        "    append(self, records)\n"
        "    if len(calls) == 3: os.kill(os.getpid(), signal.SIGINT)\n"
        "runs.ResultsLog.append = stopping\n"
        "from mieruka.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, "explain", dataset["photos"], *dataset["model"], "-q", "--sheet", "--out", out],
        capture_output=True, text=True, timeout=600, preexec_fn=_default_sigint,
    )  # fmt: skip
    assert run.returncode == 130, run.stderr
    pages = {record["sheet"] for record in records(out) if "sheet" in record}
    assert pages and all((out / page).is_file() for page in pages)


def maps_of(out: Path) -> dict[str, np.ndarray]:
    return {name: np.load(out / r["shard"])[r["row"]] for name, r in by_photo(out).items()}


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_killed_run_is_finished_by_resume(dataset, uninterrupted, tmp_path, how):
    out = tmp_path / "out"
    args = [dataset["photos"], *dataset["model"], "-q"]
    interrupt(args, out, how, lines=3)

    run = mieruka(*args, "--out", out)
    assert run.returncode == 2 and "--resume" in run.stderr  # not resumed unless asked
    run = mieruka(*args, "--out", out, "--resume")
    assert run.returncode == 0, run.stderr

    resumed, whole = by_photo(out), by_photo(uninterrupted["png"])
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]
    pictures = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pictures == sorted(r["output"] for r in resumed.values())  # no orphan, none missing
    for name, record in resumed.items():
        expected = whole[name]
        assert (record["label"], record["output"]) == (expected["label"], expected["output"])
        assert record["probability"] == pytest.approx(expected["probability"], abs=1e-5)
        with Image.open(out / record["output"]) as picture:
            picture.load()  # decodes: not truncated
            drawn = np.asarray(picture).astype(int)
        reference = np.asarray(Image.open(uninterrupted["png"] / expected["output"])).astype(int)
        assert np.abs(drawn - reference).max() <= 2  # other batches: float rounding, not other maps


def test_a_killed_maps_only_run_is_finished_by_resume(dataset, uninterrupted, tmp_path):
    out = tmp_path / "out"
    args = [dataset["photos"], *dataset["model"], "-q", "--format", "npy", "--shard-size", "4"]
    interrupt(args, out, signal.SIGKILL, lines=4)

    run = mieruka(*args, "--out", out, "--resume")
    assert run.returncode == 0, run.stderr
    assert not list(out.rglob("*.png")) and not [p for p in out.rglob("*") if p.name.endswith(".part")]
    resumed, whole = maps_of(out), maps_of(uninterrupted["npy"])
    assert sorted(resumed) == sorted(whole)
    for name, found in resumed.items():
        assert found.dtype == np.float16 and found.shape == (7, 7)  # layer4 of the 224-pixel crop
        np.testing.assert_allclose(found.astype(np.float32), whole[name].astype(np.float32), atol=1e-3)


def test_shards_hold_the_librarys_maps(dataset, uninterrupted):
    from mieruka import CAM, load_image, load_model
    from mieruka.maps import normalize

    loaded = load_model("resnet18", dataset["root"] / "net.pth", num_classes=5)
    cam = CAM(loaded.model, "layer4")
    for name, found in maps_of(uninterrupted["npy"]).items():
        inputs = loaded.preprocess(load_image(dataset["photos"] / name)).unsqueeze(0)
        expected = normalize(cam(inputs).raw)[0][0].numpy()
        np.testing.assert_allclose(found.astype(np.float32), expected, atol=1e-3)


def test_a_shard_holds_shard_size_photos_whatever_the_batch_size(dataset, tmp_path):
    out = tmp_path / "out"
    model = [*dataset["model"][:-1], "3"]  # batches of 3 photos, shards of 4
    run = mieruka(dataset["photos"], "--out", out, *model, "-q", "--format", "npy", "--shard-size", "4")
    assert run.returncode == 0, run.stderr
    rows = [np.load(path, mmap_mode="r").shape[0] for path in sorted(out.glob("maps-*.npy"))]
    assert rows == [4] * (PHOTOS // 4) + [PHOTOS % 4]
    assert sorted((r["shard"], r["row"]) for r in by_photo(out).values()) == [
        (f"maps-{i // 4:05d}.npy", i % 4) for i in range(PHOTOS)
    ]


def test_resume_with_other_settings_is_refused_in_one_line(dataset, uninterrupted, tmp_path):
    out = uninterrupted["png"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    changes = (
        (["--method", "gradcam++"], "--method"),
        (["--format", "jpg"], "--format"),
        (["--model-kwargs", "zero_init_residual=True"], "--model-kwargs"),
    )
    for extra, named in changes:
        run = mieruka(dataset["photos"], "--out", out, *dataset["model"], "--resume", *extra)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert named in run.stderr and "--overwrite" in run.stderr and "Traceback" not in run.stderr
    other = tmp_path / "other.pth"
    torch.manual_seed(2)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), other)
    model = [*dataset["model"][:-3], other, "--batch-size", "2"]
    run = mieruka(dataset["photos"], "--out", out, *model, "--resume")
    assert run.returncode == 2 and "--weights" in run.stderr and "sha256" in run.stderr
    run = mieruka(dataset["photos"], "--out", out, "--resume", "--overwrite")
    assert run.returncode == 2 and "exclude each other" in run.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # untouched


def test_a_torn_last_line_neither_blocks_resume_nor_overwrite(dataset, uninterrupted, tmp_path):
    """A power cut or a full disk can leave half a line: --resume drops it and finishes the run, and
    --overwrite replaces the run; neither asks the user to edit results.jsonl."""
    for flag in ("--resume", "--overwrite"):
        out = tmp_path / flag.strip("-")
        shutil.copytree(uninterrupted["png"], out)
        with (out / "results.jsonl").open("a") as stream:
            stream.write('{"file": "' + str(dataset["photos"] / "b" / "p00.png") + '", "task": "clas')
        run = mieruka(dataset["photos"], "--out", out, *dataset["model"], "-q", flag)
        assert run.returncode == 0, run.stderr
        assert sorted(by_photo(out)) == sorted(by_photo(uninterrupted["png"]))


def test_resume_drops_a_torn_line_and_missing_pictures(dataset, tmp_path):
    """runs.resume on a folder as a kill leaves it, without running the model."""
    from mieruka.runs import RUN, resume

    out = tmp_path / "out"
    out.mkdir()
    settings = {"model": "resnet18", "method": ["gradcam"]}
    (out / RUN).write_text(json.dumps({"mieruka": "0", "cwd": os.getcwd(), **settings}))
    lines = [{"file": f"/photos/p{i}.png", "output": f"p{i}_x.png"} for i in range(4)]
    lines.insert(1, {"file": "/photos/bad.png", "error": "cannot be read"})
    for name in ("p0_x.png", "p1_x.png", "p3_x.png"):
        (out / name).write_bytes(b"png")
    (out / "p2_x.png").write_bytes(b"")  # renamed into place only when whole: an empty one is not ours
    (out / ".p4_x.png.abcd1234.part").write_bytes(b"half")
    text = "".join(json.dumps(line) + "\n" for line in lines) + json.dumps(lines[0])[:20]
    (out / "results.jsonl").write_text(text)

    resumed = resume(out, settings)
    assert resumed.done == {"/photos/p0.png", "/photos/p1.png"}  # not bad.png, p2 (empty), p3 (the last)
    assert [json.loads(line)["file"] for line in (out / "results.jsonl").read_text().splitlines()] == [
        "/photos/p0.png",
        "/photos/p1.png",
    ]
    assert sorted(resumed.names) == ["p0_x.png", "p1_x.png"]
    assert not (out / ".p4_x.png.abcd1234.part").exists()
    with pytest.raises(ValueError, match=r'--method was \["gradcam"\], now \["layercam"\]'):
        resume(out, {**settings, "method": ["layercam"]})


def test_strip_photos_name_only_files_that_are_written_so_resume_has_nothing_to_redo(tmp_path):
    """A 10000 x 20 photo's crop covers no pixel of its report view: its record names no heat layer
    (it would never be written), every file a record names exists, and --resume keeps that photo."""
    from mieruka.outputs import records_files

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "samples" / "cat.jpg", photos / "cat.jpg")
    Image.new("RGB", (10000, 20), (200, 30, 30)).save(photos / "wide.png")
    Image.new("RGB", (20, 10000), (30, 200, 30)).save(photos / "tall.png")
    out = tmp_path / "out"
    common = (photos, "--model", "resnet18", "--random-weights", "--out", out, "--report")
    first = mieruka(*common)
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all("error" not in r for r in records)
    assert all((out / name).is_file() for r in records for name in records_files(r))
    assert {Path(r["file"]).name for r in records if "heat" in r} == {"cat.jpg"}
    again = mieruka(*common[:-1], "--resume")
    assert again.returncode == 0, again.stderr
    # only the last photo recorded is done again (a kill may have cut its lines short), not tall.png
    assert "1 of 1 image(s) explained" in again.stdout and "2 done before" in again.stdout, again.stdout
