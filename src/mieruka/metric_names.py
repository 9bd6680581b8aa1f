"""The metrics `mieruka evaluate` runs, by name: torch-free, so a wrong flag is refused in a blink."""

from __future__ import annotations

METRICS = ("deletion", "insertion", "road", "drop", "pointing", "sanity")
DEFAULT_METRICS = ("deletion", "insertion", "drop")
NEEDS_BOXES = ("pointing",)


def parse_metrics(text: str) -> list[str]:
    """'deletion,drop' -> metric names in order, without repeats; an unknown name is refused.

    >>> parse_metrics("drop, deletion,drop")
    ['drop', 'deletion']
    """
    chosen: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part not in METRICS:
            raise ValueError(f"unknown metric {part!r}; choose from {', '.join(METRICS)}")
        if part not in chosen:
            chosen.append(part)
    if not chosen:
        raise ValueError(f"no metric given; choose from {', '.join(METRICS)}")
    return chosen
