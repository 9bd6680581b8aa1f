"""Maps only, for datasets: every map of a run in a few float16 arrays instead of a picture per photo.

The maps of `size` photos make one shard, `maps-00000.npy` (rows, h, w): each map at the layer's
resolution, scaled by its own maximum into [0, 1] (as :func:`mieruka.maps.normalize`), one row per
record in record order; with several methods one file per method (`maps-00000-gradcam.npy`). The maps
stay on the model's device until their shard is written: one copy to the CPU per shard. A record names
its shard and row only once the shard is on the disk.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ._io import atomic_open
from .maps import normalize

SHARD_PHOTOS = 1000


class MapShards:
    """Gather each photo's maps and give its records their shard and row; :meth:`write` when full.

    >>> shards = MapShards(Path("out"), ["gradcam"], size=1000)
    >>> shards.name(0, "gradcam")
    'maps-00000.npy'
    """

    def __init__(
        self, out_dir: Path, methods: list[str], *, size: int = SHARD_PHOTOS, first: int = 0
    ) -> None:
        if size < 1:
            raise ValueError(f"a shard holds at least one photo, got {size}")
        self.out_dir, self.methods, self.size = out_dir, list(methods), size
        self.index = first
        self.photos = 0
        self.rows: dict[str, list[torch.Tensor]] = {method: [] for method in self.methods}
        self.count = 0

    def name(self, index: int, method: str) -> str:
        tail = f"-{method}" if len(self.methods) > 1 else ""
        return str(PurePosixPath(f"maps-{index:05d}{tail}.npy"))

    def add(self, by_method: dict, row: int, records: list[dict]) -> None:
        """Keep image `row`'s maps of one batch (`by_method`: method -> CAMResult) for the records
        that explain a target; each such record gets "shard" and "row" instead of a picture."""
        first = next(iter(by_method.values()))
        count = first.valid.shape[1] if first.valid is not None else _targets(first.raw)
        valid = first.valid[row].tolist() if first.valid is not None else [True] * count
        chosen = [k for k in range(count) if valid[k]]
        explained = [record for record in records if record.get("output") is not None]
        if len(explained) != len(chosen):  # one record per valid target: batch._plan_one's promise
            raise RuntimeError(f"{len(explained)} records for {len(chosen)} maps of {records[0]['file']}")
        for method, result in by_method.items():
            raw = result.raw[row]
            raw = raw.unsqueeze(0) if raw.dim() == 2 else raw
            if chosen:
                self.rows[method].append(normalize(raw[chosen])[0].half())
        shard = {method: self.name(self.index, method) for method in self.methods}
        for number, record in enumerate(explained):
            record.pop("outputs", None)
            record.pop("output", None)
            record["shard"] = shard if len(shard) > 1 else next(iter(shard.values()))
            record["row"] = self.count + number
        for record in records:
            record.pop("output", None)
        self.count += len(chosen)
        self.photos += 1

    def full(self) -> bool:
        return self.photos >= self.size

    def write(self) -> None:
        """Write the gathered maps as this shard (on the disk before returning), then start the next."""
        if self.photos == 0:
            return
        for method, rows in self.rows.items():
            if rows:
                array = torch.cat(rows).cpu().numpy()
                with atomic_open(self.out_dir / self.name(self.index, method), durable=True) as stream:
                    np.save(stream, array)
            rows.clear()
        self.index += 1
        self.photos = self.count = 0


def _targets(raw: torch.Tensor) -> int:
    return 1 if raw.dim() == 3 else raw.shape[1]
