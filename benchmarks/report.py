"""The HTML report at 10,000 photos: how long it takes to build, and how the page behaves in Chromium.

A synthetic run folder stands in for `mieruka explain` on 10,000 small photos (the model's time is
not the report's): results.jsonl with ImageNet classes and top-5, 20 error records, run.json, a small
JPEG overlay per photo and, as `explain --report` writes them, its thumbnail, photo copy and heat
layer. Then:

- build: `build_report` on that folder (thumbnails there), and on a copy whose records name no
  thumbnails (a run written with --no-report: the 10,000 thumbnails are made from the overlays),
  then again (all kept);
- open: the page from file:// in the system's Chromium through Playwright: time to the first
  contentful paint and to the grid drawn (the page's `mieruka:ready` mark), and long tasks (> 50 ms,
  the browser's own PerformanceObserver) while it loads;
- scroll: a programmatic scroll through a page of cards, 40 px a frame, recording every frame's
  interval (requestAnimationFrame) and the long tasks meanwhile; at 120 and 480 cards a page;
- sort, filter and page: the time from the control's event to the grid redrawn;
- explain: a folder of photos up to 4000x3000 explained with the report's small pictures and without.

    python benchmarks/report.py                  # writes benchmarks/results/report.md
    python benchmarks/report.py --photos 2000    # a smaller run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from conftest import CHROMIUM_FLAGS, chromium_path  # noqa: E402
from mieruka.labels import imagenet_labels  # noqa: E402
from mieruka.report import build_report  # noqa: E402

ERRORS = 20
DISTINCT = 64  # distinct small pictures, written under every photo's names


def pictures(count: int) -> list[bytes]:
    """`count` distinct 160x120 JPEGs: a coloured blob on a coloured ground."""
    import io

    from PIL import Image, ImageDraw

    made = []
    rng = random.Random(0)
    for _ in range(count):
        image = Image.new("RGB", (160, 120), tuple(rng.randrange(256) for _ in range(3)))
        pen = ImageDraw.Draw(image)
        x, y, r = rng.randrange(30, 130), rng.randrange(30, 90), rng.randrange(10, 30)
        pen.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
        stream = io.BytesIO()
        image.save(stream, format="JPEG", quality=80)
        made.append(stream.getvalue())
    return made


def make_run(folder: Path, photos: int, assets: bool) -> None:
    """A run folder as explain leaves it for `photos` photos (and ERRORS unreadable files)."""
    rng = random.Random(1)
    names = imagenet_labels()
    blobs = pictures(DISTINCT)
    records = []
    for i in range(photos):
        file = f"photos/set{i // 1000:02d}/photo_{i:05d}.jpg"
        probs = sorted((rng.random() ** 3 for _ in range(5)), reverse=True)
        total = sum(probs) / rng.uniform(0.5, 1.0)
        classes = rng.sample(range(len(names)), 5)
        label = names[classes[0]].replace(" ", "_")
        output = f"set{i // 1000:02d}/photo_{i:05d}_{label}.jpg"
        (folder / output).parent.mkdir(parents=True, exist_ok=True)
        (folder / output).write_bytes(blobs[i % DISTINCT])
        record = {
            "file": file,
            "task": "classify",
            "label": names[classes[0]],
            "index": classes[0],
            "probability": round(probs[0] / total, 6),
            "rank": 1,
            "layer": "bn2",
            "layout": "channels-first",
            "method": "gradcam",
            "model": "efficientnet_lite0",
            "weights": "default",
            "empty": False,
            "centre_energy": round(rng.uniform(0.05, 0.9), 4),
            "output": output,
            "crop": [20.0, 0.0, 140.0, 120.0],
            "size": [160, 120],
            "top5": [
                {"label": names[c], "index": c, "probability": round(p / total, 6)}
                for c, p in zip(classes, probs)
            ],
        }
        if assets:
            for key, where in (("thumb", "thumbs"), ("view", "photos"), ("heat", "heat")):
                path = f"report/{where}/{output}"
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_bytes(blobs[(i + 7) % DISTINCT])
                record[key] = path
        records.append(record)
    for i in range(ERRORS):
        file = f"photos/broken/bad_{i:02d}.jpg"
        records.append({"file": file, "error": f"{file}: not a readable image (cannot identify image file)"})
    with open(folder / "results.jsonl", "w", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    settings = {
        "command": "explain",
        "model": "efficientnet_lite0",
        "weights": "default",
        "layer": "bn2",
        "methods": ["gradcam"],
        "task": "classify",
        "style": "overlay",
        "colormap": "jet",
        "alpha": 0.5,
        "photos": photos + ERRORS,
        "failed": ERRORS,
        "versions": {"mieruka": "benchmark"},
    }
    (folder / "run.json").write_text(json.dumps(settings))


def explain_overhead(photos: int, rounds: int) -> dict:
    """`mieruka explain` on a folder of mixed-size photos (up to 4000x3000, benchmarks/run.py's) with the
    report (the default for a folder) and with --no-report, interleaved; the default model, --format jpg."""
    import tempfile

    from mieruka.cli import main
    from run import make_folder

    folder = make_folder(photos, HERE / ".cache" / f"photos{photos}")
    times: dict[str, list[float]] = {"--no-report": [], "report (default)": []}
    for round_ in range(rounds + 1):  # the first round is untimed: first calls, file cache
        for name, extra in (("--no-report", ["--no-report"]), ("report (default)", [])):
            with tempfile.TemporaryDirectory() as out:
                args = ["explain", str(folder), "--out", out, "--quiet", "--format", "jpg", *extra]
                started = time.perf_counter()
                assert main(args) == 0
                if round_:
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


INIT = """
window.__longtasks = [];
new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]); })
  .observe({ type: 'longtask', buffered: true });
"""

SCROLL = """async () => {
  const tasksBefore = window.__longtasks.length;
  window.scrollTo(0, 0);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const intervals = [];
  let last = performance.now();
  let before = -1;
  while (scrollY !== before) {  // cards laid out as they come into sight may change the page's height
    before = scrollY;
    window.scrollBy(0, 40);
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now();
    intervals.push(now - last);
    last = now;
  }
  const tasks = window.__longtasks.slice(tasksBefore);
  return { intervals, distance: scrollY, tasks };
}"""

REDRAW = """async ([selector, value, kind]) => {
  const control = document.querySelector(selector);
  const started = performance.now();
  if (kind === 'click') control.click();
  else { control.value = value; control.dispatchEvent(new Event(kind)); }
  const scripted = performance.now() - started;
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));  // the next frame is drawn
  return { scripted, painted: performance.now() - started, shown: document.getElementById('shown').textContent };
}"""


def browse(page_path: Path, rounds: int) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict = {"load": [], "scroll": {}, "controls": {}}
    executable = chromium_path()
    if executable is None:
        raise SystemExit("no Chromium: install Debian's chromium package or set MIERUKA_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.add_init_script(INIT)
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready]")
            page.wait_for_timeout(300)
            timing = page.evaluate(
                """() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const paint = performance.getEntriesByName('first-contentful-paint')[0];
                const ready = performance.getEntriesByName('mieruka:ready')[0];
                return { fcp: paint ? paint.startTime : null, ready: ready.startTime,
                         dom: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                         tasks: window.__longtasks.slice() };
            }"""
            )
            results["load"].append(timing)
            for size in ("120", "240"):
                page.select_option("#page-size", size)
                page.wait_for_timeout(300)
                results["scroll"].setdefault(size, []).append(page.evaluate(SCROLL))
            # the same scroll with the grid hidden: what this machine gives a page with nothing to paint
            style = page.add_style_tag(content="main { display: none; } body { min-height: 40000px; }")
            page.wait_for_timeout(200)
            results["scroll"].setdefault("none (grid hidden)", []).append(page.evaluate(SCROLL))
            style.evaluate("node => node.remove()")
            page.select_option("#page-size", "120")
            page.wait_for_timeout(200)
            controls = {
                "sort by file name": ("#sort", "name", "change"),
                "sort by confidence": ("#sort", "confidence", "change"),
                "filter by label": ("#label", "1", "change"),
                "all labels": ("#label", "-1", "change"),
                "next page": ("#next", None, "click"),
                "confident but off-centre": ("#outside", None, "click"),
            }
            for name, args in controls.items():
                results["controls"].setdefault(name, []).append(page.evaluate(REDRAW, list(args)))
            page.close()
        browser.close()
    return results


def chromium_version() -> str:
    executable = chromium_path()
    try:
        return subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, TypeError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{load}, Python {platform.python_version()}"


def summarize(args, build: dict, browsing: dict, sizes: dict, overhead: dict | None) -> str:
    median = statistics.median
    loads = browsing["load"]
    lines = [
        f"# The HTML report at {args.photos:,} photos",
        "",
        f"{machine()}; {chromium_version()} headless (Playwright), 1280x800",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; `python benchmarks/report.py --photos {args.photos}`;"
        f" {args.rounds} page loads, medians",
        "",
        "A synthetic run folder: results.jsonl with ImageNet classes and top-5 for every photo, "
        f"{ERRORS} error records, a 160x120 JPEG overlay per photo and the report's small pictures "
        "as `explain --report` writes them (thumbnail, photo, heat layer).",
        "",
        "## Build (`mieruka report`)",
        "",
        "| case | seconds |",
        "|---|---|",
        f"| thumbnails written by explain (the default) | {build['present']:.2f} |",
        f"| no thumbnails yet (a --no-report run): {args.photos:,} made from the overlays | {build['missing']:.2f} |",
        f"| the same again (thumbnails kept) | {build['again']:.2f} |",
        "",
        f"report.html: {sizes['html'] / 1e6:.1f} MB (data {sizes['data'] / 1e6:.1f} MB, fonts {sizes['fonts'] / 1e3:.0f} kB);"
        f" report/ with {args.photos:,} thumbnails, photos and heat layers: {sizes['assets'] / 1e6:.0f} MB",
        "",
        "## Open (file://)",
        "",
        "| measure | ms |",
        "|---|---|",
        f"| first contentful paint | {median(t['fcp'] for t in loads):.0f} |",
        f"| DOMContentLoaded | {median(t['dom'] for t in loads):.0f} |",
        f"| grid drawn (`mieruka:ready`) | {median(t['ready'] for t in loads):.0f} |",
        f"| load event (first page's thumbnails) | {median(t['load'] for t in loads):.0f} |",
        f"| long tasks while loading: count / longest | {median(len(t['tasks']) for t in loads):.0f} / "
        f"{median(max((d for _, d in t['tasks']), default=0) for t in loads):.0f} |",
        "",
        "## Scroll (40 px a frame, to the bottom of the page of cards)",
        "",
        "| cards a page | frames | median frame ms | 95th percentile ms | longest ms | frames > 50 ms | long tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, runs in browsing["scroll"].items():
        intervals = [i for run in runs for i in run["intervals"][1:]]
        intervals.sort()
        p95 = intervals[int(0.95 * (len(intervals) - 1))]
        slow = sum(i > 50 for i in intervals) / len(runs)
        tasks = statistics.median(len(run["tasks"]) for run in runs)
        lines.append(
            f"| {size} | {len(intervals) // len(runs)} | {median(intervals):.1f} | {p95:.1f} | {max(intervals):.1f} |"
            f" {slow:.0f} | {tasks:.0f} |"
        )
    lines += [
        "",
        "## Sort, filter, page (from the control's event to the next frame)",
        "",
        "| action | script ms | to the next frame ms | the page then says |",
        "|---|---|---|---|",
    ]
    for name, runs in browsing["controls"].items():
        lines.append(
            f"| {name} | {median(r['scripted'] for r in runs):.1f} | {median(r['painted'] for r in runs):.1f} |"
            f" {runs[-1]['shown']} |"
        )
    if overhead:
        base = overhead["--no-report"]
        lines += [
            "",
            f"## What the report costs explain ({args.explain_photos} photos up to 4000x3000, default model, --format jpg)",
            "",
            "| run | seconds | ratio |",
            "|---|---|---|",
            *(f"| {name} | {value:.1f} | {value / base:.2f}x |" for name, value in overhead.items()),
        ]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--explain-photos", type=int, default=16, help="photos for explain's cost of the report (0: skip)"
    )
    parser.add_argument("--work", type=Path, default=HERE / ".cache" / "report")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "report.md")
    args = parser.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    present, missing = args.work / "present", args.work / "missing"
    for folder, assets in ((present, True), (missing, False)):
        folder.mkdir(parents=True)
        started = time.perf_counter()
        make_run(folder, args.photos, assets)
        print(f"made {folder} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    build = {
        "present": min(timed(lambda: build_report(present)) for _ in range(args.rounds)),
        "missing": timed(lambda: build_report(missing)),
        "again": timed(lambda: build_report(missing)),
    }
    page = (present / "report.html").read_text(encoding="utf-8")
    data = page[page.index('id="mieruka-data">') :]
    sizes = {
        "html": len(page.encode()),
        "data": len(data[: data.index("</script>")].encode()),
        "fonts": sum(len(line) for line in page.splitlines() if line.startswith("@font-face")),
        "assets": sum(p.stat().st_size for p in (present / "report").rglob("*") if p.is_file()),
    }
    print(json.dumps(build), file=sys.stderr)
    browsing = browse(present / "report.html", args.rounds)
    overhead = explain_overhead(args.explain_photos, args.rounds) if args.explain_photos else None
    text = summarize(args, build, browsing, sizes, overhead)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
