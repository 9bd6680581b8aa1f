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
    overlay = Image.open(tmp_path / cat["output"])  # records hold paths from the output folder
    assert overlay.size == Image.open(SAMPLES / "cat.jpg").size
    assert np.load(tmp_path / cat["map"]).shape == (7, 7)
    assert "cat.jpg: " in run.stdout and str(tmp_path / cat["output"]) in run.stdout
    assert not _leftovers(tmp_path)


def test_overlay_marks_only_the_centre_crop(tmp_path):
    run = mieruka("explain", SAMPLES / "rocket.jpg", "--out", tmp_path, "--alpha", "0.6", "--no-label")
    assert run.returncode == 0, run.stderr
    photo = np.asarray(Image.open(SAMPLES / "rocket.jpg")).astype(int)
    overlay = np.asarray(Image.open(tmp_path / _records(tmp_path)[0]["output"])).astype(int)
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
    without = np.asarray(Image.open(plain / _records(plain)[0]["output"])).astype(int)
    with_label = np.asarray(Image.open(labelled / _records(labelled)[0]["output"])).astype(int)
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
    image = Image.open(tmp_path / _records(tmp_path)[0]["output"])
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
        "--labels", tmp_path / "labels.txt", "--out", out, "--target", "tulip", "--overwrite",
    )  # fmt: skip
    assert run.returncode == 0 and _records(out)[0]["label"] == "tulip"


def test_folder_run_keeps_good_results_when_one_file_is_bad(tmp_path):
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    for name in ("cat.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(SAMPLES / name, photos / name)
    shutil.copy(SAMPLES / "cat.jpg", photos / "nested" / "cat2.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "empty.png").write_bytes(b"")
    (photos / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    run = mieruka("explain", photos, "--out", out, "--batch-size", "2", "--workers", "2")
    assert run.returncode == 2
    assert "broken.jpg: not a readable image" in run.stderr and "Traceback" not in run.stderr
    records = _records(out)
    assert sorted(Path(r["file"]).name for r in records if "error" not in r) == [
        "cat.jpg", "cat2.jpg", "coffee.jpg", "rocket.jpg"
    ]  # fmt: skip
    assert sorted(Path(r["file"]).name for r in records if "error" in r) == ["broken.jpg", "empty.png"]
    assert len(list(out.rglob("*.png"))) == 4 and not _leftovers(out)
    # the summary names each failed file with its reason, not only how many
    summary = run.stdout[run.stdout.index("4 of 6 image(s) explained") :].splitlines()
    assert summary[0].endswith("; 2 failed:") and len(summary) == 3
    assert sorted(line.split(": ")[0].strip() for line in summary[1:]) == [
        str(photos / "broken.jpg"), str(photos / "empty.png")
    ]  # fmt: skip
    assert all("not a readable image" in line for line in summary[1:])


def test_a_broken_link_or_a_loop_of_links_in_a_folder_is_a_failed_photo_not_left_out(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLES / "cat.jpg", photos / "cat.jpg")
    (photos / "gone.jpg").symlink_to(tmp_path / "moved-away.jpg")
    (photos / "loop_a.jpg").symlink_to("loop_b.jpg")  # a loop of links once stopped the whole run
    (photos / "loop_b.jpg").symlink_to("loop_a.jpg")
    run = mieruka("explain", photos, "--out", tmp_path / "out")
    assert run.returncode == 2 and "1 of 4 image(s) explained" in run.stdout
    assert "gone.jpg: a broken link (it leads to " in run.stderr and "Traceback" not in run.stderr
    assert "loop_a.jpg: a link that leads round in a loop (to loop_b.jpg and back)" in run.stderr
    errors = [r for r in _records(tmp_path / "out") if "error" in r]
    assert sorted(Path(r["file"]).name for r in errors) == ["gone.jpg", "loop_a.jpg", "loop_b.jpg"]


def test_a_contact_sheet_of_a_folder_run_shows_every_good_photo_and_no_failed_one(tmp_path):
    from mieruka.sheet import sheet_layout

    photos, out = tmp_path / "photos", tmp_path / "out"
    (photos / "sub").mkdir(parents=True)
    generator = np.random.default_rng(0)
    for name, (width, height) in [("a.png", (48, 48)), ("b.png", (64, 40)), ("sub/猫.png", (40, 64))]:
        pixels = generator.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / name)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    args = ["--out", out, "--model", "resnet18", "--random-weights"]
    run = mieruka("explain", photos, *args, "--top-k", "2", "--sheet-columns", "2")
    assert run.returncode == 2 and "broken.jpg: not a readable image" in run.stderr
    records = _records(out)
    errors = [record for record in records if "error" in record]
    assert [Path(r["file"]).name for r in errors] == ["broken.jpg"] and set(errors[0]) == {"file", "error"}
    good = [record for record in records if "error" not in record]
    assert len(good) == 6 and {record["sheet"] for record in good} == {"sheet-001.png"}
    page = Image.open(out / "sheet-001.png")
    assert page.size == sheet_layout(2, title="resnet18").size(6)  # three rows of two: no tile for broken.jpg
    assert "contact sheet: sheet-001.png" in run.stdout and not _leftovers(out)
    again = mieruka("explain", photos / "a.png", *args, "--overwrite")  # the page goes with its run
    assert again.returncode == 0 and not (out / "sheet-001.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "missing.jpg"], "missing.jpg: no such file"),
        (["explain", "SAMPLE", "--layer", "features.99"], "no layer named 'features.99'"),
        (
            ["explain", "SAMPLE", "--model", "resnet18", "--random-weights", "--layer", "layer4.1.relu"],
            "runs 2 times",
        ),
        (["explain", "SAMPLE", "--target", "golden retriver"], "did you mean 'golden retriever'"),
        # 0.1.1: an architecture without weights is refused, and says how to give them
        (["explain", "SAMPLE", "--model", "resnet18"], "pass --weights FILE"),
        (["explain", "SAMPLE", "--model", "timm:resnet18"], "--random-weights to run it untrained"),
        # a layer that is not a feature map: what it outputs, and where to look
        (["explain", "SAMPLE", "--layer", "classifier"], "layer 'classifier' outputs 1000"),
        (
            ["explain", "SAMPLE", "--model", "resnet18", "--random-weights", "--layer", "avgpool"],
            "outputs 512x1x1 for a 224x224 input: a 1x1 map cannot show where",
        ),
        (
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_tiny_patch16_224",
                "--random-weights",
                "--layer",
                "blocks.11.attn.k_norm",
            ],
            "outputs 3x197x64 for a 224x224 input: not a feature map",
        ),
        (
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_tiny_patch16_224",
                "--random-weights",
                "--grid",
                "10x10",
            ],
            "grid=(10, 10) leaves 97 of the 197 tokens before the patches",
        ),
        (
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_tiny_patch16_224",
                "--random-weights",
                "--prefix-tokens",
                "3",
            ],
            "do not split into prefix_tokens=3",
        ),
        (["explain", "SAMPLE", "--grid", "14"], "--grid takes rows x columns"),
        (
            ["explain", "SAMPLE", "--method", "rollout"],
            "--method rollout: attention maps need one of the timm",
        ),
        (
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_tiny_patch16_224",
                "--random-weights",
                "--method",
                "rollout",
                "--layer",
                "blocks.3",
            ],
            "--layer names the layer a CAM reads; rollout reads the attention of every block",
        ),
        (
            ["explain", "SAMPLE", "--model", "resnet18", "--random-weights", "--num-classes", "0"],
            "--num-classes 0 (no classifier) is timm's option; torchvision's resnet18 has none",
        ),
        (
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_tiny_patch16_224",
                "--random-weights",
                "--method",
                "rollout",
                "--eigen-smooth",
            ],
            "--eigen-smooth takes the first principal component of a CAM's weighted channels; rollout weighs none",
        ),
        (
            ["explain", "SAMPLE", "--workers", "-1"],
            "--workers must be 0 (decode in the main process) or more",
        ),
        (  # on a CNN the attention refusal comes first: adding a CAM to rollout would not help there
            [
                "explain",
                "SAMPLE",
                "--model",
                "resnet18",
                "--random-weights",
                "--method",
                "rollout",
                "--layer",
                "layer4",
            ],
            "--method rollout: attention maps need one of the timm",
        ),
        (["explain", "SAMPLE", "--model", "timm:levit128s"], "(did you mean timm:levit_128s"),
        # names a person would type find what they mean
        (["explain", "SAMPLE", "--target", "cat"], "did you mean 'tabby', 'tiger cat', 'Persian cat'"),
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
        (["explain", "SAMPLE", "--labels", "SAMPLES"], "samples: is a folder, expected a file"),
        (  # timm builds SigLIP with no classifier: its 768 numbers are an embedding, not class scores
            [
                "explain",
                "SAMPLE",
                "--model",
                "timm:vit_base_patch16_siglip_224",
                "--random-weights",
                "--model-kwargs",
                "depth=2",
            ],
            "has no classifier (num_classes=0): its output is a 768-wide embedding",
        ),
        (["layers", "--model", "resnet18", "--weights", "SAMPLES"], "samples: is a folder, expected a file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    places = {"SAMPLE": str(SAMPLES / "cat.jpg"), "SAMPLES": str(SAMPLES)}
    args = [places.get(a, a) for a in args]
    run = mieruka(*args, "--out", tmp_path) if args[0] == "explain" else mieruka(*args)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert not list(tmp_path.glob("*.png"))
    # refused before the run starts: a named layer that cannot be read once wrote run.json first
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "results.jsonl").exists()


def test_an_attention_method_the_model_cannot_serve_is_refused_before_anything_is_written(tmp_path):
    """rollout on a CNN used to fail at the first photo, after run.json and results.jsonl were written."""
    out = tmp_path / "out"
    run = mieruka("explain", SAMPLES / "cat.jpg", "--method", "gradcam,rollout", "--out", out)
    assert run.returncode == 2 and "attention maps need one of the timm ViT-family" in run.stderr
    assert run.stderr.rstrip().endswith("explain it with a CAM method instead (mieruka methods lists them)")
    assert not out.exists() or not any(out.iterdir())


def test_labels_no_font_has_give_one_warning_line(tmp_path):
    """One line for the run, however many pictures show the characters."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_text("犬 \U0010fffd\n猫 \U0010fffe\n鳥 \U000f0000\n", encoding="utf-8")
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", SAMPLES / "coffee.jpg", "--top-k", "2", "--no-report",
        "--model", "resnet18", "--num-classes", "3", "--weights",
        tmp_path / "ft.pth", "--labels", tmp_path / "labels.txt", "--out", tmp_path / "out", "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.startswith(
        "mieruka: warning: no font has the character(s) U+10FFFD, U+10FFFE, U+F0000: "
    )
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
    assert "--overwrite" in mieruka("explain", "--help").stdout


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
        "--random-weights",
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
        assert Image.open(tmp_path / path).size == (451, 300)
    panel = Image.open(tmp_path / record["output"])
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


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_second_run_into_the_same_folder_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    assert mieruka("explain", SAMPLES / "cat.jpg", "--out", out).returncode == 0
    (out / "notes.txt").write_text("the user's own file")
    first = _snapshot(out)
    cat_picture = _records(out)[0]["output"]

    run = mieruka("explain", SAMPLES / "coffee.jpg", "--out", out)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert str(out) in run.stderr and "--overwrite" in run.stderr and "--out" in run.stderr
    assert _snapshot(out) == first  # the first run is intact

    run = mieruka("explain", SAMPLES / "coffee.jpg", "--out", out, "--overwrite")
    assert run.returncode == 0, run.stderr
    records = _records(out)
    assert [Path(r["file"]).name for r in records] == ["coffee.jpg"]
    assert not (out / cat_picture).exists() and (out / records[0]["output"]).is_file()
    assert (out / "notes.txt").read_text() == "the user's own file"  # only the old run's files go
    assert sorted(_snapshot(out)) == sorted(["notes.txt", "results.jsonl", "run.json", records[0]["output"]])


def test_a_typo_never_touches_the_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat_tabby.png").write_bytes(b"an earlier run's picture")
    (out / "results.jsonl").write_text(json.dumps({"file": "cat.jpg", "output": "cat_tabby.png"}) + "\n")
    before = _snapshot(out)
    for extra in ([], ["--overwrite"]):
        run = mieruka("explain", tmp_path / "ct.jpg", "--out", out, *extra)
        assert run.returncode == 2 and "ct.jpg: no such file" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
        assert _snapshot(out) == before


def test_output_names_mirror_the_input_folders(tmp_path):
    photos, more = tmp_path / "photos", tmp_path / "more"
    for folder in (photos / "a", photos / "b", more / "a"):
        folder.mkdir(parents=True)
        shutil.copy(SAMPLES / "cat.jpg", folder / "cat.jpg")
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "coffee.jpg")
    out = tmp_path / "out"
    run = mieruka("explain", photos, more, tmp_path / "coffee.jpg", "--out", out, "--save-maps")
    assert run.returncode == 0, run.stderr
    records = _records(out)
    cat, coffee = records[0]["label"].replace(" ", "_"), records[3]["label"].replace(" ", "_")
    assert [r["output"] for r in records] == [
        f"a/cat_{cat}.png", f"b/cat_{cat}.png", f"a/cat_{cat}-2.png", f"coffee_{coffee}.png"
    ]  # fmt: skip
    assert [r["file"] for r in records] == [
        str(photos / "a/cat.jpg"), str(photos / "b/cat.jpg"), str(more / "a/cat.jpg"), str(tmp_path / "coffee.jpg")
    ]  # fmt: skip
    assert f"  {records[1]['label']} -> {out / 'b' / f'cat_{cat}.png'}" in run.stdout

    # paths in results.jsonl are relative to the output folder: it can be moved
    moved = tmp_path / "moved"
    out.rename(moved)
    for record in _records(moved):
        assert not Path(record["output"]).is_absolute()
        assert Image.open(moved / record["output"]).size == Image.open(record["file"]).size
        assert np.load(moved / record["map"]).shape == (7, 7)


def test_a_label_in_any_script_survives_in_the_file_name(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_text("犬\n猫\n鳥\n", encoding="utf-8")
    out = tmp_path / "out"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "3", "--weights", tmp_path / "ft.pth",
        "--labels", tmp_path / "labels.txt", "--target", "猫", "--out", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = _records(out)[0]
    assert record["label"] == "猫" and record["output"] == "cat_猫.png"
    assert (out / "cat_猫.png").is_file() and sorted(_snapshot(out)) == [
        "cat_猫.png",
        "results.jsonl",
        "run.json",
    ]


def test_random_weights_say_so_in_every_output(tmp_path):
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--random-weights", "--out", tmp_path,
        "--style", "panel",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "ran with random weights" in run.stderr and "mean nothing" in run.stderr
    record = _records(tmp_path)[0]
    assert record["weights"] == "random" and record["model"] == "resnet18"


def test_a_labels_file_that_is_not_utf8_names_the_file_and_the_fix(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_bytes("犬\n猫\n鳥\n".encode("shift_jis"))
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "3",
        "--weights", tmp_path / "ft.pth", "--labels", tmp_path / "labels.txt", "--out", tmp_path / "out",
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "labels.txt: not UTF-8" in run.stderr and "save it as UTF-8" in run.stderr


def test_a_model_with_few_classes_lists_them_all_for_an_unknown_target(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    (tmp_path / "labels.txt").write_text("犬\n猫\n鳥\n", encoding="utf-8")
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "3",
        "--weights", tmp_path / "ft.pth", "--labels", tmp_path / "labels.txt", "--out", tmp_path / "out",
        "--target", "cat",
    )  # fmt: skip
    assert run.returncode == 2
    assert "its classes are '犬', '猫', '鳥'" in run.stderr


def _imports_torch(*argv: str) -> tuple[bool, subprocess.CompletedProcess]:
    """Run the command in-process in a child and report whether torch was imported by the end."""
    code = (
        "import sys\n"
        "from mieruka.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return "TORCH=True" in run.stderr, run


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["methods"],
        ["explain", "--help"],
        ["explain", "missing.jpg"],
        ["explain", str(SAMPLES / "cat.jpg"), "--top-k", "0"],
        ["explain", str(SAMPLES / "cat.jpg"), "--sheet-columns", "0"],
        ["explain", str(SAMPLES / "cat.jpg"), "--method", "gradkam"],
        ["explain", str(SAMPLES / "cat.jpg"), "--labels", "nowhere.txt"],
        ["explain", str(SAMPLES / "cat.jpg"), "--font", "nowhere.ttf"],
        ["explain", str(SAMPLES / "cat.jpg"), "--weights", "nowhere.pth", "--model", "resnet18"],
        ["report", "--help"],
        ["report", "nowhere"],
    ],
)
def test_help_methods_and_argument_errors_do_not_import_torch(argv):
    imported, run = _imports_torch(*argv)
    assert not imported, run.stderr


def test_import_mieruka_is_cheap():
    code = (
        "import sys, mieruka; print(mieruka.__version__, 'torch' in sys.modules, 'matplotlib' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split()[1:] == ["False", "False"], run.stderr


def test_progress_per_method_on_a_terminal_and_none_when_redirected(tmp_path):
    import os
    import pty

    args = [
        sys.executable, "-m", "mieruka", "explain", str(SAMPLES / "cat.jpg"), "--model", "resnet18",
        "--random-weights", "--method", "gradcam,scorecam,ablationcam", "--score-channels", "64",
    ]  # fmt: skip
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [*args, "--out", str(tmp_path / "tty")], stderr=follower, stdout=subprocess.DEVNULL
    ) as child:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes when the child exits
                break
            if not chunk:
                break
            shown += chunk
    os.close(leader)
    assert child.returncode == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "scorecam 64/64" in text and "ablationcam 512/512" in text and "gradcam" in text
    redirected = mieruka(*args[3:], "--out", tmp_path / "pipe")
    assert redirected.returncode == 0 and "passes" not in redirected.stderr


def test_readme_and_help_agree_and_the_default_output_folder_is_ignored():
    import re

    from conftest import ROOT
    from mieruka.cli import build_parser

    help_text = mieruka("explain", "--help").stdout
    readme = (ROOT / "README.md").read_text()
    factor = re.compile(r"about (\d+)x faster")
    assert factor.search(" ".join(help_text.split())).group(1) == factor.search(readme).group(1)
    default_out = build_parser().parse_args(["explain", "x.jpg"]).out
    assert f"{default_out}/" in (ROOT / ".gitignore").read_text().splitlines()


def test_a_vision_transformer_end_to_end(tmp_path):
    torch.manual_seed(0)
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_small_patch16_224", num_classes=5)
    torch.save(model.state_dict(), tmp_path / "ft.pth")
    out = tmp_path / "out"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "timm:vit_small_patch16_224", "--weights", tmp_path / "ft.pth",
        "--num-classes", "5", "--out", out, "--save-maps",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "reads only its class token; gradcam weighs every patch token alike" in run.stderr
    record = _records(out)[0]
    assert record["layer"] == "blocks.11.norm1" and record["layout"] == "tokens: 1 prefix + 14x14"
    assert np.load(out / record["map"]).shape == (14, 14)
    assert Image.open(out / record["output"]).size == Image.open(SAMPLES / "cat.jpg").size


@pytest.mark.parametrize(
    ("arch", "followers"),
    [
        ("vit_tiny_patch16_224", "hirescam, layercam, rollout or gae follow them"),
        ("cait_xxs24_224", "hirescam or layercam follow them"),  # rollout and gae are refused on CaiT
    ],
)
def test_the_class_token_note_names_only_methods_the_model_can_run(arch, followers):
    timm = pytest.importorskip("timm")
    from mieruka.cli.common import class_token_note
    from mieruka.images import Preprocess
    from mieruka.models import LoadedModel

    loaded = LoadedModel(timm.create_model(arch).eval(), Preprocess(), None, f"timm:{arch}")
    note = class_token_note(loaded, ["gradcam"], "cpu")
    assert note is not None and "reads only its class token; gradcam weighs every patch token" in note
    assert f"attends to; {followers} (README" in note


def test_attention_methods_from_the_command_line(tmp_path):
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "timm:vit_tiny_patch16_224", "--random-weights",
        "--method", "gradcam,rollout,gae", "--out", tmp_path, "--save-maps",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = _records(tmp_path)[0]
    assert set(record["outputs"]) == {"gradcam", "rollout", "gae"}
    for method in ("rollout", "gae"):
        assert np.load(tmp_path / record["map"][method]).shape == (14, 14)
    assert "explained at layer blocks.11.norm1 (rollout, gae: from the model's attention)" in run.stdout
    alone = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "timm:vit_tiny_patch16_224", "--random-weights",
        "--method", "rollout", "--out", tmp_path / "rollout",
    )  # fmt: skip
    assert "1 of 1 image(s) explained from the model's attention in" in alone.stdout  # no CAM layer
    assert _records(tmp_path / "rollout")[0]["layer"] == "attention"


def test_the_output_folder_inside_the_input_folder_is_never_read_as_photos(tmp_path):
    shutil.copy(SAMPLES / "cat.jpg", tmp_path / "cat.jpg")
    first = mieruka("explain", ".", cwd=tmp_path)
    again = mieruka("explain", ".", "--overwrite", cwd=tmp_path)
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert "1 of 1 image(s) explained" in again.stdout
    assert [r["file"] for r in _records(tmp_path / "mieruka-out")] == ["cat.jpg"]


def test_a_run_that_explained_nothing_does_not_block_the_next(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    assert mieruka("explain", tmp_path / "broken.jpg", "--out", out).returncode == 2
    run = mieruka("explain", SAMPLES / "cat.jpg", "--out", out)
    assert run.returncode == 0, run.stderr
    assert [Path(r["file"]).name for r in _records(out)] == ["cat.jpg"]


def test_builder_arguments_from_the_command_line(tmp_path):
    """--model-kwargs build the architecture as it was fine-tuned; an argument the builder refuses is
    one line naming it, exit status 2."""
    import timm

    torch.manual_seed(0)
    pooled = timm.create_model("vit_tiny_patch16_224", num_classes=3, global_pool="avg", class_token=False)
    torch.save(pooled.state_dict(), tmp_path / "pooled.pth")
    common = ["explain", SAMPLES / "cat.jpg", "--model", "timm:vit_tiny_patch16_224", "--num-classes", "3"]
    common += ["--weights", tmp_path / "pooled.pth", "--json", "--out"]
    run = mieruka(*common, tmp_path / "out", "--model-kwargs", "global_pool=avg", "class_token=false")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[0])["layer"] == "norm"
    assert "class token" not in run.stderr  # an average-pooled head: no class-token note
    refused = mieruka(*common, tmp_path / "refused", "--model-kwargs", "global_pool=sideways")
    assert refused.returncode == 2
    swallowed = mieruka("explain", "--model-kwargs", "img_size=384", SAMPLES / "cat.jpg")  # the list took it
    assert swallowed.returncode == 2
    assert "argument --model-kwargs: expected KEY=VALUE, got '" in swallowed.stderr
    assert "put paths before --model-kwargs or end its list with --" in swallowed.stderr
    [line] = refused.stderr.strip().splitlines()  # timm's own reason follows
    assert line.startswith(
        "mieruka: error: cannot build timm:vit_tiny_patch16_224 with --model-kwargs global_pool='sideways': "
    )


def test_builder_arguments_that_break_the_model_s_forward_pass_are_named_before_any_photo(tmp_path):
    """timm builds a ResNet with global_pool='' (no pooling before its linear head), which then fails
    on every input: one line naming the model and --model-kwargs, exit status 2, for every command."""
    flags = ["--model", "timm:resnet18", "--random-weights", "--model-kwargs", "global_pool="]
    for command in (["explain", SAMPLES / "cat.jpg", "--out", tmp_path / "out"], ["layers"]):
        run = mieruka(*command, *flags)
        assert run.returncode == 2, run.stderr
        [line] = run.stderr.strip().splitlines()
        assert line.startswith("mieruka: error: --model timm:resnet18: fails on a blank 224x224 input (")
        assert line.endswith("check --model-kwargs, which it was built with")
    assert not (tmp_path / "out").exists()


class _Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)
        self.mix = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.norm(x))


class _UndeclaredTokens(torch.nn.Module):
    """A small transformer over 16 tokens from a 4 x 4 patch grid, with a parameter whose name could be
    a class token's (`cls_scale`): 0 + 4x4, 7 + 3x3 and 12 + 2x2 all fit, and the model does not say
    which."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Conv2d(3, 8, 56, stride=56)
        self.cls_scale = torch.nn.Parameter(torch.ones(8))
        self.blocks = torch.nn.Sequential(_Block(), _Block())
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.blocks(self.embed(x).flatten(2).transpose(1, 2) * self.cls_scale)
        return self.head(self.norm(tokens).mean(1))


def test_layers_lists_the_tree_and_says_why_no_layer_was_chosen(monkeypatch, capsys):
    """A token layout the model does not declare leaves no automatic layer, but the listing is still
    printed, with the reason and what to set."""
    from mieruka.cli import commands
    from mieruka.cli.parser import build_parser
    from mieruka.images import Preprocess
    from mieruka.models import LoadedModel

    loaded = LoadedModel(_UndeclaredTokens().eval(), Preprocess(), None, "undeclared", weights="random")
    monkeypatch.setattr(commands, "load_from_flags", lambda args, shapes_only=False: (loaded, "cpu"))
    assert commands.run_layers(build_parser().parse_args(["layers"])) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("norm ") for line in lines)
    assert lines[-1].startswith("no automatic target layer: layer 'norm' outputs 16x8 for a 224x224 input")
    assert "ambiguous (0 prefix + 4x4 or 7 prefix + 3x3" in lines[-1] and "--prefix-tokens P" in lines[-1]


def test_a_map_with_one_value_everywhere_is_called_flat_not_drawn_as_an_answer(tmp_path):
    """A ResNet-18 whose last stage outputs the same vector at every place (its residual branches and
    shortcut zeroed to a bias): Grad-CAM there is one positive value everywhere, which normalizes to a
    picture of solid heat. The record and the summary line say the map is flat."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval()
    with torch.no_grad():
        for norm in (model.layer4[0].bn2, model.layer4[1].bn2, model.layer4[0].downsample[1]):
            norm.weight.zero_()
            norm.bias.zero_()
        model.layer4[0].downsample[1].bias.fill_(1.0)  # layer4 outputs 1 in every channel, everywhere
        model.fc.weight[0].fill_(0.01)
        model.fc.weight[1].fill_(-0.01)
    weights = tmp_path / "flat.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "out"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--weights", weights, "--num-classes", "2",
        "--out", out, "--save-maps",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (record,) = _records(out)
    assert record["index"] == 0 and record["flat"] is True and record["empty"] is False
    raw = np.load(out / record["map"])
    assert raw.shape == (7, 7) and raw.min() > 0 and np.ptp(raw) <= 1e-5 * raw.max()
    assert "(flat map: the same value everywhere, so it shows no place)" in run.stdout


def test_a_wrong_flag_value_is_one_line_naming_the_flag():
    for args, flag in [
        (("explain", "x.jpg", "--style", "bogus"), "argument --style: invalid choice: 'bogus'"),
        (("explain", "x.jpg", "--top-k", "abc"), "argument --top-k: invalid int value: 'abc'"),
        (("bogus",), "invalid choice: 'bogus'"),
    ]:
        run = mieruka(*args)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert flag in run.stderr and "--help" in run.stderr and "Traceback" not in run.stderr


def test_a_labels_file_that_repeats_a_name_is_warned_about_once(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nCat\n", encoding="utf-8")
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--random-weights", "--num-classes", "3",
        "--labels", labels, "--out", tmp_path / "out",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    [line] = [line for line in run.stderr.splitlines() if "repeats names" in line]
    assert "'cat' for classes 0, 2" in line and "give --target by number" in line


def test_a_stray_argument_after_a_command_points_at_that_command_s_help():
    """argparse reports it from the top-level parser, whose --help lists commands, not options."""
    run = mieruka("explain", "x.jpg", "--bogus")
    assert run.returncode == 2
    assert (
        run.stderr.strip() == "mieruka: error: unrecognized arguments: --bogus (see 'mieruka explain --help')"
    )


def test_a_wrong_top_k_or_layout_is_refused_before_an_earlier_run_is_replaced(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "ft.pth")
    model = ("--model", "resnet18", "--num-classes", "3", "--weights", tmp_path / "ft.pth")
    out = tmp_path / "out"
    assert mieruka("explain", SAMPLES / "cat.jpg", *model, "--out", out, "--quiet").returncode == 0
    before = sorted(p.name for p in out.iterdir())
    run = mieruka("explain", SAMPLES / "cat.jpg", *model, "--out", out, "--overwrite", "--top-k", "4")
    assert run.returncode == 2 and run.stderr.strip() == (
        "mieruka: error: --top-k 4: the model has 3 classes; ask for 3 at most"
    )
    assert sorted(p.name for p in out.iterdir()) == before and len(_records(out)) == 1
    run = mieruka("explain", SAMPLES / "cat.jpg", *model, "--out", out, "--overwrite", "--layout", "tokens")
    assert run.returncode == 2 and "'layer4' outputs 512x7x7" in run.stderr and "not a token" in run.stderr
    assert sorted(p.name for p in out.iterdir()) == before and len(_records(out)) == 1


def test_a_folder_s_photos_in_a_format_pillow_cannot_read_are_named_not_skipped_unsaid(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLES / "cat.jpg", photos / "cat.jpg")
    (photos / "IMG_0001.HEIC").write_bytes(b"ftypheic")  # an iPhone photo: Pillow has no HEIC decoder
    run = mieruka("explain", photos, "--model", "resnet18", "--random-weights", "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert (
        "mieruka: note: left out 1 photo(s) in a format Pillow cannot read (1 .heic, such as " in run.stderr
    )
    assert [Path(r["file"]).name for r in _records(tmp_path / "out")] == ["cat.jpg"]
