"""What `mieruka evaluate` writes: metrics.json, per_image.jsonl and the plots, each atomically.

matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from ._io import atomic_open
from .metric_names import SANITY_THRESHOLD
from .metrics.summary import DIRECTIONS
from .outputs import write_jsonl
from .scoretable import Evaluation, row_name

__all__ = ["metrics_document", "per_image_records", "plot_curves", "plot_sanity", "write_json", "write_jsonl"]

METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.jsonl"
CURVES_PLOT = "curves.png"
SANITY_PLOT = "sanity.png"


def _number(value: float) -> float | None:
    """JSON has no NaN: a value the metric could not give becomes null."""
    return None if value != value or math.isinf(value) else round(value, 6)


def per_image_records(outcomes: Sequence) -> list[dict]:
    """One record per photo, row (method or control) and column; a photo that failed: one error record."""
    records = []
    for outcome in outcomes:
        if outcome.error:
            records.append(
                {"file": str(outcome.path), "photo": outcome.place.as_posix(), "error": outcome.error}
            )
            continue
        for row, columns in outcome.values.items():
            for column, value in columns.items():
                records.append(
                    {
                        "file": str(outcome.path),
                        "photo": outcome.place.as_posix(),
                        "method": row,
                        "metric": column,
                        "value": _number(value),
                        "target": outcome.target,
                    }
                )
    return records


def metrics_document(evaluation: Evaluation, settings: dict) -> dict:
    """The table (mean, interval, images per cell), the best method per column, the notes printed
    under the table, the mean curves and sanity similarities (with the flagged methods), and the run's
    settings."""
    table = evaluation.table()
    marks = evaluation.best(table)
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    document = {
        "settings": settings,
        "better": {column: DIRECTIONS[column] for column in columns},
        "table": {
            row: {
                column: {
                    "mean": _number(cell.mean),
                    "low": _number(cell.low),
                    "high": _number(cell.high),
                    "images": cell.count,  # the photos the mean is over (NaN values left out)
                }
                for column, cell in cells.items()
            }
            for row, cells in table.items()
        },
        "best": marks,  # methods only: the controls are there to read them against chance
        "notes": evaluation.notes(table, marks),
    }
    curves = evaluation.mean_curves()
    if curves:
        document["curves"] = {
            metric: {
                "fractions": [_number(f) for f in evaluation.fractions[metric].tolist()],
                **{row: [_number(v) for v in curve.tolist()] for row, curve in rows.items()},
            }
            for metric, rows in curves.items()
        }
    blocks, similarity = evaluation.mean_similarity()
    if similarity:
        document["sanity"] = {
            "blocks": blocks,  # randomized at each step, cascading: the head alone first
            "cascading": True,
            "flag": (
                f"a method is flagged when its mean Spearman |map| with the head ({blocks[0]}) alone "
                f"randomized is above {evaluation.threshold}"
            ),
            "threshold": evaluation.threshold,
            "flagged": {row: _number(value) for row, value in evaluation.flagged(table).items()},
            "rows": {
                row: {
                    **{
                        kind: [_number(v) for v in kinds[kind].tolist()]
                        for kind in ("spearman", "spearman_abs", "ssim")
                    },
                    "images": kinds["images"].tolist(),  # per step: photos with a defined Spearman |map|
                    "constant": kinds["constant"].tolist(),  # per step: randomized maps that were constant
                }
                for row, kinds in similarity.items()
            },
        }
    return document


def write_json(document: dict, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8") as stream:
        json.dump(document, stream, ensure_ascii=False, indent=2)
        stream.write("\n")


def plot_curves(document: dict, path: Path) -> None:
    """Mean deletion and insertion curves, one line per method and control, side by side."""
    figure_class = _figure_class()
    curves = document["curves"]
    figure = figure_class(figsize=(5.5 * len(curves), 4.2), dpi=100)
    for position, (metric, rows) in enumerate(curves.items(), start=1):
        axes = figure.add_subplot(1, len(curves), position)
        fractions = rows["fractions"]
        for row, values in rows.items():
            if row == "fractions":
                continue
            style = (
                {"linestyle": "--", "color": "grey" if row == "random" else "black"}
                if row in ("random", "centre")
                else {}
            )
            auc = document["table"][row][metric]["mean"]
            axes.plot(fractions, values, label=f"{row_name(row)} (AUC {auc:.3f})", **style)
        action = "deleted" if metric == "deletion" else "inserted"
        axes.set_title(f"{metric} ({DIRECTIONS[metric]} AUC is better)")
        axes.set_xlabel(f"share of pixels {action}, most salient first")
        axes.set_ylabel("probability of the explained class")
        axes.set_xlim(0, 1)
        axes.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def plot_sanity(document: dict, path: Path) -> None:
    """Spearman rank correlation (absolute maps) with the trained model's maps as more blocks are
    randomized, the head alone first: a method that explains the model falls; one that shows the input
    stays high. The flag threshold is drawn at the head's step."""
    figure_class = _figure_class()
    data = document["sanity"]
    blocks = data["blocks"]
    figure = figure_class(figsize=(6.5, 4.2), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    steps = list(range(len(blocks) + 1))
    for row, kinds in data["rows"].items():
        style = (
            {"linestyle": "--", "color": "grey" if row == "random" else "black"}
            if row in ("random", "centre")
            else {"marker": "o"}
        )
        label = row_name(row) + (" (flagged)" if row in data["flagged"] else "")
        values = [float("nan") if v is None else v for v in kinds["spearman_abs"]]
        axes.plot(steps, [1.0, *values], label=label, **style)
    labels = ["none", f"{_short(blocks[0])} (head)", *(_short(b) for b in blocks[1:])]
    axes.set_xticks(steps, labels, rotation=30, ha="right", fontsize=7)
    axes.set_ylim(-0.2, 1.05)
    axes.axhline(0, color="lightgrey", linewidth=0.8)
    threshold = data.get("threshold", SANITY_THRESHOLD)
    axes.plot(
        [0.75, 1.25], [threshold, threshold], color="red", linewidth=1, linestyle=":", label="flag threshold"
    )
    axes.set_xlabel("randomized, cascading: the head alone, then the blocks below it")
    axes.set_ylabel("Spearman |map| vs trained model")
    axes.set_title("model parameter randomization (lower = depends on the weights)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)


def _short(block: str) -> str:
    names = block.split(",")
    return names[0] if len(names) == 1 else f"{names[-1]}..{names[0]}"


def _figure_class():
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure


def _save(figure, path: Path) -> None:
    with atomic_open(path) as stream:
        figure.savefig(stream, format="png")
