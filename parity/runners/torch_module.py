"""PyTorch runner for a model built anywhere: a factory that returns an ``nn.Module``.

``verify MODEL --contract C --torch pkg.module:factory [--torch-weights W]``: the
factory is imported and called with no arguments; weights, when given, are loaded
with ``torch.load(..., weights_only=True)`` (or from a ``.safetensors`` file if the
``safetensors`` package is installed), never with plain pickle.  The module's
``forward`` returns the logits, a tuple ``(logits, features)``, or a dict keyed by
the contract's output names.

``--torch FILE`` (an existing file, e.g. ``silero_vad.jit``) is a TorchScript module the user
names, loaded with ``torch.jit.load`` of that very file.  :meth:`TorchModuleRunner.run_stream`
runs whole streams as the streaming contract's ``reference`` says: ``drive = "self"`` (the
module keeps its own state and context and gets only each chunk's samples) or ``"inputs"``
(the declared inputs in, the declared outputs and next states out).
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ser_export.streaming import stream_windows

from .base import Runner, RunnerError, StreamOutputs
from .pytorch import run_module
from .stream_loop import drive_stream, input_names, output_names


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


def is_torchscript_file(spec: str) -> bool:
    """Whether ``--torch spec`` names a TorchScript file (an existing file) rather than a factory."""
    return ":" not in Path(spec).name and Path(spec).is_file()


def load_torchscript(path: Path) -> torch.nn.Module:
    """The user's own TorchScript file (``torch.jit.load``, on the CPU); a one-line :class:`RunnerError`."""
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises many kinds for a file that is not TorchScript
        raise RunnerError(f"--torch {path}: not a TorchScript file torch.jit.load reads ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


class TorchModuleRunner(Runner):
    """Runs the user's ``nn.Module`` or TorchScript file (eval mode, no grad) and names its outputs as the
    contract does.  ``reference``: a streaming contract's :class:`ser_export.stream_contract.Reference`."""

    name = "pytorch"
    capabilities = frozenset({"stream"})

    def __init__(self, factory: str, weights: Path | None = None, output_names: tuple[str, ...] = (),
                 threads: int = 1, reference=None):
        self.spec, self.weights, self.threads = factory, weights, threads
        self.output_names = tuple(output_names)
        self.reference = reference
        self.model = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        self._load()
        self._wanted = list(outputs)

    def _load(self) -> None:
        if self.model is None:
            if is_torchscript_file(self.spec):
                if self.weights is not None:
                    raise RunnerError(f"--torch {self.spec}: a TorchScript file holds its weights "
                                      f"(no --torch-weights)")
                self.model = load_torchscript(Path(self.spec)).eval()
                return
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

    def run_stream(self, model_path: Path, protocol: dict, streams: list[np.ndarray]) -> StreamOutputs:
        """Every stream through the reference, chunk by chunk, driven as ``self.reference`` says.

        ``drive = "self"``: ``reset`` (which the module must have, unless ``reset = ""``) before each stream, then one call per chunk
        with that chunk's ``[1, chunk]`` samples and ``arguments``; no state is reported (the module keeps
        it).  ``drive = "inputs"``: the declared inputs in order (:func:`parity.runners.stream_loop.drive_stream`),
        the result named by ``returns`` (default: the outputs, then the state outputs).
        """
        self._load()
        ref = self.reference
        drive = ref.drive if ref is not None else "inputs"
        names = list(ref.returns) if ref is not None and ref.returns else (
            list(protocol["outputs"]) if drive == "self" else output_names(protocol))
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                runs = [self._self_driven(protocol, y, names, ref) if drive == "self"
                        else drive_stream(lambda feed: self._call(feed, protocol, names), protocol, y)
                        for y in streams]
        except RunnerError:
            raise
        except Exception as exc:  # the user's module can raise anything
            raise RunnerError(f"pytorch: --torch {self.spec}: a stream did not run ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        finally:
            torch.set_num_threads(previous)
        seconds = time.perf_counter() - t0
        return StreamOutputs(self.name, [r[0] for r in runs], [r[1] for r in runs],
                             self.info() | {"drive": drive}, round(seconds, 3))

    def _named(self, out, names: list[str]) -> dict[str, np.ndarray]:
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            named = dict(out)
        elif isinstance(out, (tuple, list)):
            named = dict(zip(names, out))
        else:
            raise RunnerError(f"pytorch: the module returned a {type(out).__name__}")
        missing = [n for n in names if n not in named]
        if missing:
            raise RunnerError(f"pytorch: --torch {self.spec}: the module gives no {missing[0]!r} "
                              f"(it returned {len(named)} value(s))")
        return {n: named[n].detach().float().numpy() for n in names}

    def _call(self, feed: dict, protocol: dict, names: list[str]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.ascontiguousarray(feed[n])) for n in input_names(protocol)]
        return self._named(self.model(*args), names)

    def _self_driven(self, protocol: dict, y: np.ndarray, names: list[str], ref) -> tuple[dict, dict]:
        if ref is not None and ref.reset:
            reset = getattr(self.model, ref.reset, None)
            if not callable(reset):  # else its state would carry from one stream into the next
                raise RunnerError(f"pytorch: --torch {self.spec}: has no method {ref.reset!r} (reference.reset; "
                                  f"reset = \"\" for a module that starts every call afresh)")
            reset()
        chunks = stream_windows(y, int(protocol["signal"]["chunk"]), 0)
        arguments = list(ref.arguments) if ref is not None else []
        recorded: dict[str, list[np.ndarray]] = {n: [] for n in protocol["outputs"]}
        for c in chunks:
            out = self._named(self.model(torch.from_numpy(np.ascontiguousarray(c[None])), *arguments), names)
            for n in recorded:
                if n not in out:
                    raise RunnerError(f"pytorch: --torch {self.spec}: gives no {n!r} (reference.returns: {names})")
                recorded[n].append(out[n])
        return {n: np.stack(v) for n, v in recorded.items()}, {}

    def info(self) -> dict:
        return {"runtime": "pytorch", "version": torch.__version__,
                "backend": "cpu (torchscript)" if is_torchscript_file(self.spec) else "cpu (eager)",
                "threads": self.threads,
                "module": self.spec, "weights": str(self.weights) if self.weights else None,
                "python": platform.python_version()}
