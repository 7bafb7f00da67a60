"""The runner interface: load a model once, evaluate whole batches, say what really ran."""
from __future__ import annotations

import abc
import dataclasses
import time
from pathlib import Path

import numpy as np


class RunnerError(Exception):
    """A runner could not run (missing tool, crash, timeout): the gate exits 2, not 1."""


class Runner(abc.ABC):
    """One runtime.

    ``activate`` loads the model (the probe copy whose extra outputs expose inner
    stages); ``infer`` evaluates a batch and returns every requested output by name;
    ``info`` records what really ran (library version, backend, threads, ...).
    """

    #: Registry name, e.g. ``"onnxruntime-python"``.
    name: str = ""
    #: What else the runner can do: ``"preprocess"`` (the shipped JS preprocessing, :meth:`preprocess`).
    capabilities: frozenset[str] = frozenset()
    #: The JS engine :meth:`preprocess` runs in (``"node"``, ``"chromium"``); the gate runs the
    #: preprocessing once per engine, on the first runner that has it.
    js_engine: str | None = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for a ``(batch, n_samples)`` float32 batch, keyed by output name."""

    @abc.abstractmethod
    def info(self) -> dict:
        """What ran: runtime and version, backend/execution provider, threads, ..."""

    def run(self, waveforms: np.ndarray, batch_size: int) -> "RunOutputs":
        """Every case of ``waveforms`` in batches of ``batch_size``, as data (outputs, what ran, timings)."""
        parts: dict[str, list[np.ndarray]] = {}
        t0 = time.perf_counter()
        for i in range(0, waveforms.shape[0], batch_size):
            for k, v in self.infer(waveforms[i:i + batch_size]).items():
                parts.setdefault(k, []).append(v)
        seconds = time.perf_counter() - t0
        return RunOutputs(self.name, {k: np.concatenate(v) for k, v in parts.items()}, self.info(),
                          round(seconds, 3), round(1000 * seconds / max(waveforms.shape[0], 1), 3))

    def preprocess(self, planar: np.ndarray, sample_rate: int, contract: dict) -> dict:
        """The shipped JS preprocessing on a planar ``(channels, n)`` float32 recording.

        Returns ``{"windows": [{"start", "silent", "samples" (float32 or None)}], "ms"}``; only
        runners with ``"preprocess"`` in :attr:`capabilities` have it.
        """
        raise RunnerError(f"{self.name}: has no preprocessing")

    def postprocess(self, windows: np.ndarray, logits: np.ndarray, logmel: np.ndarray, sample_rate: int,
                    params: dict, vad_model) -> dict:
        """The shipped JS post-processing (VAD, calibration, OOD flag) on a batch of model windows;
        runners with ``"postprocess"`` in :attr:`capabilities` have it."""
        raise RunnerError(f"{self.name}: has no post-processing")

    def run_stream(self, model_path: Path, protocol: dict, streams: list[np.ndarray]) -> "StreamOutputs":
        """Run whole streams through a stateful model, looping over the chunks itself.

        ``protocol`` is the wire form of a streaming contract (``signal``: name, chunk, context,
        dtype; ``states``: input, output, dims, dtype, init; ``constants``: name, dtype, dims,
        value; ``outputs``: the per-chunk outputs to record), the same dict the JS runners get;
        the chunking rule is :func:`ser_export.streaming.stream_windows`.  ``streams`` are 1-D
        float32 arrays.  Only runners with ``"stream"`` in :attr:`capabilities` have it.
        """
        raise RunnerError(f"{self.name}: cannot run streams")

    def deactivate(self) -> None:
        """Release resources (processes, sessions)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()


@dataclasses.dataclass
class RunOutputs:
    """What one runner gave for a set of cases: outputs by name, what ran, and how long it took."""

    runner: str
    outputs: dict[str, np.ndarray]
    info: dict
    seconds: float
    ms_per_case: float


@dataclasses.dataclass
class StreamOutputs:
    """What one runner gave for a set of streams.

    ``outputs[s][name]`` has shape ``(n_chunks_s, *per_chunk_dims)`` (every chunk's value of
    output ``name`` for stream ``s``); ``final_state[s][name]`` is the state output after the
    last chunk of stream ``s``.
    """

    runner: str
    outputs: list[dict[str, np.ndarray]]
    final_state: list[dict[str, np.ndarray]]
    info: dict
    seconds: float
