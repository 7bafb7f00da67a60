"""Runners by name (the names ``verify --runtimes`` takes)."""
from __future__ import annotations

from typing import Callable

from .base import Runner, RunnerError
from .node import OrtNodeRunner, OrtWebWasmRunner
from .onnxruntime_python import OnnxruntimePythonRunner
from .pytorch import PyTorchRunner

RUNNERS: dict[str, Callable[..., Runner]] = {
    "pytorch": PyTorchRunner,
    "onnxruntime-python": OnnxruntimePythonRunner,
    "onnxruntime-web-wasm": OrtWebWasmRunner,
    "onnxruntime-node": OrtNodeRunner,
}

#: The runner every other is compared with for logits and probabilities.
BASELINE = "pytorch"

__all__ = ["RUNNERS", "BASELINE", "Runner", "RunnerError"]
