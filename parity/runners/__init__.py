"""Runners by name (the names ``verify --runtimes`` takes)."""
from __future__ import annotations

from typing import Callable

from .base import Runner, RunnerError
from .node import ChromiumWasmRunner, ChromiumWebglRunner, ChromiumWebgpuRunner, OrtNodeRunner, OrtWebWasmRunner
from .onnxruntime_python import OnnxruntimePythonRunner
from .pytorch import PyTorchRunner

RUNNERS: dict[str, Callable[..., Runner]] = {
    "pytorch": PyTorchRunner,
    "onnxruntime-python": OnnxruntimePythonRunner,
    "onnxruntime-web-wasm": OrtWebWasmRunner,
    "onnxruntime-node": OrtNodeRunner,
    "chromium-wasm": ChromiumWasmRunner,
    "chromium-webgl": ChromiumWebglRunner,
    "chromium-webgpu": ChromiumWebgpuRunner,
}

#: Runners that need a browser (the ``browser`` tox env and CI's browser step).
BROWSER_RUNNERS = ("chromium-wasm", "chromium-webgl", "chromium-webgpu")

#: The runner every other is compared with for logits and probabilities.
BASELINE = "pytorch"

__all__ = ["RUNNERS", "BROWSER_RUNNERS", "BASELINE", "Runner", "RunnerError"]
