"""Sharded gate runs: which cases shard ``K/N`` keeps, and which checks only shard 1 runs.

Every shard draws the same case list from the same seed (``draw_cases(examples, seed)``) and
keeps one contiguous block of it.  Blocks are made of whole batches of the gate's
``batch_size``, so every case is run inside the same batch as in the unsharded run and the
shards' outputs are the unsharded run's outputs, bit for bit.  Any ``K/N`` works with any case
count: when there are fewer batches than shards, the last shards keep no case (9 cases in
batches of 64 are one batch, shard 1/3's; shards 2/3 and 3/3 are empty) and run only the
per-shard checks.  Shard 1 always holds the first batch and runs the checks that are made once
per model, not per case: determinism and batch invariance (on the first batch), the golden
logits, the JS preprocessing recordings and a variant's held-out clips.  Checksums, the
manifest checks and the operator lint run in every shard, empty or not.

:func:`parity.merge.merge_reports` joins the shards' saved runs and judges them once.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int) and 1 <= self.index <= self.count):
            raise ValueError(f"shard {self.index}/{self.count}: needs 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"K/N"`` (e.g. ``"2/3"``)."""
        m = re.fullmatch(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*", str(text))
        if not m:
            raise ValueError(f"--shard {text!r}: expected K/N, e.g. 2/3")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def runs_once_per_model(self) -> bool:
        """Whether this shard runs the once-per-model checks (shard 1)."""
        return self.index == 1

    def bounds(self, n_cases: int, batch_size: int) -> tuple[int, int]:
        """``(start, stop)``: the cases this shard keeps, whole batches of ``batch_size``.

        The ``ceil(n_cases / batch_size)`` batches are split as evenly as they go (the first
        shards take one more); with more shards than batches the last shards are empty
        (``start == stop == n_cases``).  Shard 1 always starts at case 0.
        """
        n_batches = -(-n_cases // batch_size)
        mine = np.array_split(np.arange(n_batches), self.count)[self.index - 1]
        if not len(mine):
            return n_cases, n_cases
        return int(mine[0]) * batch_size, min(int(mine[-1] + 1) * batch_size, n_cases)

    def to_dict(self) -> dict:
        return {"index": self.index, "count": self.count}
