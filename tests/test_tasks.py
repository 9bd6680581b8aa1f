"""Tasks beyond one softmax class: told from the model's output, and run end to end from the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from conftest import SAMPLES
from mieruka.images import Preprocess, load_image
from mieruka.targets import TargetError
from mieruka.targets.tasks import infer_task


def mieruka(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mieruka", *map(str, args)], capture_output=True, text=True, timeout=600
    )


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("output", "task"),
    [
        (torch.zeros(2, 5), "classify"),
        (torch.zeros(2, 1), "binary"),
        (torch.zeros(2), "binary"),
        ((torch.zeros(2, 5), torch.zeros(2, 3)), "classify"),
        ({"logits": torch.zeros(2, 5)}, "classify"),
        ({"out": torch.zeros(2, 21, 8, 8), "aux": torch.zeros(2, 21, 8, 8)}, "segment"),
        (torch.zeros(2, 3, 8, 8), "segment"),
        ([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}], "detect"),
    ],
)
def test_the_task_is_told_from_the_output(output, task):
    assert infer_task(output) == task


@pytest.mark.parametrize("output", [torch.zeros(2, 3, 4), {"features": torch.zeros(2, 5)}, "text"])
def test_an_output_that_matches_no_task_names_the_flag(output):
    with pytest.raises(TargetError, match=r"matches no task.*--task"):
        infer_task(output)


def _model_input() -> torch.Tensor:
    """The cat photo as the CLI feeds a torchvision model with no named weights (ImageNet recipe)."""
    return Preprocess()(load_image(SAMPLES / "cat.jpg"))[None]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Small torchvision models saved as state_dicts, with their outputs on the cat photo."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    x = _model_input()
    made = {}
    for name, classes in (("binary", 1), ("six", 6)):
        model = torchvision.models.resnet18(num_classes=classes).eval()
        torch.save(model.state_dict(), folder / f"{name}.pth")
        with torch.no_grad():
            made[name] = (folder / f"{name}.pth", model(x)[0])
    return made


def test_a_one_output_model_is_explained_as_a_binary_classifier(saved, tmp_path):
    weights, logit = saved["binary"]
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\n")
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "1",
        "--weights", weights, "--labels", labels, "--out", tmp_path / "out",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "binary classifier's logit" in run.stderr  # the reading is said, not guessed quietly
    (record,) = records(tmp_path / "out")
    p = 1 / (1 + math.exp(-float(logit)))
    positive = float(logit) > 0
    assert record["task"] == "binary" and record["label"] == ("cat" if positive else "dog")
    assert record["probability"] == pytest.approx(p if positive else 1 - p, abs=1e-5)  # sigmoid, not softmax
    assert {t["label"]: t["probability"] for t in record["top5"]} == pytest.approx(
        {"cat": p, "dog": 1 - p}, abs=1e-5
    )

    other = "dog" if positive else "cat"
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "1", "--weights", weights,
        "--labels", labels, "--target", other, "--out", tmp_path / "other", "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path / "other")
    assert record["label"] == other and record["output"] == f"cat_{other}.png"
    assert record["probability"] == pytest.approx(1 - p if positive else p, abs=1e-5)


def test_multilabel_explains_every_label_above_the_threshold(saved, tmp_path):
    weights, logits = saved["six"]
    probs = logits.sigmoid()
    threshold = float(probs.sort().values[2])  # between the third and fourth smallest: four labels pass
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "6", "--weights", weights,
        "--task", "multilabel", "--threshold", threshold, "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = records(tmp_path)
    expected = [i for i in probs.argsort(descending=True).tolist() if probs[i] >= threshold]
    assert [r["index"] for r in found] == expected and len(expected) == 4
    assert [r["probability"] for r in found] == pytest.approx([float(probs[i]) for i in expected], abs=1e-5)
    assert all((tmp_path / r["output"]).is_file() and r["task"] == "multilabel" for r in found)


def test_a_threshold_nothing_reaches_writes_a_note_and_no_picture(saved, tmp_path):
    weights, _ = saved["six"]
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "6", "--weights", weights,
        "--task", "multilabel", "--threshold", "1", "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path)
    assert record["output"] is None and "threshold" in record["note"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "run.json"]


def test_regression_explains_chosen_outputs_up_or_down(saved, tmp_path):
    weights, values = saved["six"]
    run = mieruka(
        "explain", SAMPLES / "cat.jpg", "--model", "resnet18", "--num-classes", "6", "--weights", weights,
        "--task", "regression", "--target", "4,1", "--direction", "down", "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = records(tmp_path)
    assert [(r["index"], r["label"]) for r in found] == [(4, "class 4 (down)"), (1, "class 1 (down)")]
    assert [r["value"] for r in found] == pytest.approx([float(values[4]), float(values[1])], abs=1e-5)
    assert all(r["probability"] is None and "top5" not in r for r in found)
    assert f"  class 4 (down), value {float(values[4]):.4g} -> " in run.stdout  # the number, on screen too


def test_an_embedding_is_explained_by_its_similarity_to_a_reference(tmp_path):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=0).eval()  # no head: it returns embeddings
    torch.save(model.state_dict(), tmp_path / "emb.pth")
    config = timm.data.resolve_model_data_config(model)
    preprocess = Preprocess(
        int(224 / config["crop_pct"]), 224, config["mean"], config["std"], config["interpolation"]
    )
    with torch.no_grad():
        cat, coffee = (model(preprocess(load_image(SAMPLES / f))[None])[0] for f in ("cat.jpg", "coffee.jpg"))
    common = ("--model", "timm:resnet18", "--num-classes", "0", "--weights", tmp_path / "emb.pth")
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        *common,
        "--reference",
        SAMPLES / "coffee.jpg",
        "--out",
        tmp_path / "a",
    )
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path / "a")
    assert record["task"] == "embed" and record["label"] == "similarity"
    assert record["similarity"] == pytest.approx(float(torch.cosine_similarity(cat, coffee, dim=0)), abs=1e-4)

    import numpy as np

    np.save(tmp_path / "vector.npy", coffee.numpy())  # a vector (a text embedding, say) works the same
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        *common,
        "--reference",
        tmp_path / "vector.npy",
        "--out",
        tmp_path / "b",
    )
    assert run.returncode == 0, run.stderr
    assert records(tmp_path / "b")[0]["similarity"] == pytest.approx(record["similarity"], abs=1e-4)

    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        *common,
        "--reference",
        tmp_path / "broken.jpg",
        "--out",
        tmp_path / "c",
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "--reference" in run.stderr and "broken.jpg" in run.stderr and "Traceback" not in run.stderr

    torch.save(
        coffee, tmp_path / "vector.pt"
    )  # damaged bytes in a saved tensor: refused, never a wrong vector
    saved = bytearray((tmp_path / "vector.pt").read_bytes())
    start = saved.index(coffee.numpy().tobytes()[:16])
    saved[start : start + 16] = bytes(16)
    (tmp_path / "vector.pt").write_bytes(bytes(saved))
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        *common,
        "--reference",
        tmp_path / "vector.pt",
        "--out",
        tmp_path / "d",
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert "--reference" in run.stderr and "vector.pt" in run.stderr and "fails its checksum" in run.stderr

    np.save(
        tmp_path / "short.npy", np.ones(10, dtype=np.float32)
    )  # not this model's embedding: before any file
    run = mieruka(
        "explain",
        SAMPLES / "cat.jpg",
        *common,
        "--reference",
        tmp_path / "short.npy",
        "--out",
        tmp_path / "e",
    )
    assert run.returncode == 2 and not (tmp_path / "e").exists()
    assert f"--reference {tmp_path / 'short.npy'}: the reference embedding has 10 values" in run.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "embed"], "--reference"),
        (["--threshold", "2"], "--threshold"),
        (["--min-score", "-1"], "--min-score"),
        (["--max-objects", "0"], "--max-objects"),
        (["--task", "classify", "--reference", "cat.jpg"], "--reference"),
        (["--task", "segment", "--style", "boxes"], "--style boxes"),
        (["--style", "boxes"], "--style boxes"),  # told from the model: a classifier, refused before writing
        # an option of another task is refused, not ignored: the run would explain something else
        (
            ["--direction", "down"],
            "--direction applies to regression models; this one is explained as classify",
        ),
        (["--max-objects", "3"], "--max-objects applies to detect models"),
        (["--min-score", "0.5"], "--min-score applies to detect models"),  # given, even at its default
        (
            ["--reference", SAMPLES / "coffee.jpg", "--target", "3"],
            "--target applies to every task but embed",
        ),
        (
            ["--task", "binary", "--top-k", "2"],
            "--top-k applies to classify and multilabel models; this one is explained as binary: leave out --top-k",
        ),
    ],
)
def test_task_flags_that_do_not_fit_are_refused_in_one_line(flags, message, tmp_path):
    run = mieruka("explain", SAMPLES / "cat.jpg", *flags, "--out", tmp_path)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and message in run.stderr


def test_a_detector_saved_as_a_state_dict_is_explained_object_by_object(tmp_path):
    """mieruka explain photo.jpg --model fasterrcnn_mobilenet_v3_large_fpn --weights det.pth --min-score 0.01"""
    from PIL import Image

    from test_detection import build_detector

    torch.save(build_detector().state_dict(), tmp_path / "det.pth")
    Image.open(SAMPLES / "cat.jpg").resize((200, 150)).save(tmp_path / "small.jpg")
    common = ("--model", "fasterrcnn_mobilenet_v3_large_fpn", "--weights", tmp_path / "det.pth")
    run = mieruka(
        "explain", tmp_path / "small.jpg", *common, "--min-score", "0.01", "--max-objects", "3",
        "--out", tmp_path / "each",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    found = records(tmp_path / "each")
    assert len(found) == 3 and all(r["task"] == "detect" for r in found)
    scores = [r["probability"] for r in found]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.01
    for r in found:  # boxes in the photo's pixels (the detector keeps the photo whole)
        x0, y0, x1, y1 = r["box"]
        assert (
            0 <= x0 < x1 <= 200
            and 0 <= y0 < y1 <= 150
            and r["score"] == pytest.approx(r["probability"], abs=1e-4)
        )
        assert Image.open(tmp_path / "each" / r["output"]).size == (200, 150)
    assert len({r["output"] for r in found}) == 3  # one picture per object
    assert f"  {found[0]['label']}, score {found[0]['score']:.3f} -> " in run.stdout

    run = mieruka(
        "explain", tmp_path / "small.jpg", *common, "--min-score", "0.01", "--max-objects", "3",
        "--style", "boxes", "--out", tmp_path / "together",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    together = records(tmp_path / "together")
    assert [r["box"] for r in together] == [r["box"] for r in found]
    assert {r["output"] for r in together} == {"small_objects.png"}  # every object in one picture

    run = mieruka(
        "explain", tmp_path / "small.jpg", *common, "--min-score", "0.99", "--out", tmp_path / "none"
    )
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path / "none")
    assert record["output"] is None and "no object" in record["note"]


def test_a_segmenter_saved_as_a_state_dict_explains_the_classes_it_predicts(tmp_path):
    """mieruka explain photo.jpg --model deeplabv3_mobilenet_v3_large --weights seg.pth [--target CLASS]"""
    from PIL import Image

    from mieruka import CAM
    from mieruka.targets import SegmentationTarget

    torch.manual_seed(1)
    model = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21
    ).eval()
    torch.save(model.state_dict(), tmp_path / "seg.pth")
    Image.open(SAMPLES / "cat.jpg").resize((200, 150)).save(tmp_path / "small.jpg")
    common = ("--model", "deeplabv3_mobilenet_v3_large", "--weights", tmp_path / "seg.pth")
    run = mieruka("explain", tmp_path / "small.jpg", *common, "--out", tmp_path / "auto")
    assert run.returncode == 0, run.stderr
    found = records(tmp_path / "auto")
    x = Preprocess(520, None)(load_image(tmp_path / "small.jpg"))[None]  # the recipe: short side 520, no crop
    expected = CAM(model)(x, targets=SegmentationTarget())
    classes = [i for i, ok in zip(expected.targets[0].tolist(), expected.valid[0].tolist()) if ok]
    assert [r["index"] for r in found] == classes and all(r["task"] == "segment" for r in found)
    voc = torchvision.models.get_model_weights("deeplabv3_mobilenet_v3_large").DEFAULT.meta["categories"]
    assert [r["label"] for r in found] == [voc[i] for i in classes]  # names from the weights' metadata
    assert [r["area"] for r in found] == [d["area"] for d in expected.details[0] if d]
    assert sum(r["area"] for r in found) <= 520 * 693
    assert f"  {found[0]['label']}, area {found[0]['area']:,} px -> " in run.stdout

    run = mieruka("explain", tmp_path / "small.jpg", *common, "--target", "cat", "--out", tmp_path / "cat")
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path / "cat")
    assert record["label"] == "cat" and record["index"] == 8

    absent = next(i for i in range(1, 21) if i not in classes)  # a class the model predicts nowhere
    run = mieruka("explain", tmp_path / "small.jpg", *common, "--target", absent, "--out", tmp_path / "no")
    assert run.returncode == 0, run.stderr
    (record,) = records(tmp_path / "no")
    assert record["area"] == 0 and record["empty"] is True
    assert f"  {voc[absent]}, area 0 px -> " in run.stdout
    assert "(empty map: the model predicts no pixel of it)" in run.stdout

    run = mieruka(
        "explain", tmp_path / "small.jpg", *common, "--target", "unicorn", "--out", tmp_path / "bad"
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "unicorn" in run.stderr
