"""PyTorch (eager) runner: the model rebuilt exactly from the release file."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from ser_export.export.recover import model_from_onnx

from .base import Runner, RunnerError


def run_module(model: torch.nn.Module, x: np.ndarray, threads: int):
    """``model(x)`` without gradients on ``threads`` threads (the caller's thread count restored)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    finally:
        torch.set_num_threads(previous)


class PyTorchRunner(Runner):
    """Runs the ``VoiceEmotionCnn`` rebuilt from the ONNX file's metadata and initializers.

    Outputs are named like the ONNX graph's: the logits under the graph output
    name and the log-mel under the metadata's ``features_output`` (read with a
    forward hook on ``melspec_extractor``), so comparisons need no mapping.
    """

    name = "pytorch"

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.model = None
        self._names: tuple[str, str] | None = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        import onnx

        from ser_export.export.metadata import read_metadata

        proto = onnx.load(str(model_path))
        meta = read_metadata(proto)
        try:
            self.model = model_from_onnx(proto)
        except Exception as exc:
            raise RunnerError(f"pytorch: cannot rebuild the model from {model_path}: {exc}") from exc
        self._names = (proto.graph.output[0].name, meta.get("features_output", "features"))
        self._wanted = outputs

    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        if self.model is None:
            raise RunnerError("pytorch: no model loaded")
        logits_name, features_name = self._names
        captured = {}
        hook = self.model.melspec_extractor.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("features", out))
        try:
            logits = run_module(self.model, waveforms, self.threads)
        finally:
            hook.remove()
        out = {logits_name: logits.numpy(), features_name: captured["features"].numpy()}
        return {k: v for k, v in out.items() if k in self._wanted}

    def info(self) -> dict:
        return {"runtime": "pytorch", "version": torch.__version__, "backend": "cpu (eager)",
                "threads": self.threads, "python": platform.python_version()}
