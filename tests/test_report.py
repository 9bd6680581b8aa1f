"""The HTML report: built from a real folder run, opened from file:// in Chromium, used as a person would.

One run of the command per module (40 tiny photos, two of them unreadable, a 3-class resnet18 whose
classes are 犬, 猫 and 鳥); each browser test opens its report and checks what the page shows.
"""

from __future__ import annotations

import io
import itertools
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

from mieruka.report.data import crop_fractions, display_names, page_data

LABELS = ("犬", "猫", "鳥")
PHOTOS = 38  # readable photos; two more files cannot be read


def mieruka(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mieruka", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def records_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def shapes(folder: Path, count: int = PHOTOS) -> list[Path]:
    """`count` 64x64 photos of a coloured disc or square on a coloured ground, some in a subfolder."""
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:64, 0:64]
    paths = []
    for i in range(count):
        ground = rng.integers(0, 256, 3)
        ink = 255 - ground
        cx, cy, radius = rng.integers(14, 50), rng.integers(14, 50), rng.integers(6, 14)
        inside = (
            (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
            if i % 2
            else (abs(x - cx) <= radius) & (abs(y - cy) <= radius)
        )
        pixels = np.where(inside[..., None], ink, ground).astype(np.uint8)
        odd = " #5 100%" if i == 5 else ""  # URL syntax in a file name: the page must still find it
        path = folder / ("more" if i >= 30 else "") / f"shape_{i:02d}{odd}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def run40(tmp_path_factory) -> Path:
    """A folder run of 38 photos and 2 unreadable files; its output folder (report on by default)."""
    root = tmp_path_factory.mktemp("report")
    photos = root / "photos"
    shapes(photos)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "empty.png").write_bytes(b"")
    torch.save(varied_head_resnet18(sorted(photos.rglob("shape_*.png"))).state_dict(), root / "ft.pth")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    out = root / "out"
    run = mieruka(
        "explain", photos, "--out", out, "--model", "resnet18", "--num-classes", len(LABELS),
        "--weights", root / "ft.pth", "--labels", root / "labels.txt", "--batch-size", 8, "--workers", 0,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr  # two photos failed; the others are explained and reported
    assert (out / "report.html").is_file() and f"-> {out}/ (results.jsonl, report.html)" in run.stdout
    assert {r["label"] for r in explained(out)} == set(LABELS)  # every class occurs: filters mean something
    return out


def varied_head_resnet18(photos: list[Path]) -> torch.nn.Module:
    """A random resnet18 with a 3-class head that predicts every class on these photos: its classes
    are the centroids of three groups of their features (a random head predicts one class for all)."""
    from mieruka import load_model

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(LABELS)).eval()
    preprocess = load_model("resnet18", random_weights=True, num_classes=len(LABELS)).preprocess
    head, model.fc = model.fc, torch.nn.Identity()
    with torch.no_grad():
        features = model(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in photos]))
    mean = features.mean(0)
    centred = features - mean
    centroids = torch.stack([centred[k :: len(LABELS)].mean(0) for k in range(len(LABELS))])
    weight = centroids / centroids.norm(dim=1, keepdim=True) * 8 / centred.norm(dim=1).mean()
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(-weight @ mean)  # logits of the centred features: no class wins them all
    model.fc = head
    return model


def explained(out: Path) -> list[dict]:
    return [r for r in records_of(out) if "error" not in r]


def open_report(page, out: Path):
    page.goto((out / "report.html").as_uri())
    page.wait_for_selector("body[data-ready]")
    return page


def shown(page) -> list[dict]:
    """The cards on the page, in order: name, label and probability as shown, and the exact value."""
    return page.eval_on_selector_all(
        ".card",
        """cards => cards.map(card => ({
            name: card.querySelector('.name').textContent,
            label: card.querySelector('.label').textContent,
            shown: card.querySelector('.prob').textContent,
            p: Number(card.dataset.p),
        }))""",
    )


# ---- the command ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_run_writes_its_report_its_settings_and_the_small_pictures(run40):
    records = explained(run40)
    assert len(records) == PHOTOS and {r["label"] for r in records} <= set(LABELS)
    settings = json.loads((run40 / "run.json").read_text(encoding="utf-8"))  # mieruka.runs writes it
    assert settings["model"] == "resnet18" and settings["weights"].startswith("ft.pth (")
    assert settings["layer"] == "layer4" and settings["method"] == ["gradcam"]
    assert set(settings["versions"]) >= {"mieruka", "torch", "torchvision"} and settings["created"]
    for record in records:
        for key in ("thumb", "view", "heat"):
            assert (run40 / record[key]).is_file() and record[key].startswith("report/")
        assert 0.0 <= record["centre_energy"] <= 1.0 and record["size"] == [64, 64]
    page = (run40 / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page  # nothing from the network
    assert not [p for p in run40.rglob("*") if p.name.endswith(".part")]


@pytest.mark.slow
def test_report_of_a_folder_without_a_run_is_one_line_and_exit_2(tmp_path):
    run = mieruka("report", tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and "results.jsonl" in run.stderr
    assert "mieruka explain" in run.stderr and str(tmp_path) in run.stderr
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_a_report_of_maps_only_is_refused_before_anything_runs(tmp_path):
    shapes(tmp_path / "photos", 2)
    run = mieruka("explain", tmp_path / "photos", "--format", "npy", "--report", "--out", tmp_path / "out")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert "--report" in run.stderr and "--format npy" in run.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_report_of_a_run_without_one_and_what_overwrite_leaves(tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    shapes(photos, 2)
    common = ("--out", out, "--model", "resnet18", "--random-weights", "--quiet")
    assert mieruka("explain", photos, "--no-report", *common).returncode == 0
    assert not (out / "report.html").exists() and not (out / "report").exists()
    run = mieruka("report", out)
    assert run.returncode == 0, run.stderr
    assert str(out / "report.html") in run.stdout
    thumbs = sorted((out / "report" / "thumbs").iterdir())
    assert len(thumbs) == 2 and all(Image.open(t).size == (64, 64) for t in thumbs)
    made = [t.stat().st_mtime_ns for t in thumbs]
    code = f"import sys; from mieruka.cli import main; main(['report', {str(out)!r}, '-q']); print('torch' in sys.modules)"
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == "False", again.stderr  # a report needs no torch: it starts at once
    assert [t.stat().st_mtime_ns for t in thumbs] == made  # thumbnails newer than the pictures: kept

    # one photo: no report by default; --overwrite takes the earlier run's report with it
    run = mieruka("explain", photos / "shape_00.png", *common, "--overwrite")
    assert run.returncode == 0, run.stderr
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == sorted([records_of(out)[0]["output"], "results.jsonl", "run.json"])
    assert mieruka("explain", photos / "shape_00.png", *common, "--overwrite", "--report").returncode == 0
    assert (out / "report.html").is_file()


# ---- the page's data -------------------------------------------------------------------------------------


def test_display_names_drop_the_folder_all_photos_share():
    assert display_names(["p/a/x.jpg", "p/y.jpg"]) == {"p/a/x.jpg": "a/x.jpg", "p/y.jpg": "y.jpg"}
    assert display_names(["/abs/x.jpg", "rel/y.jpg"]) == {
        "/abs/x.jpg": "/abs/x.jpg",
        "rel/y.jpg": "rel/y.jpg",
    }
    assert display_names(["x.jpg"]) == {"x.jpg": "x.jpg"}


def test_crop_fractions_stay_inside_the_photo():
    assert crop_fractions([25, 0, 75, 100], [100, 100]) == [0.25, 0.0, 0.75, 1.0]
    assert crop_fractions([-10, 0, 110, 50], [100, 100]) == [0.0, 0.0, 1.0, 0.5]
    assert crop_fractions(None, [1, 1]) is None and crop_fractions([0, 0, 1, 1], [0, 1]) is None


def test_page_data_groups_targets_joins_evaluate_and_keeps_errors():
    base = {"task": "classify", "method": "gradcam", "layer": "l4", "model": "m", "weights": "w"}
    records = [
        {
            **base,
            "file": "p/a.jpg",
            "label": "猫",
            "probability": 0.9,
            "output": "a_猫.png",
            "centre_energy": 0.1,
        },
        {
            **base,
            "file": "p/a.jpg",
            "label": "犬",
            "probability": 0.05,
            "output": "a_犬.png",
            "centre_energy": 0.5,
        },
        {**base, "file": "p/b.jpg", "label": None, "output": None, "note": "nothing to explain"},
        {"file": "p/c.jpg", "error": "p/c.jpg: not a readable image"},
    ]
    evaluation = [
        {"file": "p/a.jpg", "photo": "a.jpg", "method": "gradcam", "metric": "energy", "value": 0.7},
        {
            "file": "elsewhere/p/a.jpg",
            "photo": "a.jpg",
            "method": "gradcam",
            "metric": "deletion",
            "value": 0.2,
        },
        {"file": "p/a.jpg", "photo": "a.jpg", "method": "random", "metric": "deletion", "value": 0.5},
    ]
    data = page_data(records, None, evaluation, {"better": {"energy": "higher", "deletion": "lower"}})
    a, b = data["photos"]
    assert [data["labels"][t["label"]] for t in a["targets"]] == ["猫", "犬"]
    assert data["labels"][a["label"]] == "猫" and a["p"] == 0.9 and a["centre"] == 0.1
    assert a["metrics"] == {"energy|gradcam": 0.7, "deletion|gradcam": 0.2}  # the control row is left out
    assert (a["region"], a["regionKind"]) == (0.7, "box")  # evaluate's boxes are the main region
    assert b["targets"] == [] and b["note"] == "nothing to explain" and data["nothing"] == 1
    assert data["errors"] == [{"file": "p/c.jpg", "error": "p/c.jpg: not a readable image", "name": "c.jpg"}]
    assert [c["key"] for c in data["metrics"]] == ["energy|gradcam", "deletion|gradcam"]
    assert data["settings"]["model"] == "m" and data["settings"]["failed"] == 1


def test_a_map_that_shows_no_place_is_never_outside_the_main_region():
    """An empty map has no energy in the centre or in a box, and a flat one the region's share of area:
    neither says where the model looked, so neither is flagged as looking elsewhere."""
    base = {"task": "classify", "method": "gradcam", "probability": 0.99, "label": "cat", "output": "x.png"}
    records = [
        {**base, "file": "empty.jpg", "centre_energy": 0.0, "empty": True, "flat": False},
        {**base, "file": "flat.jpg", "centre_energy": 0.25, "empty": False, "flat": True},
        {**base, "file": "seen.jpg", "centre_energy": 0.1, "empty": False, "flat": False},
    ]
    evaluation = [
        {"file": r["file"], "photo": r["file"], "method": "gradcam", "metric": "energy", "value": 0.0}
        for r in records
    ]
    data = page_data(records, None, evaluation, {"better": {"energy": "higher"}})
    region = {photo["file"]: (photo["region"], photo["centre"]) for photo in data["photos"]}
    assert region == {"empty.jpg": (None, None), "flat.jpg": (None, None), "seen.jpg": (0.0, 0.1)}


def test_a_label_cannot_end_the_data_script(tmp_path):
    from mieruka.report.build import render_page

    data = page_data([{"file": "x.jpg", "label": "</script><b>", "output": "x.png", "method": "gradcam"}])
    page = render_page(data, [])
    blob = page[page.index('id="mieruka-data">') :]
    assert "</script><b>" not in blob[: blob.index("</script>")]
    assert json.loads(blob[len('id="mieruka-data">') : blob.index("</script>")])["labels"] == ["</script><b>"]


def test_a_report_that_fails_halfway_leaves_the_earlier_one_whole(tmp_path, monkeypatch):
    import mieruka._io
    from mieruka import build_report

    record = {"file": "x.jpg", "label": "猫", "probability": 0.9, "output": "x_猫.png", "method": "gradcam"}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    page = build_report(tmp_path)
    before = page.read_bytes()
    opened = mieruka._io.os.fdopen

    class DiskFull:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def write(self, text):
            self.stream.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(mieruka._io.os, "fdopen", lambda *a, **k: DiskFull(opened(*a, **k)))
    record["label"] = "犬"
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(OSError, match="No space"):
        build_report(tmp_path)
    assert page.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "results.jsonl",
    ]


# ---- in the browser ------------------------------------------------------------------------------------


def test_the_report_shows_38_photos_and_2_errors(page, run40, screenshots):
    open_report(page, run40)
    assert page.locator(".card").count() == PHOTOS
    assert page.locator("#stats [data-count=photo]").text_content() == "38"
    assert page.locator("#stats [data-count=error]").text_content() == "2"
    assert page.locator("#shown").text_content() == "38 photos"
    errors = page.eval_on_selector_all("#errors li", "items => items.map(i => i.dataset.file)")
    assert sorted(errors) == ["broken.jpg", "empty.png"]
    assert "not a readable image" in page.locator("#errors").text_content()
    names = {card["name"] for card in shown(page)}
    assert names == {
        Path(r["file"]).relative_to(run40.parent / "photos").as_posix() for r in explained(run40)
    }
    assert page.locator("[data-setting=model]").text_content() == "resnet18"
    assert page.locator("[data-setting=weights]").text_content() == "ft.pth"
    assert page.locator("[data-setting=layer]").text_content() == "layer4"
    assert "torchvision" in page.locator("[data-setting=versions]").text_content()
    counts = page.eval_on_selector_all(
        "#counts button", "bs => bs.map(b => [b.dataset.label, Number(b.querySelector('.n').textContent)])"
    )
    expected = {label: sum(r["label"] == label for r in explained(run40)) for label in LABELS}
    assert dict(counts) == {label: n for label, n in expected.items() if n}
    page.screenshot(path=screenshots / "report-grid.png", full_page=True)


def test_filtering_by_a_label_shows_only_that_label(page, run40, screenshots):
    records = explained(run40)
    labels = sorted(
        {r["label"] for r in records}, key=lambda label: sum(r["label"] == label for r in records)
    )
    assert len(labels) >= 2, "the run should predict more than one class for the filter to mean something"
    label = labels[0]
    open_report(page, run40)
    page.locator("#label").select_option(label=f"{label} ({sum(r['label'] == label for r in records)})")
    cards = shown(page)
    assert len(cards) == sum(r["label"] == label for r in records) < PHOTOS
    assert {card["label"] for card in cards} == {label}
    assert page.locator("#shown").text_content() == f"{len(cards)} of {PHOTOS} photos match"
    page.screenshot(path=screenshots / "report-filter-label.png", full_page=True)
    page.locator(f"#counts button[data-label='{label}']").click()  # the chip toggles the same filter off
    assert page.locator(".card").count() == PHOTOS


def test_sorting_by_confidence_orders_the_photos(page, run40, screenshots):
    open_report(page, run40)
    page.locator("#sort").select_option("name")
    page.locator("#sort").select_option("confidence")
    cards = shown(page)
    values = [card["p"] for card in cards]
    assert values == sorted((r["probability"] for r in explained(run40)), reverse=True)
    assert [float(card["shown"].rstrip("%")) for card in cards] == [round(100 * p, 1) for p in values]
    page.screenshot(path=screenshots / "report-sort-confidence.png", full_page=True)
    page.locator("#order").click()
    assert [card["p"] for card in shown(page)] == sorted(values)
    page.locator("#sort").select_option("name")
    names = [card["name"] for card in shown(page)]
    assert names[:2] == ["more/shape_30.png", "more/shape_31.png"] and names[-1] == "shape_29.png"


def test_search_finds_file_names(page, run40):
    open_report(page, run40)
    page.locator("#search").fill("SHAPE_1")
    page.wait_for_function("document.querySelectorAll('.card').length === 10")
    assert sorted(card["name"] for card in shown(page)) == [f"shape_{i}.png" for i in range(10, 20)]
    page.locator("#search").fill("#5 100%")
    page.wait_for_function("document.querySelectorAll('.card').length === 1")
    assert shown(page)[0]["name"] == "shape_05 #5 100%.png"
    page.locator(".card").click()
    loaded = "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"
    page.wait_for_function(f"({loaded})([...document.querySelectorAll('.card img, #viewer img')])")


def test_confident_but_outside_the_main_region(page, run40):
    """The filter shows the confident photos whose map puts less than the share of its energy in the
    centre; a map that shows no place (this random network leaves many empty) is never among them."""
    records = explained(run40)
    seen = [r for r in records if not (r["empty"] or r["flat"])]
    assert len(seen) >= 8 and len(seen) < len(records)  # both kinds are there to be told apart
    open_report(page, run40)
    page.locator("#outside").check()  # the defaults: p >= 0.8 and under 0.25 of the energy in the centre
    expected = {Path(r["file"]).name for r in seen if r["probability"] >= 0.8 and r["centre_energy"] < 0.25}
    assert {Path(card["name"]).name for card in shown(page)} == expected
    share = sorted(r["centre_energy"] for r in seen)[len(seen) // 2]  # half the maps that show a place
    page.locator("#confident").fill("0.4")
    page.locator("#confident").dispatch_event("change")
    page.locator("#share").fill(str(share))
    page.locator("#share").dispatch_event("change")
    wider = {Path(r["file"]).name for r in seen if r["probability"] >= 0.4 and r["centre_energy"] < share}
    assert {Path(card["name"]).name for card in shown(page)} == wider and len(wider) > len(expected)
    assert page.locator(".card .badge").count() == len(wider)


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_the_opacity_slider_changes_the_picture(page, run40, screenshots):
    open_report(page, run40)
    page.locator(".card").first.click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    first = shown(page)[0]
    assert viewer.locator("#viewer-title").text_content() == first["name"]
    figure = viewer.locator(".layer").first
    page.wait_for_function(
        "[...document.querySelectorAll('#viewer .stack img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#opacity").input_value() == "0.5"  # the run's --alpha
    half = figure.locator(".stack").screenshot(path=screenshots / "report-view-opacity-0.5.png")
    page.locator("#opacity").fill("1")
    assert page.locator("#opacity-value").text_content() == "1.00"
    full = figure.locator(".stack").screenshot(path=screenshots / "report-view-opacity-1.png")
    page.locator("#opacity").fill("0")
    none = figure.locator(".stack").screenshot()
    half, full, none = _pixels(half), _pixels(full), _pixels(none)
    assert half.shape == full.shape == none.shape
    assert np.abs(full - none).mean() > 20  # the heat alone against the photo alone
    assert np.abs(half - (full + none) / 2).mean() < 6  # halfway is the blend of the two
    page.screenshot(path=screenshots / "report-view.png")
    viewer.locator("#viewer-title").click()  # the arrow keys move the slider while it has the focus
    page.keyboard.press("ArrowRight")
    assert viewer.locator("#viewer-title").text_content() == shown(page)[1]["name"]
    viewer.locator("#viewer-prev").click()
    assert viewer.locator("#viewer-title").text_content() == first["name"]
    page.keyboard.press("Escape")
    assert not viewer.is_visible()


def test_japanese_labels_are_drawn_in_the_embedded_font(page, run40, screenshots):
    open_report(page, run40)
    page.evaluate("document.fonts.ready")
    assert page.evaluate("[...document.fonts].every(face => face.status === 'loaded')")
    present = [label for label in LABELS if page.locator(f"#counts button[data-label='{label}']").count()]
    assert len(present) >= 2
    assert page.evaluate(f"document.fonts.check('16px \"mieruka 2\"', {json.dumps(''.join(present))})")
    shots = {
        label: _pixels(page.locator(f"#counts button[data-label='{label}'] .name").screenshot())
        for label in present
    }
    page.locator("#counts").screenshot(path=screenshots / "report-japanese-labels.png")
    page.locator(".card").first.screenshot(path=screenshots / "report-japanese-card.png")
    # A browser with no CJK font draws each as the same empty box; here each is its own character...
    for one, other in itertools.pairwise(present):
        assert shots[one].shape != shots[other].shape or np.abs(shots[one] - shots[other]).sum() > 0
    # ...and the system's own fonts alone would not draw them: the embedded one does
    page.evaluate(
        """labels => {
            for (const [i, family] of [['own', 'sans-serif'], ['ours', getComputedStyle(document.body).fontFamily]].entries()) {
                const probe = document.createElement('span');
                probe.id = 'probe-' + family[0];
                probe.textContent = labels;
                probe.style.cssText = `font: 32px ${family[1]}; position: fixed; left: 10px; top: ${10 + 60 * i}px; background: #fff; color: #000; z-index: 99`;
                document.body.append(probe);
            }
        }""",
        "".join(present),
    )
    own, ours = (
        _pixels(page.locator("#probe-own").screenshot()),
        _pixels(page.locator("#probe-ours").screenshot()),
    )
    assert own.shape != ours.shape or np.abs(own - ours).sum() > 0
    card_label = page.locator(".card .label").first
    assert page.evaluate("el => getComputedStyle(el).fontFamily", card_label.element_handle()).startswith(
        '"mieruka 1", "mieruka 2"'
    )


def test_sorting_and_filtering_by_an_evaluate_metric(page, run40, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run40, out)
    records = explained(out)
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    values = {r["file"]: round(0.01 * i, 2) for i, r in enumerate(records)}
    lines = [
        {
            "file": file,
            "photo": Path(file).name,
            "method": "gradcam",
            "metric": "deletion",
            "value": value,
            "target": None,
        }
        for file, value in values.items()
    ]
    (evaluation / "per_image.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (evaluation / "metrics.json").write_text(json.dumps({"better": {"deletion": "lower"}, "settings": {}}))
    run = mieruka("report", out, "--evaluation", evaluation)
    assert run.returncode == 0, run.stderr
    open_report(page, out)
    page.locator("#sort").select_option("metric:deletion|gradcam")
    names = [card["name"] for card in shown(page)]
    by_value = sorted(values, key=values.get, reverse=True)  # lower is better: the worst first
    assert [Path(name).name for name in names] == [Path(file).name for file in by_value]
    page.locator("#metric-op").select_option("le")
    page.locator("#metric-value").fill("0.05")
    assert page.locator(".card").count() == 6


def test_a_card_says_when_its_map_shows_no_place(page, run40, tmp_path):
    """A flat or an empty map draws as one colour; the grid says so instead of letting it pass as heat."""
    out = tmp_path / "out"
    shutil.copytree(run40, out)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    explained_ones = [r for r in records if "error" not in r]
    for record in explained_ones:
        record["empty"] = record["flat"] = False
    explained_ones[0]["flat"] = explained_ones[1]["empty"] = True
    (out / "results.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    assert mieruka("report", out).returncode == 0
    open_report(page, out)
    notes = dict(
        page.eval_on_selector_all(
            ".card",
            "cards => cards.map(c => [c.querySelector('.name').textContent, c.querySelector('.note')?.textContent])",
        )
    )
    name = [Path(r["file"]).relative_to(run40.parent / "photos").as_posix() for r in explained_ones[:2]]
    assert (
        notes[name[0]] == "flat map: it shows no place" and notes[name[1]] == "empty map: it shows no place"
    )
    assert sum(note is not None for note in notes.values()) == 2
