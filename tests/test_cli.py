"""The `mieruka` command end to end, through a real subprocess, checking the files it writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from conftest import SAMPLES


def mieruka(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mieruka", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.rglob("*") if p.name.endswith(".part")]


def test_explain_the_samples_with_the_default_model(tmp_path):
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        SAMPLES / "coffee.jpg",
        "--out",
        tmp_path,
        "--top-k",
        "2",
        "--save-maps",
    )
    assert run.returncode == 0, run.stderr
    records = _records(tmp_path)
    assert [(Path(r["file"]).name, r["rank"]) for r in records] == [
        ("cat.jpg", 1), ("cat.jpg", 2), ("coffee.jpg", 1), ("coffee.jpg", 2)
    ]  # fmt: skip
    cat = records[0]
    assert 281 <= cat["index"] <= 285 and cat["layer"] == "bn2" and len(cat["top5"]) == 5
    assert cat["probability"] == cat["top5"][0]["probability"]
    overlay = Image.open(cat["output"])
    assert overlay.size == Image.open(SAMPLES / "cat.jpg").size
    assert np.load(cat["map"]).shape == (7, 7)
    assert "cat.jpg: " in run.stdout and cat["output"] in run.stdout
    assert not _leftovers(tmp_path)


def test_overlay_marks_only_the_centre_crop(tmp_path):
    run = mieruka("explain", SAMPLES / "rocket.jpg", "--out", tmp_path, "--alpha", "0.6", "--no-label")
    assert run.returncode == 0, run.stderr
    photo = np.asarray(Image.open(SAMPLES / "rocket.jpg")).astype(int)
    overlay = np.asarray(Image.open(_records(tmp_path)[0]["output"])).astype(int)
    # 640x427 is resized to 383x256 and cropped at columns 80..304: photo columns 133.7..507.0
    assert np.array_equal(overlay[:, :133], photo[:, :133]) and np.array_equal(
        overlay[:, 508:], photo[:, 508:]
    )
    assert np.abs(overlay[:, 135:506] - photo[:, 135:506]).mean(axis=(0, 2)).min() > 5


def test_the_overlay_names_its_label_in_a_corner_unless_no_label(tmp_path):
    plain, labelled = tmp_path / "plain", tmp_path / "labelled"
    assert mieruka("explain", SAMPLES / "cat.jpg", "--out", plain, "--no-label").returncode == 0
    run = mieruka("explain", SAMPLES / "cat.jpg", "--out", labelled)
    assert run.returncode == 0, run.stderr
    photo = np.asarray(Image.open(SAMPLES / "cat.jpg")).astype(int)
    without = np.asarray(Image.open(_records(plain)[0]["output"])).astype(int)
    with_label = np.asarray(Image.open(_records(labelled)[0]["output"])).astype(int)
    # 451x300 is resized to 385x256 and cropped to 224x224: photo columns 94.0..357.0, rows 18.8..281.3
    assert np.array_equal(without[:, :93], photo[:, :93])  # the plain overlay: the corner is the photo
    rows, columns = np.nonzero((with_label != without).any(-1))
    assert rows.min() > 0 and rows.max() < 50 and columns.min() > 0 and columns.max() < 300
    assert (with_label[:18, :93] != photo[:18, :93]).any()


@pytest.mark.parametrize("style", ["classic", "panel", "heatmap"])
def test_styles(tmp_path, style):
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--out", tmp_path, "--style", style, "--colormap", "inferno"
    )
    assert run.returncode == 0, run.stderr
    image = Image.open(_records(tmp_path)[0]["output"])
    assert image.mode == "RGB"
    if style != "panel":
        assert image.size == (451, 300)


def test_fine_tuned_resnet18_end_to_end(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_text("daisy\ndandelion\nrose\nsunflower\ntulip\n")
    out = tmp_path / "out"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "5",
        "--weights", tmp_path / "ft.pth", "--labels", tmp_path / "labels.txt", "--out", out, "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.splitlines()[0])
    assert (
        record["label"] in {"daisy", "dandelion", "rose", "sunflower", "tulip"}
        and record["layer"] == "layer4"
    )
    assert Path(record["output"]).name == f"cat_{record['label']}.png"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "5", "--weights", tmp_path / "ft.pth",
        "--labels", tmp_path / "labels.txt", "--out", out, "--target", "tulip",
    )  # fmt: skip
    assert run.returncode == 0 and _records(out)[0]["label"] == "tulip"


def test_folder_run_keeps_good_results_when_one_file_is_bad(tmp_path):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    for name in ("cat.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(SAMPLES / name, photos / name)
    shutil.copy(SAMPLES / "cat.jpg", photos / "nested" / "cat2.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    run = mieruka("explain", photos, "--out", out, "--batch-size", "2", "--workers", "2")
    assert run.returncode == 2
    assert "broken.jpg: not a readable image" in run.stderr and "Traceback" not in run.stderr
    records = _records(out)
    assert sorted(Path(r["file"]).name for r in records if "error" not in r) == [
        "cat.jpg", "cat2.jpg", "coffee.jpg", "rocket.jpg"
    ]  # fmt: skip
    assert [Path(r["file"]).name for r in records if "error" in r] == ["broken.jpg"]
    assert len(list(out.glob("*.png"))) == 4 and not _leftovers(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "missing.jpg"], "missing.jpg: no such file"),
        (["explain", "SAMPLE", "--layer", "features.99"], "no layer named 'features.99'"),
        (["explain", "SAMPLE", "--model", "resnet18", "--layer", "layer4.1.relu"], "runs 2 times"),
        (["explain", "SAMPLE", "--target", "golden retriver"], "did you mean 'golden retriever'"),
        (["explain", "SAMPLE", "--colormap", "nope"], "unknown colormap"),
        (
            ["explain", "SAMPLE", "--device", "cuda"]
            if not torch.cuda.is_available()
            else ["explain", "SAMPLE", "--alpha", "2"],
            "--",
        ),
        (["layers", "--model", "resnet18", "--weights", "nowhere.pth"], "nowhere.pth: no such file"),
        (["explain", "SAMPLE", "--font", "nowhere.ttf"], "--font nowhere.ttf: no such file"),
        (["explain", "SAMPLE", "--font", "SAMPLE"], "cat.jpg: not a font file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    args = [str(SAMPLES / "cat.jpg") if a == "SAMPLE" else a for a in args]
    run = mieruka(*args, "--out", tmp_path) if args[0] == "explain" else mieruka(*args)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert not list(tmp_path.glob("*.png"))


def test_labels_no_font_has_give_one_warning_line(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_text("犬 \U0010fffd\n猫 \U0010fffd\n鳥 \U0010fffd\n", encoding="utf-8")
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "3", "--weights",
        tmp_path / "ft.pth", "--labels", tmp_path / "labels.txt", "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith("mieruka: warning: no font has the character(s) U+10FFFD: ")
    assert len(run.stderr.strip().splitlines()) == 1 and "--font" in run.stderr


def test_a_checkpoint_that_does_not_fit(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "ft.pth")
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        "--model",
        "resnet18",
        "--weights",
        tmp_path / "ft.pth",
        "--out",
        tmp_path,
    )
    assert run.returncode == 2 and "--num-classes 5" in run.stderr and "Traceback" not in run.stderr


def test_debug_shows_the_traceback(tmp_path):
    run = mieruka("explain", SAMPLES / "cat.jpg", "--out", tmp_path, "--layer", "nope", "--debug")
    assert run.returncode != 0 and "Traceback" in run.stderr


@pytest.mark.parametrize(
    ("model", "layer"), [("vgg16", "features.29"), ("resnet18", "layer4"), (None, "bn2")]
)
def test_layers_marks_the_automatic_choice(model, layer):
    run = mieruka("layers", *(["--model", model] if model else []))
    assert run.returncode == 0, run.stderr
    marked = [line for line in run.stdout.splitlines() if "<- auto" in line]
    assert len(marked) == 1 and marked[0].split()[0] == layer
    assert f"automatic target layer: {layer}" in run.stdout


def test_help_has_examples():
    for command in ("explain", "layers"):
        run = mieruka(command, "--help")
        assert run.returncode == 0 and "examples:" in run.stdout


def test_method_all_writes_a_comparison_panel_and_a_png_per_method(tmp_path):
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        "--method",
        "all",
        "--out",
        tmp_path,
        "--model",
        "resnet18",
        "--score-channels",
        "32",
    )
    assert run.returncode == 0, run.stderr
    record = _records(tmp_path)[0]
    assert set(record["outputs"]) == {
        "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam", "eigencam",
        "scorecam", "ablationcam", "guidedbackprop", "guidedgradcam",
    }  # fmt: skip
    assert len({Path(p).name for p in record["outputs"].values()}) == 11
    for path in record["outputs"].values():
        assert Image.open(path).size == (451, 300)
    panel = Image.open(record["output"])
    assert record["output"].endswith("_methods.png") and panel.width > 1000 and panel.height > 600
    assert not _leftovers(tmp_path)


def test_methods_lists_every_method():
    run = mieruka("methods")
    assert run.returncode == 0
    names = [line.split()[0] for line in run.stdout.splitlines()[:11]]
    assert (
        names[:3] == ["gradcam", "gradcam++", "xgradcam"] and "scorecam" in names and "guidedgradcam" in names
    )


def test_unknown_method_is_one_line(tmp_path):
    run = mieruka("explain", SAMPLES / "cat.jpg", "--method", "gradcam,gradkam", "--out", tmp_path)
    assert run.returncode == 2 and "unknown method 'gradkam'" in run.stderr and "Traceback" not in run.stderr
