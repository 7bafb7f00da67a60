"""The runner interface: load a model once, evaluate whole batches, say what really ran."""
from __future__ import annotations

import abc
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

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        raise NotImplementedError

    @abc.abstractmethod
    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for a ``(batch, n_samples)`` float32 batch, keyed by output name."""

    @abc.abstractmethod
    def info(self) -> dict:
        """What ran: runtime and version, backend/execution provider, threads, ..."""

    def deactivate(self) -> None:
        """Release resources (processes, sessions)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()
