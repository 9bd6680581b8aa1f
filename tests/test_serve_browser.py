"""mieruka serve in a real browser: start the command, upload a photo, switch method and class, move the
opacity slider, and check what the page shows. Screenshots of each step go to out/screenshots/serve-*.png.

The server is `mieruka serve` itself, in a subprocess, with a seeded ResNet-18 saved as a state_dict
and three Japanese class names (the system has no CJK font: the page must bring its own).
"""

from __future__ import annotations

import base64
import io
import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("playwright")

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["犬", "猫", "鳥"]
MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, folder) of a running `mieruka serve FOLDER` with a small seeded model."""
    base = tmp_path_factory.mktemp("serve-browser")
    torch.manual_seed(0)
    weights = base / "resnet18-3.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    labels = base / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    folder = base / "photos"
    (folder / "more").mkdir(parents=True)
    shutil.copy(ROOT / "samples" / "cat.jpg", folder / "cat.jpg")
    shutil.copy(ROOT / "samples" / "coffee.jpg", folder / "more" / "coffee.jpg")
    command = [
        sys.executable, "-m", "mieruka", "serve", str(folder), "--model", "resnet18", "--weights", str(weights),
        "--num-classes", "3", "--labels", str(labels), "--device", "cpu", "--port", "0",
        "--max-upload-mb", str(MAX_UPLOAD_MB),
    ]  # fmt: skip
    with open(base / "server.log", "w+", encoding="utf-8") as log:
        server = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"},
        )
        try:
            line = server.stdout.readline()  # printed once the model is loaded and the port taken
            if "http://" not in line:
                server.wait(timeout=30)
                log.seek(0)
                pytest.fail(f"mieruka serve did not start: {line}{log.read()}")
            yield line.split()[2].rstrip("/"), folder
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
            server.stdout.close()


def open_viewer(page, url: str) -> list[str]:
    """Open the page; returns the list of errors it throws, which the test checks at the end."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("body[data-state=ready]")
    return errors


def upload_and_wait(page, path: Path) -> dict:
    return changed_and_wait(page, lambda: page.set_input_files("#upload", str(path)))


def changed_and_wait(page, action) -> dict:
    """Do `action` (which asks for new maps) and wait until the page shows them: the answer to the
    last request (changes made while one is running are sent together once it is back)."""
    answers = []

    def keep(response) -> None:
        if response.url.endswith("/api/explain"):
            answers.append(response)

    page.on("response", keep)
    try:
        with page.expect_response("**/api/explain"):
            action()
        page.wait_for_selector("body[data-state=ready]")
    finally:
        page.remove_listener("response", keep)
    return answers[-1].json()


def canvas_pixels(page, index: int = 0) -> np.ndarray:
    url = page.evaluate("(i) => document.querySelectorAll('#grid canvas')[i].toDataURL('image/png')", index)
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def map_levels(result: dict, method: str, target: int = 0) -> np.ndarray:
    data = base64.b64decode(result["maps"][method][target]["png"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)))


def expected_overlay(photo: np.ndarray, levels: np.ndarray, box, colormap: str, alpha: float) -> np.ndarray:
    """mieruka's overlay (render.overlay) of the served map on the shown photo."""
    from mieruka.render import overlay

    x0, y0, x1, y1 = box
    inside = torch.zeros(levels.shape, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    pixels = torch.from_numpy(photo.astype(np.uint8)).permute(2, 0, 1)
    maps = torch.from_numpy(levels.copy()).float() / 255.0
    return overlay(pixels, maps, inside, colormap=colormap, alpha=alpha).permute(1, 2, 0).numpy().astype(int)


def test_the_viewer_explains_an_upload_and_switches_method_and_class(page, served, screenshots):
    url, folder = served
    errors = open_viewer(page, url)
    assert "resnet18" in page.text_content("#model")
    page.screenshot(path=screenshots / "serve-1-start.png", full_page=True)

    # 1. upload: the overlay appears, coloured in the page exactly as mieruka draws it
    first = upload_and_wait(page, folder / "cat.jpg")
    assert page.locator("#grid figure").count() == 1
    predicted = first["targets"][0]["label"]
    assert predicted in LABELS and predicted in page.text_content("#grid .target-label")
    photo = np.asarray(Image.open(io.BytesIO(page.request.get(url + first["photo"]["url"]).body())))
    shown = canvas_pixels(page)
    assert shown.shape[:2] == (first["photo"]["height"], first["photo"]["width"])
    assert (
        np.abs(shown - expected_overlay(photo, map_levels(first, "gradcam"), first["box"], "jet", 0.5)).max()
        <= 1
    )
    assert np.abs(shown - photo).mean() > 5  # the map is on it
    page.screenshot(path=screenshots / "serve-2-uploaded.png", full_page=True)

    # 2. another method: a different picture, named under it
    second = changed_and_wait(
        page, lambda: (page.check("input[value=layercam]"), page.uncheck("input[value=gradcam]"))
    )
    page.wait_for_selector("#grid figure[data-method=layercam]")
    assert page.locator("#grid figure").count() == 1
    assert second["methods"] == ["layercam"] and page.text_content("#grid figcaption").strip() == "layercam"
    layercam = canvas_pixels(page)
    assert np.abs(layercam - shown).mean() > 1
    page.screenshot(path=screenshots / "serve-3-method.png", full_page=True)

    # 3. side by side
    changed_and_wait(page, lambda: page.check("input[value=gradcam]"))
    page.wait_for_function("document.querySelectorAll('#grid figure').length === 2")
    assert [f.get_attribute("data-method") for f in page.locator("#grid figure").all()] == [
        "gradcam",
        "layercam",
    ]
    page.screenshot(path=screenshots / "serve-4-side-by-side.png", full_page=True)

    # 4. another class: its name shows, and its map differs
    other = next(label for label in LABELS if label != predicted)

    def choose_class():
        page.fill("#class", other)
        page.press("#class", "Enter")
        page.locator("#class").blur()

    third = changed_and_wait(page, choose_class)
    assert [t["label"] for t in third["targets"]] == [other]
    page.wait_for_function(
        "(label) => document.querySelector('#grid .target-label').textContent.startsWith(label)", arg=other
    )
    assert page.locator("input[name=what][value=class]").is_checked()
    assert np.abs(canvas_pixels(page) - shown).mean() > 1
    page.screenshot(path=screenshots / "serve-5-class.png", full_page=True)

    # 5. the top 3 classes, each with both methods
    top = changed_and_wait(page, lambda: page.check("input[name=what][value=topk]"))
    assert [t["label"] for t in top["targets"]] == [row["label"] for row in top["top5"][:3]]
    page.wait_for_function("document.querySelectorAll('#grid figure').length === 6")
    headings = [h.text_content() for h in page.locator("#grid .target-label").all()]
    assert [h.split()[0] for h in headings] == [t["label"] for t in top["targets"]]
    page.screenshot(path=screenshots / "serve-6-top-k.png", full_page=True)

    # 6. opacity and colormap: the picture changes, and nothing is asked of the server
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    before = canvas_pixels(page)
    page.focus("#opacity")
    page.keyboard.press("End")  # opacity 1.00
    page.wait_for_function("document.querySelector('#opacity-value').textContent === '1.00'")
    page.wait_for_timeout(300)  # one animation frame at least
    opaque = canvas_pixels(page)
    assert np.abs(opaque - before).mean() > 5
    x0, y0, x1, y1 = top["box"]
    jet = expected_overlay(photo, map_levels(top, "gradcam"), top["box"], "jet", 1.0)
    assert np.abs(opaque[y0:y1, x0:x1] - jet[y0:y1, x0:x1]).max() <= 1  # the map's colours alone
    page.screenshot(path=screenshots / "serve-7-opacity.png", full_page=True)
    page.select_option("#colormap", "viridis")
    page.wait_for_timeout(300)
    viridis = canvas_pixels(page)
    assert np.abs(viridis - opaque).mean() > 5
    expected = expected_overlay(photo, map_levels(top, "gradcam"), top["box"], "viridis", 1.0)
    assert np.abs(viridis - expected).max() <= 1
    page.screenshot(path=screenshots / "serve-8-colormap.png", full_page=True)
    assert asked == [], f"changing opacity and colormap sent requests: {asked}"
    assert errors == []


def test_japanese_labels_are_drawn_with_the_viewers_font(page, served, screenshots):
    """This machine has no CJK font: the page's own @font-face must draw 犬, 猫, 鳥, and 개, 새 from the
    `korean` extra the dev install brings (tofu boxes are all alike; real glyphs are not)."""
    url, folder = served
    errors = open_viewer(page, url)
    upload_and_wait(page, folder / "cat.jpg")
    page.wait_for_function("document.fonts.check('20px \"mieruka ja\"', '猫')")
    assert page.evaluate("document.fonts.check('20px \"mieruka ja\"', '犬猫鳥')")
    page.evaluate(
        """() => {
        for (const [i, text] of ['犬', '猫', '鳥', '개', '새'].entries()) {
            const span = document.createElement('span');
            span.className = 'label probe';
            span.id = 'probe-' + i;
            span.textContent = text;
            span.style.fontSize = '40px';
            document.querySelector('#status').append(span);
        }
    }"""
    )
    korean = "async () => (await document.fonts.load('40px \"mieruka ko\"', '개새')).length"
    assert page.evaluate(korean) == 1  # the face was fetched from the viewer and loaded
    page.evaluate("document.fonts.ready")
    glyphs = [
        np.asarray(Image.open(io.BytesIO(page.locator(f"#probe-{i}").screenshot())).convert("L"))
        for i in range(5)
    ]
    assert all(g.min() < 128 for g in glyphs)  # something dark was drawn
    for first, second in itertools.combinations(glyphs, 2):
        assert first.shape != second.shape or not np.array_equal(first, second)
    page.locator("#grid .target").first.screenshot(path=screenshots / "serve-9-japanese-label.png")
    assert errors == []


def test_a_photo_from_the_folder_opens(page, served, screenshots):
    url, _ = served
    errors = open_viewer(page, url)
    options = [o.get_attribute("value") for o in page.locator("#folder-files option").all()]
    assert options == ["cat.jpg", "more/coffee.jpg"]
    page.fill("#folder-filter", "coffee")
    assert page.locator("#folder-files option").count() == 1
    result = changed_and_wait(page, lambda: page.select_option("#folder-files", "more/coffee.jpg"))
    assert result["photo"]["name"] == "more/coffee.jpg"
    assert "more/coffee.jpg" in page.text_content("#status")
    page.screenshot(path=screenshots / "serve-10-folder.png", full_page=True)
    assert errors == []


def test_bad_uploads_get_a_message_in_the_page(page, served, screenshots, tmp_path):
    url, folder = served
    errors = open_viewer(page, url)
    upload_and_wait(page, folder / "cat.jpg")

    broken = tmp_path / "broken.jpg"
    broken.write_bytes((folder / "cat.jpg").read_bytes()[:500])
    with page.expect_response("**/api/upload") as answer:
        page.set_input_files("#upload", str(broken))
    assert answer.value.status == 400
    page.wait_for_selector("#message:not([hidden])")
    assert "broken.jpg: not a readable image" in page.text_content("#message")
    assert page.locator("#grid figure").count() == 1  # the photo before is still shown
    page.screenshot(path=screenshots / "serve-11-bad-upload.png", full_page=True)

    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > MAX_UPLOAD_MB * 2**20
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.set_input_files("#upload", str(big))
    page.wait_for_function("document.querySelector('#message').textContent.includes('big.png')")
    assert f"over the upload limit of {MAX_UPLOAD_MB:.1f} MB" in page.text_content("#message")
    assert not [u for u in asked if "/api/upload" in u]  # refused before sending it
    page.screenshot(path=screenshots / "serve-12-too-large.png", full_page=True)

    # the server refuses it too, when a page does not check first
    status = page.evaluate(
        """async () => {
        const form = new FormData();
        form.append('photo', new Blob([new Uint8Array(3 * 2 ** 20)]), 'big.png');
        const response = await fetch('/api/upload', {method: 'POST', body: form});
        return [response.status, (await response.json()).error];
    }"""
    )
    assert status[0] == 413 and "upload limit" in status[1]
    assert errors == []
