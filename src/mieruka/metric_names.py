"""The metrics `mieruka evaluate` runs, by name, and the defaults that the command and the library
functions share (one place, so ``mieruka evaluate`` and ``mieruka.metrics.deletion(...)`` compute the
same thing unless told otherwise). Torch-free, so a wrong flag is refused, and --help shown, in a blink."""

from __future__ import annotations

METRICS = ("deletion", "insertion", "road", "drop", "pointing", "sanity")
DEFAULT_METRICS = ("deletion", "insertion", "drop")
NEEDS_BOXES = ("pointing",)
# the table's columns each metric gives (drop and pointing give two)
COLUMNS = {
    "deletion": ("deletion",),
    "insertion": ("insertion",),
    "road": ("road",),
    "drop": ("drop", "increase"),
    "pointing": ("pointing", "energy"),
    "sanity": ("sanity",),
}

STEPS = 20  # deletion / insertion: steps along the curve, so STEPS + 1 points (one forward pass each)
DELETION_SUBSTRATE = "zeros"  # what deleted pixels become (the mean colour of a normalized input)
INSERTION_SUBSTRATE = "blur"  # where inserted pixels go: a blurred copy, as in RISE
# ROAD: shares of the pixels removed; pytorch-grad-cam's ROADCombined percentiles (20, 40, 60, 80)
ROAD_FRACTIONS = (0.2, 0.4, 0.6, 0.8)
TOLERANCE = 15  # pointing game: pixels around the boxes, the usual 15 (Zhang et al., ECCV 2016)
SANITY_BLOCKS = 4  # sanity: the layers below the head, in this many groups
SANITY_THRESHOLD = 0.5  # sanity: flagged above this mean Spearman |map| with the head randomized
BATCH_SIZE = 64  # perturbed inputs per forward pass
SEED = 0  # the random control, ROAD's noise, the sanity check's re-initialization, the bootstrap


def parse_metrics(text: str) -> list[str]:
    """'deletion,drop' -> metric names in order, without repeats; an unknown name is refused. A
    column's name (``increase``, ``energy``) is taken for the metric that gives it.

    >>> parse_metrics("drop, deletion,drop")
    ['drop', 'deletion']
    >>> parse_metrics("energy")
    ['pointing']
    """
    chosen: list[str] = []
    owner = {column: metric for metric, columns in COLUMNS.items() for column in columns}
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part not in owner:
            raise ValueError(f"unknown metric {part!r}; choose from {', '.join(METRICS)}")
        if owner[part] not in chosen:
            chosen.append(owner[part])
    if not chosen:
        raise ValueError(f"no metric given; choose from {', '.join(METRICS)}")
    return chosen
