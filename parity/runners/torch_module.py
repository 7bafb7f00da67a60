"""PyTorch runner for a model built anywhere: a factory that returns an ``nn.Module``.

``verify MODEL --contract C --torch pkg.module:factory [--torch-weights W]``: the
factory is imported and called with no arguments; weights, when given, are loaded
with ``torch.load(..., weights_only=True)`` (or from a ``.safetensors`` file if the
``safetensors`` package is installed), never with plain pickle.  The module's
``forward`` returns the logits, a tuple ``(logits, features)``, or a dict keyed by
the contract's output names.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from .base import Runner, RunnerError
from .pytorch import run_module


def load_factory(spec: str):
    """``pkg.module:callable`` -> the callable (a one-line :class:`RunnerError` otherwise)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RunnerError(f"--torch {spec!r}: expected pkg.module:factory")
    if os.getcwd() not in sys.path:  # like `python -m`: the working directory is importable
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can raise anything
        raise RunnerError(f"--torch {spec!r}: cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise RunnerError(f"--torch {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def load_weights(path: Path) -> dict:
    """A state dict, safely: safetensors, or ``torch.load(weights_only=True)``."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except ImportError:
        raise RunnerError(f"{path}: reading .safetensors needs the safetensors package") from None
    except Exception as exc:  # torch raises many kinds for a bad or unsafe file
        raise RunnerError(f"{path}: not a weights file torch loads safely ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict):
        raise RunnerError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


class TorchModuleRunner(Runner):
    """Runs the user's ``nn.Module`` (eval mode, no grad) and names its outputs as the contract does."""

    name = "pytorch"

    def __init__(self, factory: str, weights: Path | None = None, output_names: tuple[str, ...] = (),
                 threads: int = 1):
        self.spec, self.weights, self.threads = factory, weights, threads
        self.output_names = tuple(output_names)
        self.model = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        if self.model is None:
            try:
                model = load_factory(self.spec)()
            except RunnerError:
                raise
            except Exception as exc:
                raise RunnerError(f"--torch {self.spec!r}: the factory raised {type(exc).__name__}: {exc}") from None
            if not isinstance(model, torch.nn.Module):
                raise RunnerError(f"--torch {self.spec!r}: returned a {type(model).__name__}, not an nn.Module")
            if self.weights is not None:
                try:
                    model.load_state_dict(load_weights(self.weights))
                except RuntimeError as exc:
                    raise RunnerError(f"{self.weights}: does not fit the module "
                                      f"({str(exc).splitlines()[0]})") from None
            self.model = model.eval()
        self._wanted = list(outputs)

    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        if self.model is None:
            raise RunnerError("pytorch: no model loaded")
        out = run_module(self.model, waveforms, self.threads)
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            named = {k: v for k, v in out.items()}
        elif isinstance(out, (tuple, list)):
            named = dict(zip(self.output_names, out))
        else:
            raise RunnerError(f"pytorch: the module returned a {type(out).__name__}")
        missing = [n for n in self._wanted if n not in named]
        if missing:
            raise RunnerError(f"pytorch: the module gives no {missing} (return (logits, features) or a dict)")
        return {n: named[n].detach().numpy() for n in self._wanted}

    def info(self) -> dict:
        return {"runtime": "pytorch", "version": torch.__version__, "backend": "cpu (eager)", "threads": self.threads,
                "module": self.spec, "weights": str(self.weights) if self.weights else None,
                "python": platform.python_version()}
