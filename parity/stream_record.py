"""What one streaming model's run gave, as data: every runner's outputs per stream (for the judge,
:mod:`parity.stream_judge`), the whole-sequence form's and the float parent's."""
from __future__ import annotations

import dataclasses

from .runners.base import StreamOutputs


@dataclasses.dataclass
class ParentStreams:
    """A variant's float parent on the same streams: its outputs (``outputs[s][name]``), run by ``runner``, and the
    tolerance class the variant is judged under."""

    parent: str
    runner: str
    tolerance_class: str
    outputs: list[dict]


@dataclasses.dataclass
class StreamRun:
    """One streaming model on every runner.

    ``outputs[runner]``: that runner's :class:`~parity.runners.base.StreamOutputs`; ``baseline``: the runner every
    other is compared with (the reference when given); ``labels[s]``: stream ``s``'s spec; ``lengths[s]`` its
    samples; ``long_index``: the long (drift) stream's index, if drawn; ``decisions``: each score's
    ``(threshold, hysteresis)``; ``sequence[runner][s]``: the whole-sequence form's outputs (``sequence_file``,
    ``sequence_outputs`` its names in the order of ``scores + features``).
    """

    model: str
    labels: list[str]
    lengths: list[int]
    sample_rate: int
    chunk: int
    baseline: str
    outputs: dict[str, StreamOutputs]
    scores: list[str]
    features: list[str] = dataclasses.field(default_factory=list)
    states: list[str] = dataclasses.field(default_factory=list)
    decisions: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    long_index: int | None = None
    sequence: dict[str, list[dict]] = dataclasses.field(default_factory=dict)
    sequence_file: str = ""
    sequence_outputs: list[str] = dataclasses.field(default_factory=list)
    parent: ParentStreams | None = None

    def seconds(self, stream: int) -> float:
        """Length of stream ``stream`` in seconds."""
        return self.lengths[stream] / self.sample_rate
