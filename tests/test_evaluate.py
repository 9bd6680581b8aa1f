"""`mieruka evaluate` end to end through a subprocess, its numbers checked against the library's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from conftest import SAMPLES


def mieruka(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mieruka", *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A seeded 5-class resnet18, saved, so the CLI and the test load the very same network."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "net.pth"
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    (folder / "a").mkdir()
    shutil.copy(SAMPLES / "cat.jpg", folder / "cat.jpg")
    shutil.copy(SAMPLES / "coffee.jpg", folder / "a" / "coffee.jpg")
    return folder


MODEL = ("--model", "resnet18", "--num-classes", "5", "--device", "cpu")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_table_json_and_per_image_agree_with_the_library(tmp_path, weights, photos):

    boxes = {"cat.jpg": [[100, 50, 400, 280]], "a/coffee.jpg": [[0, 0, 120, 90]]}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    run = mieruka(
        "evaluate", photos, *MODEL, "--weights", weights, "--method", "gradcam,layercam", "--steps", "4",
        "--boxes", tmp_path / "boxes.json", "--out", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    document = json.loads((out / "metrics.json").read_text())
    records = _lines(out / "per_image.jsonl")
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "metrics.json", "per_image.jsonl"]
    assert (
        document["settings"]["methods"] == ["gradcam", "layercam"]
        and document["settings"]["layer"] == "layer4"
    )
    assert document["settings"]["metrics"] == ["deletion", "insertion", "drop", "pointing"]
    assert set(document["table"]) == {"gradcam", "layercam", "random", "centre"}
    assert document["better"] == {
        "deletion": "lower", "insertion": "higher", "drop": "lower", "increase": "higher",
        "pointing": "higher", "energy": "higher",
    }  # fmt: skip
    # 2 photos x 4 rows x 6 columns
    assert len(records) == 48 and {r["photo"] for r in records} == {"cat.jpg", "a/coffee.jpg"}

    # the same numbers from the library, on the same photos
    from mieruka import load_model
    from mieruka.cam import CAM
    from mieruka.images import load_image
    from mieruka.metrics import average_drop, deletion, insertion, localize_in_photo, masked_confidence

    loaded = load_model("resnet18", str(weights), num_classes=5)
    files = [photos / "a" / "coffee.jpg", photos / "cat.jpg"]  # sorted by path, as the CLI finds them
    images = [load_image(f) for f in files]
    inputs = torch.stack([loaded.preprocess(image) for image in images])
    result = CAM(loaded.model, method="gradcam")(inputs)
    value = {(r["photo"], r["method"], r["metric"]): r["value"] for r in records}
    auc = deletion(loaded.model, inputs, result.maps, result.targets, steps=4).auc()
    gain = insertion(loaded.model, inputs, result.maps, result.targets, steps=4).auc()
    drop = average_drop(*masked_confidence(loaded.model, inputs, result.maps, result.targets))
    for i, name in enumerate(["a/coffee.jpg", "cat.jpg"]):
        assert value[(name, "gradcam", "deletion")] == pytest.approx(auc[i].item(), abs=1e-5)
        assert value[(name, "gradcam", "insertion")] == pytest.approx(gain[i].item(), abs=1e-5)
        assert value[(name, "gradcam", "drop")] == pytest.approx(drop[i].item(), abs=1e-5)
        box = loaded.preprocess.crop_box(images[i].size)
        hit, energy = localize_in_photo(result.maps[i : i + 1], box, images[i].size, boxes[name])
        assert value[(name, "gradcam", "pointing")] == float(hit[0])
        assert value[(name, "gradcam", "energy")] == pytest.approx(energy[0].item(), abs=1e-5)
        assert {r["target"] for r in records if r["photo"] == name} == {int(result.targets[i])}
    # the table's means are the per-image means; the interval holds the mean
    for row, cells in document["table"].items():
        for column, cell in cells.items():
            per_image = [value[(name, row, column)] for name in ("cat.jpg", "a/coffee.jpg")]
            assert cell["mean"] == pytest.approx(sum(per_image) / 2, abs=2e-6)
            assert cell["low"] - 1e-9 <= cell["mean"] <= cell["high"] + 1e-9 and cell["images"] == 2
    # the terminal table: a header with the directions, one line per row, the best cell marked
    table = run.stdout.splitlines()
    assert table[0].startswith("lower is better: deletion, drop; higher is better: insertion, increase")
    assert "over n photos" in table[0] and table[1].count("n=2") == 6  # each column's count of photos
    assert [line.split()[0] for line in table[2:6]] == ["gradcam", "layercam", "(random", "(centre"]
    gradcam_line = table[2]
    assert f"{document['table']['gradcam']['deletion']['mean']:.3f}" in gradcam_line
    best = document["best"]["deletion"]
    marked = next(
        line
        for line in table[2:6]
        if line.startswith({"random": "(random", "centre": "(centre"}.get(best, best))
    )
    assert f"{document['table'][best]['deletion']['mean']:.3f} [" in marked and "]*" in marked
    assert len(document["curves"]["deletion"]["fractions"]) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--metrics", "deletion,bogus"), "unknown metric 'bogus'"),
        (("--method", "gradcam,nosuchcam"), "nosuchcam"),
        (
            ("--metrics", "pointing"),
            "--metrics pointing needs ground truth: pass --boxes FILE or --masks DIR",
        ),
        (
            ("--masks", "nowhere"),
            "--masks nowhere: no such folder (a folder of PNG masks named like the photos)",
        ),
        (("--steps", "0"), "--steps must be at least 1"),
        (("--road-fractions", "0.5,1.5"), "--road-fractions"),
        (("--method", "rollout"), "--method rollout: attention maps need one of the timm ViT-family"),
        (
            ("--model", "timm:vit_base_patch16_siglip_224", "--random-weights", "--model-kwargs", "depth=2"),
            "has no classifier (num_classes=0): its output is a 768-wide embedding",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path, args, message):
    run = mieruka("evaluate", SAMPLES / "cat.jpg", *args, "--out", tmp_path / "out")
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ({"cat.jpg": [[0, 0, 10]]}, "is not four numbers"),
        (
            {"cat.jpg": {"box": [0, 0, 1, 1]}},
            'the entry of cat.jpg has [\'box\']: expected "boxes" and/or "mask"',
        ),
        ([], "expected an object of photo name -> boxes"),
    ],
)
def test_an_unreadable_boxes_file_is_one_line_and_exit_2(tmp_path, boxes, message):
    """A file not in any of the layouts is the flag's error: refused before any model loads."""
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    run = mieruka(
        "evaluate", SAMPLES / "cat.jpg", "--boxes", tmp_path / "boxes.json", "--out", tmp_path / "out"
    )
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["folder-in-the-way", "a-file", "under-a-file", "proc"])
def test_an_output_folder_that_cannot_take_the_results_is_refused_before_any_model_work(tmp_path, case):
    """Found up front, not after the whole evaluation; --model names no model, so a check that came
    after the model's loading would say so instead."""
    out = tmp_path / "out"
    if case == "folder-in-the-way":
        (out / "per_image.jsonl").mkdir(parents=True)
        message = (
            f"--out {out}: {out / 'per_image.jsonl'} is a folder, and evaluate writes a file there: "
            "move it away or choose another --out"
        )
    elif case == "a-file":
        out.write_text("")
        message = f"--out {out}: {out} is a file, not a folder: choose another --out"
    elif case == "under-a-file":
        (tmp_path / "file").write_text("")
        out = tmp_path / "file" / "out"
        message = f"--out {out}: {tmp_path / 'file'} is a file, not a folder: choose another --out"
    else:  # os.access says yes to root here; a file is tried
        if not Path("/proc/self").exists():
            pytest.skip("no /proc")
        out = Path("/proc/mieruka-out")
        message = "--out /proc/mieruka-out: cannot write there (/proc is not a writable folder): choose"
    run = mieruka("evaluate", SAMPLES / "cat.jpg", "--model", "no_such_model", "--out", out)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(f"mieruka: error: {message}"), run.stderr


def test_the_out_check_knows_every_file_evaluate_writes():
    from mieruka import scoreboard
    from mieruka.cli import EVALUATE_FILES

    names = (
        scoreboard.PER_IMAGE_FILE,
        scoreboard.METRICS_FILE,
        scoreboard.CURVES_PLOT,
        scoreboard.SANITY_PLOT,
    )
    assert sorted(EVALUATE_FILES) == sorted(names)


def _noise(path: Path, seed: int, size: tuple[int, int] = (64, 48)) -> None:
    """A small photo of seeded noise: a map with a peak somewhere, unlike on a flat colour."""
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=torch.Generator().manual_seed(seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(path)


def _library_localization(weights: Path, files: list[Path], truths: list) -> list[tuple[float, float]]:
    """(pointing, energy) of the predicted class's Grad-CAM per photo, from the library."""
    from mieruka import load_model
    from mieruka.cam import CAM
    from mieruka.images import load_image
    from mieruka.metrics import localize_in_photo

    loaded = load_model("resnet18", str(weights), num_classes=5)
    images = [load_image(f) for f in files]
    maps = CAM(loaded.model, method="gradcam")(torch.stack([loaded.preprocess(i) for i in images])).maps
    results = []
    for i, (image, truth) in enumerate(zip(images, truths)):
        crop = loaded.preprocess.crop_box(image.size)
        hit, energy = localize_in_photo(maps[i : i + 1], crop, image.size, truth)
        results.append((float(hit[0]), energy[0].item()))
    return results


def test_ground_truth_that_does_not_fit_costs_only_its_photo(tmp_path, weights):
    """A box outside its photo, an empty box, a mask of another size: one line each, exit status 2,
    and the good photos (boxes 0.6 px over the edge, clipped; a mask) evaluated and written."""
    from mieruka.boxes import read_mask

    photos, masks = tmp_path / "photos", tmp_path / "masks"
    names = ["boxed.png", "empty.png", "masked.png", "outside.png", "small-mask.png"]
    for seed, name in enumerate(names):
        _noise(photos / name, seed)
    mask = torch.zeros(48, 64, dtype=torch.uint8)
    mask[5:30, 10:40] = 1
    masks.mkdir()
    Image.fromarray(mask.numpy()).save(masks / "masked.png")
    Image.fromarray(mask[:24, :32].numpy()).save(masks / "small-mask.png")
    boxes = {
        "boxed.png": [[30, 0, 64.6, 48.5]],
        "outside.png": [[0, 0, 200, 10]],
        "empty.png": [[10, 10, 10, 20]],
        "ghost.png": [[0, 0, 1, 1]],
    }
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    run = mieruka(
        "evaluate", photos, *MODEL, "--weights", weights, "--method", "gradcam", "--metrics", "pointing,drop",
        "--boxes", tmp_path / "boxes.json", "--masks", masks, "--out", out,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    flag = f"--boxes {tmp_path / 'boxes.json'}"
    assert run.stderr.splitlines() == [
        f"mieruka: error: {flag} names 1 photo (ghost.png), not among the photos given: left out",
        f"mieruka: error: {flag}: empty.png: box [10.0, 10.0, 10.0, 20.0] is empty (x1 <= x0 or y1 <= y0): "
        "give corners [x0, y0, x1, y1] (COCO's [x, y, width, height] only in a COCO-style file)",
        f"mieruka: error: {flag}: outside.png: box [0.0, 0.0, 200.0, 10.0] lies outside the 64x48 photo "
        "(more than 1 px past its edge): fix the box or remove it",
        f"mieruka: error: {photos / 'small-mask.png'}: {masks / 'small-mask.png'}: the mask is 32x24 but its "
        "photo is 64x48: a mask covers the original photo pixel for pixel",
    ]
    assert "2 of 5 image(s) evaluated" in run.stdout and "3 failed" in run.stdout
    records = _lines(out / "per_image.jsonl")
    assert {r["photo"] for r in records if "error" in r} == {"empty.png", "outside.png", "small-mask.png"}
    value = {(r["photo"], r["metric"]): r["value"] for r in records if r.get("method") == "gradcam"}
    document = json.loads((out / "metrics.json").read_text())
    assert document["table"]["gradcam"]["pointing"]["images"] == 2 and document["settings"]["failed"] == 3
    expected = _library_localization(
        weights,
        [photos / "boxed.png", photos / "masked.png"],
        [[(30, 0, 64, 48)], read_mask(masks / "masked.png")],
    )
    for name, (hit, energy) in zip(["boxed.png", "masked.png"], expected):
        assert value[(name, "pointing")] == hit
        assert value[(name, "energy")] == pytest.approx(energy, abs=1e-5)
    assert 0 < value[("masked.png", "energy")] < 1


def test_photos_of_one_name_in_two_folders_never_share_boxes(tmp_path, weights):
    """x/cat.png and y/cat.png given together: each gets the boxes of its own longer name; a bare
    dog.png that fits both is an error naming both, and no photo scores on another's boxes."""
    for seed, name in enumerate(["x/cat.png", "y/cat.png", "x/dog.png", "y/dog.png"]):
        _noise(tmp_path / name, seed)
    left, right = [[0, 0, 32, 48]], [[32, 0, 64, 48]]
    boxes = {"x/cat.png": left, "y/cat.png": right, "dog.png": left}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "out"
    run = mieruka(
        "evaluate", tmp_path / "x", tmp_path / "y", *MODEL, "--weights", weights, "--method", "gradcam",
        "--metrics", "pointing", "--boxes", tmp_path / "boxes.json", "--out", out,
    )  # fmt: skip
    assert run.returncode == 2
    message = (
        f"--boxes {tmp_path / 'boxes.json'}: dog.png names both {tmp_path / 'x/dog.png'} and "
        f"{tmp_path / 'y/dog.png'}: name each photo by a longer path, such as x/dog.png"
    )
    assert run.stderr.splitlines() == [f"mieruka: error: {message}"] * 2
    records = _lines(out / "per_image.jsonl")
    energy = {
        r["file"]: r["value"] for r in records if r.get("method") == "gradcam" and r["metric"] == "energy"
    }
    cats = [tmp_path / "x/cat.png", tmp_path / "y/cat.png"]
    assert set(energy) == {str(path) for path in cats}
    for path, (_, expected) in zip(cats, _library_localization(weights, cats, [left, right])):
        assert energy[str(path)] == pytest.approx(expected, abs=1e-5)


def test_a_bad_photo_is_reported_and_the_good_ones_evaluated(tmp_path, weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SAMPLES / "rocket.jpg", folder / "rocket.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    run = mieruka(
        "evaluate", folder, *MODEL, "--weights", weights, "--method", "gradcam", "--metrics", "drop", "--out", out
    )  # fmt: skip
    assert run.returncode == 2
    assert "broken.jpg" in run.stderr and "1 of 2 image(s) evaluated" in run.stdout
    document = json.loads((out / "metrics.json").read_text())
    assert document["settings"]["failed"] == 1 and document["table"]["gradcam"]["drop"]["images"] == 1
    records = _lines(out / "per_image.jsonl")
    assert next(r for r in records if "error" in r)["photo"] == "broken.jpg"
    assert {r["photo"] for r in records if "value" in r} == {"rocket.jpg"}
    # a second run into the same folder is refused unless --overwrite
    again = mieruka(
        "evaluate", folder / "rocket.jpg", *MODEL, "--weights", weights, "--metrics", "drop", "--out", out
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert json.loads((out / "metrics.json").read_text()) == document
    again = mieruka(
        "evaluate", folder / "rocket.jpg", *MODEL, "--weights", weights, "--metrics", "drop", "--out", out,
        "--overwrite", "--quiet",
    )  # fmt: skip
    assert again.returncode == 0 and again.stdout == ""
    assert json.loads((out / "metrics.json").read_text())["settings"]["failed"] == 0


def test_sanity_and_road_write_their_numbers_and_the_plot(tmp_path, weights):
    out = tmp_path / "out"
    run = mieruka(
        "evaluate", SAMPLES / "cat.jpg", *MODEL, "--weights", weights, "--method", "gradcam",
        "--metrics", "sanity,road", "--sanity-blocks", "2", "--road-fractions", "0.5", "--out", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    document = json.loads((out / "metrics.json").read_text())
    sanity = document["sanity"]
    # the head alone, then the layers below it in two groups
    assert len(sanity["blocks"]) == 3 and sanity["blocks"][0] == "fc"
    assert sanity["blocks"][-1].endswith("bn1,conv1")
    assert (
        len(sanity["rows"]["gradcam"]["spearman_abs"]) == 3 and sanity["rows"]["gradcam"]["images"] == [1] * 3
    )
    assert sanity["threshold"] == 0.5 and "head (fc) alone" in sanity["flag"]
    # a control knows nothing of the model: its map does not change at all, and is never flagged
    assert document["table"]["centre"]["sanity"]["mean"] == pytest.approx(1.0)
    assert set(sanity["flagged"]) <= {"gradcam"}
    head = sanity["rows"]["gradcam"]["spearman_abs"][0]
    assert head == pytest.approx(document["table"]["gradcam"]["sanity"]["mean"])
    assert ("gradcam" in sanity["flagged"]) == (head > 0.5) == ("! gradcam: Spearman |map|" in run.stdout)
    assert document["best"]["sanity"] == "gradcam"  # the controls are not candidates
    assert -0.5 <= document["table"]["gradcam"]["road"]["mean"] <= 0.5
    assert (out / "sanity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (out / "curves.png").exists()


def test_the_same_seed_gives_the_same_numbers_and_the_recorded_seed_is_the_one_used(tmp_path):
    """--random-weights builds the same network every run; the random map and the sanity check's
    re-initialization follow --seed, and metrics.json records the seed that was used."""
    photo = SAMPLES / "cat.jpg"
    common = (
        "evaluate", photo, "--model", "resnet18", "--num-classes", "5", "--random-weights", "--device", "cpu",
        "--method", "gradcam", "--metrics", "deletion,sanity", "--steps", "2", "--sanity-blocks", "1",
        "--seed", "3", "--quiet",
    )  # fmt: skip
    documents = []
    for folder in ("one", "two"):
        run = mieruka(*common, "--out", tmp_path / folder)
        assert run.returncode == 0, run.stderr
        documents.append(json.loads((tmp_path / folder / "metrics.json").read_text()))
    one, two = documents
    assert one["settings"]["seed"] == 3
    for key in ("table", "curves", "sanity", "best"):
        assert one[key] == two[key], key
    assert _lines(tmp_path / "one" / "per_image.jsonl") == _lines(tmp_path / "two" / "per_image.jsonl")

    # the recorded seed is the one used: photo 0's random map is random_map(seed + 0) at the layer's
    # grid, scored on the same (seeded) network; another seed draws another map
    from mieruka import load_model
    from mieruka.images import load_image
    from mieruka.metrics import deletion, random_map

    loaded = load_model("resnet18", num_classes=5, random_weights=True)
    inputs = loaded.preprocess(load_image(photo))[None]
    targets = loaded.model(inputs).argmax(1)
    size = tuple(inputs.shape[-2:])

    def auc(seed: int) -> float:
        chance = random_map(1, size, seed=seed, grid=(7, 7))
        return deletion(loaded.model, inputs, chance, targets, steps=2).auc().item()

    assert one["table"]["random"]["deletion"]["mean"] == pytest.approx(auc(3), abs=1e-5)
    assert one["table"]["random"]["deletion"]["mean"] != pytest.approx(auc(4), abs=1e-5)


def test_the_default_model_on_a_sample_photo(tmp_path):
    run = mieruka(
        "evaluate", SAMPLES / "cat.jpg", "--method", "gradcam", "--steps", "4", "--out", tmp_path / "out"
    )
    assert run.returncode == 0, run.stderr
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert document["settings"]["model"] == "efficientnet_lite0" and document["settings"]["layer"]
    # a trained model's Grad-CAM beats the random map on deletion on this photo
    assert document["table"]["gradcam"]["deletion"]["mean"] < document["table"]["random"]["deletion"]["mean"]


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--help"],
        ["evaluate", str(SAMPLES / "cat.jpg"), "--metrics", "bogus"],
        ["evaluate", str(SAMPLES / "cat.jpg"), "--metrics", "pointing"],
        ["evaluate", str(SAMPLES / "cat.jpg"), "--method", "gradkam"],
    ],
)
def test_help_and_flag_errors_do_not_import_torch(argv):
    code = (
        "import sys\nfrom mieruka.cli import main\ntry:\n"
        f"    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "TORCH=False" in run.stderr, run.stderr


def test_evaluation_gathers_batches_into_the_table():
    from mieruka.evaluate import BatchScores, Evaluation, format_table

    evaluation = Evaluation()
    for deletion_values, drop_values in (([0.1, 0.3], [0.2, float("nan")]), ([0.2], [0.4])):
        evaluation.add(
            BatchScores(
                {
                    "gradcam": {"deletion": torch.tensor(deletion_values), "drop": torch.tensor(drop_values)},
                    "random": {
                        "deletion": torch.tensor(deletion_values) + 1,
                        "drop": torch.tensor(drop_values) - 0.1,
                    },
                },
                torch.zeros(len(deletion_values), dtype=torch.long),
            )
        )
    table = evaluation.table()
    assert table["gradcam"]["deletion"].mean == pytest.approx(0.2)
    assert table["gradcam"]["drop"].mean == pytest.approx(0.3)  # the NaN is left out
    assert table["gradcam"]["drop"].count == 2 and table["gradcam"]["deletion"].count == 3
    # the best method: the random map beats Grad-CAM on drop, which a note says, but is no candidate
    marks = evaluation.best(table)
    assert marks == {"deletion": "gradcam", "drop": "gradcam"}
    assert evaluation.notes(table, marks) == [
        "drop: the random map (0.200) beats every method (best: gradcam, 0.300)"
    ]
    text = evaluation.text().splitlines()
    assert text == format_table(table, marks, notes=evaluation.notes(table, marks)).splitlines()
    assert text[0].startswith("lower is better: deletion, drop;")
    assert "deletion (v n=3)" in text[1] and "drop (v n=2)" in text[1]
    assert text[2].startswith("gradcam") and "0.200 [" in text[2] and "]*" in text[2]
    assert text[3].startswith("(random map)") and "*" not in text[3]
    assert text[4].startswith("drop: the random map")


def _randomization(head: list[float], constant: list[bool]):
    from mieruka.metrics.sanity import Randomization

    values = torch.tensor([head, [0.1] * len(head)])
    flags = torch.tensor([constant, [False] * len(head)])
    return Randomization(["fc", "conv"], values, values.clone(), values.clone(), flags, True)


def test_flags_constant_maps_and_counts_in_the_table_and_the_document():
    """A method whose maps keep their ranking with the head randomized is flagged (! and a line); a
    map that became constant is undefined: left out of the mean, counted, said, and never "best"."""
    from mieruka.evaluate import BatchScores, Evaluation
    from mieruka.scoreboard import metrics_document

    nan = float("nan")
    evaluation = Evaluation()
    evaluation.add(
        BatchScores(
            {
                "gradcam": {"sanity": torch.tensor([0.2, nan, 0.3])},  # photo 1's map became constant
                "collapsed": {"sanity": torch.tensor([nan, nan, nan])},  # every map did: no value at all
                "guidedbackprop": {"sanity": torch.tensor([0.9, 0.8, 0.85])},
                "random": {"sanity": torch.tensor([1.0, 1.0, 1.0])},
            },
            torch.zeros(3, dtype=torch.long),
            randomization={
                "gradcam": _randomization([0.2, nan, 0.3], [False, True, False]),
                "collapsed": _randomization([nan, nan, nan], [True, True, True]),
                "guidedbackprop": _randomization([0.9, 0.8, 0.85], [False] * 3),
                "random": _randomization([1.0, 1.0, 1.0], [False] * 3),
            },
        )
    )
    table = evaluation.table()
    assert table["gradcam"]["sanity"].mean == pytest.approx(0.25) and table["gradcam"]["sanity"].count == 2
    assert evaluation.best(table) == {"sanity": "gradcam"}  # not the undefined one, not a control
    assert evaluation.flagged(table) == {"guidedbackprop": pytest.approx(0.85)}  # the control is not flagged
    text = evaluation.text().splitlines()
    assert "sanity (v n=3)" in text[1] and "! flagged by the sanity check" in text[0]
    rows = {line.split()[0]: line for line in text[2:6]}
    assert "0.250 [" in rows["gradcam"] and rows["gradcam"].endswith("* n=2")
    assert rows["collapsed"].endswith("n/a") and rows["guidedbackprop"].endswith("] !")
    assert text[6].startswith(
        "! guidedbackprop: Spearman |map| 0.850 > 0.5 with the head (fc) alone randomized"
    )
    assert text[7] == (
        "gradcam: 1 of 3 map(s) became constant with the head randomized: no ranking, so no similarity; "
        "left out of its sanity mean"
    )
    assert text[8].startswith("collapsed: 3 of 3 map(s) became constant")

    document = metrics_document(evaluation, {})
    assert document["table"]["gradcam"]["sanity"]["images"] == 2
    assert document["table"]["collapsed"]["sanity"] == {"mean": None, "low": None, "high": None, "images": 0}
    assert document["sanity"]["flagged"] == {"guidedbackprop": 0.85}
    assert document["sanity"]["rows"]["gradcam"]["constant"] == [1, 0]
    assert document["sanity"]["rows"]["gradcam"]["images"] == [2, 3]
    assert document["sanity"]["rows"]["gradcam"]["spearman_abs"][0] == pytest.approx(0.25)
    assert document["best"] == {"sanity": "gradcam"} and document["notes"] == text[6:]


def test_guided_backprop_is_flagged_and_gradcam_is_not(shapes_net, held_out):
    """Adebayo et al. through the evaluation: with the head alone randomized, Guided Backpropagation's
    maps of the trained ShapesNet stay similar and are flagged; Grad-CAM's change and are not. Grad-CAM++
    and LayerCAM, whose weights keep only positive gradients, mostly return the activations behind the
    global average pooling, and are flagged too (the README says so)."""
    from mieruka import CAM
    from mieruka.evaluate import Evaluation, evaluate_batch

    images = held_out[0][:16]
    evaluation = Evaluation()
    methods = ["gradcam", "gradcam++", "layercam", "guidedbackprop"]
    evaluation.add(evaluate_batch(CAM(shapes_net), images, methods, ["sanity"]))
    table = evaluation.table()
    assert list(evaluation.flagged(table)) == methods[1:]
    assert table["gradcam"]["sanity"].mean < 0.5 < table["guidedbackprop"]["sanity"].mean
    assert evaluation.head() == "fc" and len(evaluation.randomization["gradcam"][0].blocks) == 5
    assert "! guidedbackprop: Spearman |map|" in evaluation.text()


def test_the_command_the_settings_and_the_library_share_their_defaults():
    """One set of defaults (mieruka.metric_names): the command's flags, Settings and the functions."""
    import inspect

    from mieruka.cli import build_parser
    from mieruka.evaluate import Settings
    from mieruka.metrics import deletion, insertion, parameter_randomization, random_map, road

    args = build_parser().parse_args(["evaluate", "photo.jpg"])
    settings = Settings()

    def default(function, name):
        return inspect.signature(function).parameters[name].default

    assert args.steps == settings.steps == default(deletion, "steps") == default(insertion, "steps") == 20
    fractions = tuple(float(p) for p in args.road_fractions.split(","))
    assert fractions == settings.road_fractions == tuple(default(road, "fractions")) == (0.2, 0.4, 0.6, 0.8)
    assert (
        args.batch_size
        == settings.batch_size
        == default(deletion, "batch_size")
        == default(road, "batch_size")
    )
    assert settings.deletion_substrate == default(deletion, "substrate")
    assert settings.insertion_substrate == default(insertion, "substrate")
    assert args.tolerance == settings.tolerance and args.sanity_blocks == settings.sanity_blocks
    assert (
        args.seed == settings.seed == default(random_map, "seed") == default(parameter_randomization, "seed")
    )


def test_the_random_control_is_drawn_per_photo_at_the_grid():
    from mieruka.metric_names import parse_metrics
    from mieruka.metrics import random_map

    # photo k of a batch is drawn from seed + k: the same map whichever photos share its batch
    batch = random_map(3, (14, 14), seed=5, grid=(7, 7))
    assert torch.equal(batch[2], random_map(1, (14, 14), seed=7, grid=(7, 7))[0])
    assert torch.equal(random_map(2, (14, 14), seed=[7, 5], grid=(7, 7)), batch[[2, 0]])
    # at the grid: the grid's noise upsampled as the methods' maps are; without one, per pixel
    from mieruka.maps import upsample

    assert torch.equal(batch[:1], upsample(random_map(1, (7, 7), seed=5), (14, 14)))
    assert batch.min() >= 0 and batch.max() <= 1
    with pytest.raises(ValueError, match="one seed per map"):
        random_map(2, (7, 7), seed=[1])
    # a column's name is taken for the metric that gives it
    assert parse_metrics("increase,energy,deletion") == ["drop", "pointing", "deletion"]
