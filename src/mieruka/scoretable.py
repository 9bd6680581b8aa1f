"""The table `mieruka evaluate` prints: per-photo values gathered batch by batch into a mean, a
bootstrap interval and a count per method and column, the best method per column, the methods the
sanity check flags, and the notes under the table (why a method is flagged, maps that became constant,
a control that beats every method)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import torch

from .metric_names import SANITY_THRESHOLD, SEED
from .metrics.summary import DIRECTIONS, Estimate, best, bootstrap_ci

if TYPE_CHECKING:
    from .evaluate import BatchScores
    from .metrics.sanity import Randomization

__all__ = ["CONTROL_ROWS", "Evaluation", "format_table"]

CONTROL_ROWS = ("random", "centre")
SIMILARITIES = ("spearman", "spearman_abs", "ssim")


class Evaluation:
    """Gathers batches (:meth:`add`) into the table (:meth:`table`), mean curves and sanity results.

    `seed` seeds the bootstrap; `threshold` is the sanity check's flag (see :meth:`flagged`).
    """

    def __init__(self, seed: int = SEED, threshold: float = SANITY_THRESHOLD) -> None:
        self.seed = seed
        self.threshold = threshold
        self.values: dict[str, dict[str, list[torch.Tensor]]] = {}
        self.curves: dict[str, dict[str, list[torch.Tensor]]] = {}
        self.fractions: dict[str, torch.Tensor] = {}
        self.randomization: dict[str, list[Randomization]] = {}

    def add(self, scores: BatchScores) -> None:
        for row, columns in scores.values.items():
            for column, value in columns.items():
                self.values.setdefault(row, {}).setdefault(column, []).append(value)
        for metric, rows in scores.curves.items():
            for row, curve in rows.items():
                self.curves.setdefault(metric, {}).setdefault(row, []).append(curve)
        self.fractions.update(scores.fractions)
        for row, check in scores.randomization.items():
            self.randomization.setdefault(row, []).append(check)

    def table(self, resamples: int = 1000, seed: int | None = None) -> dict[str, dict[str, Estimate]]:
        """Row -> column -> mean, percentile-bootstrap 95% interval and count of the photos with a value
        (a photo a metric cannot score, NaN, is left out: no boxes, a map with no ranking)."""
        seed = self.seed if seed is None else seed
        return {
            row: {
                column: bootstrap_ci(torch.cat(parts), resamples=resamples, seed=seed)
                for column, parts in columns.items()
            }
            for row, columns in self.values.items()
        }

    def best(self, table: dict[str, dict[str, Estimate]]) -> dict[str, str | None]:
        """Column -> the method with the best mean. The controls are not candidates: they are there to
        read the methods against chance (:meth:`notes` says when one beats every method)."""
        columns = dict.fromkeys(c for row in table.values() for c in row)
        return {
            column: best(
                {
                    row: cells[column].mean
                    for row, cells in table.items()
                    if column in cells and row not in CONTROL_ROWS
                },
                column,
            )
            for column in columns
        }

    def flagged(self, table: dict[str, dict[str, Estimate]]) -> dict[str, float]:
        """Method -> its sanity value, for the methods that fail the check: with the head (the logits
        layer) alone randomized, their maps' mean Spearman rank correlation (of absolute values) with
        the trained model's maps is above `threshold`: they barely change when the weights that
        separate the classes are noise (Adebayo et al., NeurIPS 2018). Photos whose similarity is
        undefined (a constant map) are left out; none left is no flag."""
        return {
            row: cells["sanity"].mean
            for row, cells in table.items()
            if row not in CONTROL_ROWS and "sanity" in cells and cells["sanity"].mean > self.threshold
        }

    def head(self) -> str | None:
        """The block randomized first in the sanity check (the head), or None without one."""
        checks = next(iter(self.randomization.values()), None)
        return checks[0].blocks[0] if checks else None

    def notes(self, table: dict[str, dict[str, Estimate]], marks: dict[str, str | None]) -> list[str]:
        """The lines under the table: each flagged method and why, methods whose maps became constant
        under randomization, and columns where a control beats every method."""
        lines = []
        head = self.head()
        for row, value in self.flagged(table).items():
            lines.append(
                f"! {row}: Spearman |map| {value:.3f} > {self.threshold} with the head"
                f"{'' if head == 'head' else f' ({head})'} alone "
                "randomized: its maps barely change when the weights that tell the classes apart are "
                "noise, so they show the input more than the model (Adebayo et al. 2018)"
            )
        _, similarity = self.mean_similarity()
        for row, kinds in similarity.items():
            constant, count = int(kinds["constant"][0]), int(kinds["photos"])
            if constant:
                lines.append(
                    f"{row}: {constant} of {count} map(s) became constant with the head randomized: "
                    "no ranking, so no similarity; left out of its sanity mean"
                )
        for column, method in marks.items():
            if method is None:
                continue
            ahead = [
                f"the {row_name(control)[1:-1]} ({table[control][column].mean:.3f})"
                for control in CONTROL_ROWS
                if column in table.get(control, {})
                and best({method: table[method][column].mean, control: table[control][column].mean}, column)
                == control
            ]
            if ahead:
                lines.append(
                    f"{column}: {' and '.join(ahead)} {'beat' if len(ahead) > 1 else 'beats'} every method "
                    f"(best: {method}, {table[method][column].mean:.3f})"
                )
        return lines

    def text(self) -> str:
        """The table as :func:`format_table` writes it, with the flags and the notes."""
        table = self.table()
        marks = self.best(table)
        return format_table(table, marks, flagged=self.flagged(table), notes=self.notes(table, marks))

    def mean_curves(self) -> dict[str, dict[str, torch.Tensor]]:
        """Metric -> row -> the mean curve (P,) over the images."""
        return {
            metric: {row: torch.cat(parts).mean(0) for row, parts in rows.items()}
            for metric, rows in self.curves.items()
        }

    def mean_similarity(self) -> tuple[list[str], dict[str, dict[str, torch.Tensor]]]:
        """Randomized blocks, and row -> the mean (S,) of each similarity over the images (undefined
        values left out), ``images`` (S,) how many had a defined Spearman |map|, ``constant`` (S,)
        how many randomized maps were constant, ``photos`` how many were checked."""
        blocks: list[str] = []
        result = {}
        for row, checks in self.randomization.items():
            blocks = checks[0].blocks
            kinds = {
                kind: torch.cat([getattr(check, kind) for check in checks], dim=1) for kind in SIMILARITIES
            }
            constant = torch.cat([check.constant for check in checks], dim=1)
            result[row] = {
                **{kind: values.nanmean(1) for kind, values in kinds.items()},
                "images": (~kinds["spearman_abs"].isnan()).sum(1),
                "constant": constant.sum(1),
                "photos": torch.tensor(constant.shape[1]),
            }
        return blocks, result


def format_table(
    table: dict[str, dict[str, Estimate]],
    marks: dict[str, str | None],
    *,
    flagged: Collection[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The table as text: a line saying which way is better, then one row per method and control,
    ``mean [low, high]`` per column, ``*`` on each column's best method, ``!`` on the sanity value of
    a `flagged` method; each column's header says over how many photos its means are (``n=``), and a
    cell over fewer says its own. The `notes` follow the table."""
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    lower = [c for c in columns if DIRECTIONS[c] == "lower"]
    higher = [c for c in columns if DIRECTIONS[c] == "higher"]
    parts = []
    if lower:
        parts.append(f"lower is better: {', '.join(lower)}")
    if higher:
        parts.append(f"higher is better: {', '.join(higher)}")
    legend = "* best method" + (", ! flagged by the sanity check" if "sanity" in columns else "")
    header = "; ".join(parts) + f"; mean [95% bootstrap interval] over n photos; {legend}"
    counts = {c: max(values[c].count for values in table.values() if c in values) for c in columns}
    cells = {
        row: [
            _cell(values[c], marks.get(c) == row, c == "sanity" and row in flagged, counts[c])
            if c in values
            else "-"
            for c in columns
        ]
        for row, values in table.items()
    }
    names = [f"{c} ({'v' if DIRECTIONS[c] == 'lower' else '^'} n={counts[c]})" for c in columns]
    widths = [max(len(name), *(len(cells[row][i]) for row in cells)) for i, name in enumerate(names)]
    first = max(len("method"), *(len(row_name(row)) for row in table))
    lines = [
        header,
        "  ".join([f"{'method':<{first}}", *(n.ljust(w) for n, w in zip(names, widths))]).rstrip(),
    ]
    for row in table:
        line = "  ".join([f"{row_name(row):<{first}}", *(c.ljust(w) for c, w in zip(cells[row], widths))])
        lines.append(line.rstrip())
    return "\n".join([*lines, *notes])


def row_name(row: str) -> str:
    """A row's name in the table: a control's in brackets."""
    return {"random": "(random map)", "centre": "(centre prior)"}.get(row, row)


def _cell(estimate: Estimate, marked: bool, flagged: bool, column_count: int) -> str:
    if estimate.mean != estimate.mean:
        return "n/a"
    text = f"{estimate.mean:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]" + ("*" if marked else " ")
    if flagged:
        text += "!"
    if estimate.count != column_count:
        text += f" n={estimate.count}"
    return text
