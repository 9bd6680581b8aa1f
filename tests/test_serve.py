"""mieruka serve's API: maps that agree with the library, files only from the folder, uploads refused
clearly, one computation at a time. Starlette's TestClient, a tiny CNN, no browser (see
test_serve_browser.py for the page)."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient

from mieruka import CAM
from mieruka.images import Preprocess, decode_image
from mieruka.maps import normalize, to_photo
from mieruka.models import LoadedModel
from mieruka.render import colorize, overlay, show_on_photo, shrink
from mieruka.serve import Viewer, create_app, listen
from mieruka.serve.viewer import DISPLAY_PIXELS

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["犬", "猫", "鳥"]
LIMIT = 200_000  # bytes: the uploads' size limit of `tight_client`


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, global pooling, three classes: small, fast, seeded."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def small_loaded() -> LoadedModel:
    torch.manual_seed(3)
    return LoadedModel(SmallCNN().eval(), Preprocess(resize=72, crop=64), list(LABELS), "small", "small.pth")


def photo_bytes(size=(150, 100), fmt="PNG", seed=0) -> bytes:
    """A photo with structure (a bright disc on a gradient), encoded."""
    generator = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    disc = ((x - 0.6 * width) ** 2 + (y - 0.4 * height) ** 2) < (0.2 * min(size)) ** 2
    pixels = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 80)], -1)
    pixels[disc] = [250, 240, 60]
    pixels = (pixels + generator.integers(0, 20, pixels.shape)).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def viewer() -> Viewer:
    return Viewer(small_loaded())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """photos/ with a photo, a subfolder, a text file, and links in and out of it; outside/ beside it."""
    base = tmp_path_factory.mktemp("served")
    photos, outside = base / "photos", base / "outside"
    (photos / "sub").mkdir(parents=True)
    outside.mkdir()
    (photos / "a.png").write_bytes(photo_bytes())
    (photos / "sub" / "b.jpg").write_bytes(photo_bytes((120, 160), "JPEG", seed=1))
    (photos / "notes.txt").write_text("not a photo")
    (outside / "secret.png").write_bytes(photo_bytes(seed=2))
    (photos / "inside-link.png").symlink_to(photos / "a.png")
    (photos / "outside-link.png").symlink_to(outside / "secret.png")
    (photos / "outside-folder").symlink_to(outside, target_is_directory=True)
    return photos


@pytest.fixture(scope="module")
def client(viewer, folder) -> TestClient:
    return TestClient(create_app(viewer, folder), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def tight_client(viewer) -> TestClient:
    return TestClient(create_app(viewer, max_upload_bytes=LIMIT), base_url="http://127.0.0.1")


def upload(client, data: bytes, name: str = "photo.png"):
    return client.post("/api/upload", files={"photo": (name, data, "application/octet-stream")})


def levels(data_url: str) -> np.ndarray:
    """The 8-bit map of a data: URL PNG."""
    encoded = data_url.removeprefix("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))


# ---- what the page is offered -----------------------------------------------------------------


def test_the_address_accepts_connections_as_soon_as_it_is_printed():
    """The socket listens before the model loads: a browser opened at once waits, never refused."""
    sock = listen("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass  # queued by the kernel though nothing accepts yet
    finally:
        sock.close()


def test_info_lists_the_models_methods_layers_and_classes(client):
    info = client.get("/api/info").json()
    names = [m["name"] for m in info["methods"]]
    assert "gradcam" in names and "layercam" in names and "scorecam" in names
    assert "rollout" not in names and "gae" not in names  # attention: vision transformers only
    layers = [layer["name"] for layer in info["layers"]]
    assert info["auto_layer"] == "features" and "features.5" in layers
    assert "fc" not in layers and "pool" not in layers  # a vector and a 1x1 map are no maps
    assert info["labels"] == LABELS and info["max_top_k"] == 3
    assert info["folder"] == "photos" and info["max_upload_bytes"] == 20 * 2**20


def test_colormaps_are_the_tables_the_pictures_use(client):
    from mieruka.render import colormap_table

    tables = client.get("/api/colormaps").json()
    assert {"jet", "viridis", "turbo"} <= set(tables)
    assert np.array_equal(np.array(tables["jet"], dtype=np.uint8), colormap_table("jet").numpy())


def test_the_page_loads_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    static = ROOT / "src" / "mieruka" / "serve" / "static"
    for path in static.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name
        assert client.get(f"/static/{path.name}").status_code == 200


def test_fonts_for_labels_are_served(client):
    """As browsers load them: Chrome refuses NanumGothic as shipped (an empty TSI3 table)."""
    from fontTools.ttLib import TTFont

    from mieruka import fonts

    japanese = client.get("/fonts/ja.ttf")
    assert japanese.status_code == 200 and japanese.content == fonts.japanese().read_bytes()
    assert client.get("/fonts/latin.ttf").status_code == 200
    korean = client.get("/fonts/ko.ttf")  # the dev extra installs mieruka[korean]
    served = TTFont(io.BytesIO(korean.content))
    assert korean.status_code == 200 and "TSI3" in TTFont(fonts.korean()) and "TSI3" not in served
    assert served.getBestCmap() == TTFont(fonts.korean()).getBestCmap()  # every character still there
    chinese = client.get("/fonts/zh.otf")  # and mieruka[chinese]
    assert chinese.status_code == 200 and chinese.headers["content-type"] == "font/otf"
    assert TTFont(io.BytesIO(chinese.content)).getBestCmap()[ord("鸟")]
    assert client.get("/fonts/..%2F..%2Fetc%2Fpasswd").status_code == 404


# ---- maps agree with the library --------------------------------------------------------------


@pytest.mark.parametrize("size", [(150, 100), (1700, 1000)], ids=["as-is", "shrunk-for-display"])
def test_maps_equal_the_librarys_on_the_shown_photo(client, viewer, size):
    data = photo_bytes(size)
    photo = upload(client, data).json()
    result = client.post(
        "/api/explain", json={"photo": photo["id"], "methods": ["gradcam", "layercam"]}
    ).json()

    image = decode_image(data)
    loaded = viewer.loaded
    x = loaded.preprocess(image)[None]
    expected = CAM(loaded.model, "features", labels=LABELS).compare(x, ["gradcam", "layercam"])
    shown, box = shrink(image, loaded.preprocess.crop_box(image.size), DISPLAY_PIXELS)
    assert (photo["width"], photo["height"]) == shown.size
    assert max(shown.size) == min(max(size), DISPLAY_PIXELS)
    for method in ("gradcam", "layercam"):
        on_photo, _ = to_photo(normalize(expected[method].raw[0][None])[0], box, shown.size)
        got = levels(result["maps"][method][0]["png"]) / 255.0
        assert got.shape == (shown.height, shown.width)
        assert np.abs(got - on_photo[0].numpy()).max() <= 0.5 / 255 + 1e-6
        flags = {key: result["maps"][method][0][key] for key in ("empty", "flat")}
        assert flags == {"empty": bool(expected[method].empty[0]), "flat": bool(expected[method].flat[0])}
    index = int(expected["gradcam"].targets[0])
    assert result["targets"][0]["label"] == LABELS[index] == result["top5"][0]["label"]
    assert result["targets"][0]["probability"] == pytest.approx(float(expected["gradcam"].target_probs[0]))
    shown_png = np.asarray(Image.open(io.BytesIO(client.get(photo["url"]).content)))
    assert np.array_equal(shown_png, np.asarray(shown))


def test_overlay_coloured_from_the_served_map_is_the_picture_explain_writes(client, viewer):
    """What the page draws (the map's levels through the colormap's table, blended at the opacity,
    inside the crop) against mieruka's own overlay of the same photo: one grey level apart at most."""
    data = photo_bytes((150, 100))
    photo = upload(client, data).json()
    result = client.post("/api/explain", json={"photo": photo["id"], "methods": ["gradcam"]}).json()
    image = decode_image(data)
    loaded = viewer.loaded
    raw = CAM(loaded.model, labels=LABELS)(loaded.preprocess(image)[None]).raw[0]
    box = loaded.preprocess.crop_box(image.size)
    written = np.asarray(show_on_photo(image, raw, box, colormap="viridis", alpha=0.6, label=False))

    map_levels = torch.from_numpy(levels(result["maps"]["gradcam"][0]["png"]).copy())
    x0, y0, x1, y1 = result["box"]
    inside = torch.zeros(map_levels.shape, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
    drawn = overlay(pixels, map_levels.float() / 255.0, inside, colormap="viridis", alpha=0.6)
    difference = np.abs(drawn.permute(1, 2, 0).numpy().astype(int) - written.astype(int))
    assert difference.max() <= 1
    assert not torch.equal(colorize(map_levels.float() / 255.0, "viridis")[:, y0, x0], pixels[:, y0, x0])


# ---- switching method, class, layer -----------------------------------------------------------


def test_method_class_and_layer_switch_the_map(client):
    photo = upload(client, photo_bytes()).json()["id"]

    def explain(**asked):
        response = client.post("/api/explain", json={"photo": photo, **asked})
        assert response.status_code == 200, response.text
        return response.json()

    both = explain(methods=["gradcam", "layercam"])
    assert both["methods"] == ["gradcam", "layercam"] and both["layer"] == "features"
    gradcam = levels(both["maps"]["gradcam"][0]["png"])
    assert not np.array_equal(gradcam, levels(both["maps"]["layercam"][0]["png"]))

    predicted = both["targets"][0]["label"]
    other = next(label for label in LABELS if label != predicted)
    chosen = explain(methods=["gradcam"], target=other)
    assert [t["label"] for t in chosen["targets"]] == [other]
    assert not np.array_equal(gradcam, levels(chosen["maps"]["gradcam"][0]["png"]))
    by_index = explain(methods=["gradcam"], target=str(LABELS.index(other)))
    assert by_index["targets"][0]["label"] == other

    top = explain(methods=["gradcam", "eigencam"], top_k=3)
    assert [t["label"] for t in top["targets"]] == [row["label"] for row in top["top5"]]
    assert [t["rank"] for t in top["targets"]] == [1, 2, 3] and len(top["maps"]["eigencam"]) == 3

    shallow = explain(methods=["gradcam"], layer="features.1")
    assert shallow["layer"] == "features.1"
    assert not np.array_equal(gradcam, levels(shallow["maps"]["gradcam"][0]["png"]))


@pytest.mark.parametrize(
    ("asked", "status", "message"),
    [
        ({"methods": ["rollout"]}, 400, "needs a vision transformer"),
        ({"methods": ["nomethod"]}, 400, "unknown method"),
        ({"methods": []}, 200, ""),  # no methods: gradcam
        ({"layer": "fc"}, 400, "no layer 'fc'"),
        ({"target": "dog"}, 400, "its classes are"),
        ({"target": "7"}, 400, "3 classes"),
        ({"top_k": 9}, 400, "top-k must be between 1 and 3"),
        ({"top_k": 2, "target": "猫"}, 400, "exclude each other"),
        ({"top_k": "two"}, 400, "whole number"),
        ({"photo": "0123456789abcdef0123"}, 404, "open it again"),
    ],
)
def test_a_bad_request_gets_a_message(client, asked, status, message):
    photo = upload(client, photo_bytes()).json()["id"]
    response = client.post("/api/explain", json={"photo": photo, **asked})
    assert response.status_code == status
    if message:
        assert message in response.json()["error"]


def test_a_body_that_is_not_json_gets_a_message(client):
    response = client.post("/api/explain", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


# ---- the served folder ------------------------------------------------------------------------


def test_the_folder_lists_only_its_images(client):
    files = client.get("/api/files").json()
    assert files == {"files": ["a.png", "inside-link.png", "sub/b.jpg"], "truncated": False}


def test_a_photo_of_the_folder_opens_by_name(client):
    for name in ("a.png", "sub/b.jpg", "inside-link.png"):
        response = client.post("/api/open", json={"path": name})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../outside/secret.png", "'..' is refused"),
        ("sub/../../outside/secret.png", "'..' is refused"),
        ("..", "'..' is refused"),
        ("/etc/passwd", "absolute paths are refused"),
        ("ABSOLUTE", "absolute paths are refused"),  # the real path of the secret, filled in below
        ("C:/Windows/win.ini", "absolute paths are refused"),
        ("..\\outside\\secret.png", "backslashes"),
        ("outside-link.png", "leads outside the served folder"),
        ("outside-folder/secret.png", "leads outside the served folder"),
        ("notes.txt", "not an image file"),
        ("a.png\x00.txt", "NUL"),
        ("", "no file named"),
    ],
)
def test_a_path_outside_the_folder_is_refused(client, folder, name, why):
    if name == "ABSOLUTE":
        name = str(folder.parent / "outside" / "secret.png")
    response = client.post("/api/open", json={"path": name})
    assert response.status_code == 403
    assert why in response.json()["error"]


def test_a_missing_photo_is_not_found(client):
    response = client.post("/api/open", json={"path": "sub/nothing.jpg"})
    assert response.status_code == 404 and "no such image" in response.json()["error"]


def test_urls_never_reach_files_outside(client):
    for url in (
        "/static/../pyproject.toml",
        "/static/..%2f..%2f..%2fpyproject.toml",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/api/photos/..%2f..%2fpyproject.toml.png",
        "/fonts/..%2fviewer.js",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"[build-system]" not in response.content


def test_without_a_folder_nothing_is_opened_by_name(viewer):
    client = TestClient(create_app(viewer), base_url="http://127.0.0.1")
    assert client.get("/api/files").json()["files"] == []
    response = client.post("/api/open", json={"path": "a.png"})
    assert response.status_code == 404 and "serves no folder" in response.json()["error"]


# ---- uploads ----------------------------------------------------------------------------------


def test_an_oversized_upload_is_refused_with_a_message(tight_client):
    big = photo_bytes((400, 400), seed=5)  # noise: a PNG of several hundred KB
    assert len(big) > LIMIT
    response = upload(tight_client, big)
    assert response.status_code == 413
    assert "over the upload limit" in response.json()["error"]
    assert "--max-upload-mb" in response.json()["error"]


def test_the_upload_limit_holds_while_the_body_is_read(viewer):
    """A body with no Content-Length, sent in pieces: the answer is 413 after about the limit, not
    after all of it."""
    app = create_app(viewer, max_upload_bytes=LIMIT)
    chunk, total = 16 * 1024, 50 * 2**20
    read = 0
    sent: list[dict] = []

    head = b'--xyz\r\nContent-Disposition: form-data; name="photo"; filename="big.png"\r\n\r\n'

    async def receive():
        nonlocal read
        if read >= total:
            return {"type": "http.disconnect"}
        body = head if read == 0 else b"x" * chunk
        read += len(body)
        return {"type": "http.request", "body": body, "more_body": read < total}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/upload",
        "raw_path": b"/api/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"multipart/form-data; boundary=xyz")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    # a thread of its own: Playwright's sync API may have left an event loop running in this one
    worker = threading.Thread(target=lambda: asyncio.run(app(scope, receive, send)))
    worker.start()
    worker.join(timeout=60)
    assert sent[0]["status"] == 413
    assert b"upload limit" in sent[1]["body"]
    assert read <= LIMIT + 64 * 1024 + chunk  # stopped at the limit, 50 MB never read


def test_a_declared_oversized_upload_is_refused_before_reading(tight_client):
    response = tight_client.post(
        "/api/upload",
        content=b"",
        headers={"content-type": "multipart/form-data; boundary=xyz", "content-length": str(10 * 2**20)},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"this is not an image at all", "notes.png", "notes.png: not a readable image"),
        (photo_bytes(fmt="JPEG")[:600], "cut.jpg", "cut.jpg: not a readable image"),
        (photo_bytes()[:-200], "cut.png", "cut.png: not a readable image"),
        (b"", "empty.jpg", "empty.jpg: the file is empty"),
        (b"GIF89a" + b"\x00" * 40, "bad.gif", "bad.gif: not a readable image"),
    ],
    ids=["text", "truncated-jpeg", "truncated-png", "empty", "broken-gif"],
)
def test_a_bad_upload_gets_a_clear_message(client, data, name, message):
    response = upload(client, data, name)
    assert 400 <= response.status_code < 500
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_a_decompression_bomb_is_refused_before_it_is_decoded(client):
    buffer = io.BytesIO()
    Image.new("1", (10_001, 10_001)).save(buffer, format="PNG")  # a few kB for 100 million pixels
    response = upload(client, buffer.getvalue(), "bomb.png")
    assert response.status_code == 400 and "over the 100,000,000-pixel limit" in response.json()["error"]


def test_an_upload_without_a_photo_or_malformed_gets_a_message(client):
    response = client.post("/api/upload", data={"other": "1"})
    assert response.status_code == 400 and "no photo in the upload" in response.json()["error"]
    response = client.post(
        "/api/upload", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 400 and "malformed upload" in response.json()["error"]


def test_an_upload_names_only_its_file_name(client):
    response = upload(client, photo_bytes(), "../../etc/cat.png")
    assert response.status_code == 200 and response.json()["name"] == "cat.png"


def test_a_request_for_another_host_is_refused(viewer):
    client = TestClient(create_app(viewer), base_url="http://attacker.example")
    assert client.get("/api/info").status_code == 400


# ---- one computation at a time ----------------------------------------------------------------


def test_concurrent_requests_run_one_at_a_time_with_the_same_maps(client, viewer):
    photo = upload(client, photo_bytes()).json()["id"]
    asked = {"photo": photo, "methods": ["gradcam", "layercam"], "top_k": 2}
    alone = client.post("/api/explain", json=asked).json()
    running, most = 0, 0
    guard = threading.Lock()

    def enter(module, args):
        nonlocal running, most
        with guard:
            running += 1
            most = max(most, running)

    def leave(module, args, output):
        nonlocal running
        with guard:
            running -= 1

    model = viewer.loaded.model
    hooks = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    answers: list = [None] * 6
    try:

        def ask(slot: int) -> None:
            answers[slot] = client.post("/api/explain", json=asked).json()

        threads = [threading.Thread(target=ask, args=(slot,)) for slot in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for hook in hooks:
            hook.remove()
    assert most == 1
    for answer in answers:
        assert answer["maps"] == alone["maps"] and answer["targets"] == alone["targets"]


# ---- the command ------------------------------------------------------------------------------


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mieruka", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})},
    )


def _python(code: str) -> subprocess.CompletedProcess:
    """`code` run by a fresh Python on this source tree."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def test_serve_without_the_web_stack_says_what_to_install():
    code = (
        "import sys; sys.modules['starlette'] = None; from mieruka.cli import main; sys.exit(main(['serve']))"
    )
    run = _python(code)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "install mieruka[serve]" in lines[0]


def test_the_command_line_imports_no_web_stack_until_serve_runs():
    code = "import sys, mieruka.cli as c; c.build_parser(); print(sorted({'starlette', 'torch'} & set(sys.modules)))"
    run = _python(code)
    assert run.stdout.strip() == "[]"


def test_serve_refuses_a_missing_folder_and_bad_flags_at_once():
    run = run_cli("serve", "no/such/folder")
    assert run.returncode == 2 and "no/such/folder: no such folder" in run.stderr
    run = run_cli("serve", "--max-upload-mb", "0")
    assert run.returncode == 2 and "--max-upload-mb must be more than 0" in run.stderr


def test_serve_warns_off_this_machine_and_tells_a_busy_port():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_cli("serve", "--host", "0.0.0.0", "--port", str(port))
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 2, run.stderr
    assert lines[0].startswith("mieruka: warning: listening on 0.0.0.0")
    assert f"cannot listen on 0.0.0.0:{port}" in lines[1] and "choose another --port" in lines[1]


def test_serve_help_names_its_flags():
    run = run_cli("serve", "--help")
    assert run.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--max-upload-mb",
        "--model",
        "--weights",
        "--labels",
        "--random-weights",
    ):
        assert flag in run.stdout


def test_the_layer_said_is_the_one_the_cams_read_when_attention_methods_run_beside_them():
    """rollout reads attention, gradcam a layer: the answer names the layer, not "attention"."""
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, num_classes=3).eval()
    loaded = LoadedModel(vit, Preprocess(resize=72, crop=64), ["a", "b", "c"], "vit", "vit.pth")
    client = TestClient(create_app(Viewer(loaded)), base_url="http://127.0.0.1")
    photo = upload(client, photo_bytes()).json()["id"]
    for methods, layer in ((["rollout", "gradcam"], "blocks.1.norm1"), (["rollout"], "attention")):
        response = client.post("/api/explain", json={"photo": photo, "methods": methods})
        assert response.status_code == 200, response.text
        assert response.json()["layer"] == layer
