"""onnxruntime (Python) runner on the CPU execution provider."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ser_export.ortsession import cpu_session

from .base import Runner, RunnerError


class OnnxruntimePythonRunner(Runner):
    name = "onnxruntime-python"

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.session: ort.InferenceSession | None = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        try:
            self.session = cpu_session(str(model_path), threads=self.threads)
        except Exception as exc:
            raise RunnerError(f"onnxruntime-python: cannot load {model_path}: {exc}") from exc
        providers = self.session.get_providers()
        if providers != ["CPUExecutionProvider"]:
            raise RunnerError(f"onnxruntime-python: asked for the CPU provider, got {providers}")
        self.outputs = outputs

    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        if self.session is None:
            raise RunnerError("onnxruntime-python: no model loaded")
        x = np.ascontiguousarray(waveforms, dtype=np.float32)
        values = self.session.run(self.outputs, {self.session.get_inputs()[0].name: x})
        return dict(zip(self.outputs, values))

    def info(self) -> dict:
        return {"runtime": "onnxruntime-python", "version": ort.__version__,
                "backend": ",".join(self.session.get_providers()) if self.session else "CPUExecutionProvider",
                "threads": self.threads}

    def deactivate(self) -> None:
        self.session = None
