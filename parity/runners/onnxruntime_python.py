"""onnxruntime (Python) runner on the CPU execution provider."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np
import onnxruntime as ort

from ser_export.ortsession import cpu_session

from .base import Runner, RunnerError, StreamOutputs
from .stream_loop import check_names, constants, drive_stream, initial_states, output_names


def _first_line(exc: BaseException) -> str:
    """An exception as one line (onnxruntime's messages run over several): its first line, else its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: onnxruntime's input types for the protocol's dtypes.
_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
              "int32": "tensor(int32)"}


def check_metadata(runner: str, model: str, protocol: Mapping, inputs: list[tuple[str, str, list]]) -> None:
    """The protocol's declared dtypes and dims against the model's inputs (``(name, onnxruntime type, shape)``;
    a symbolic or unnamed dim takes any size): a :class:`RunnerError` naming the protocol's field, as the JS
    side's ``checkProtocol`` (``js_harness/packages/ser-export-web/src/stream.mjs``) does.

    The signal is fed ``(1, context + chunk)``, each state its ``dims``, each constant its ``dims``."""
    sig = protocol["signal"]
    declared = {sig["name"]: ("protocol.signal", sig.get("dtype", "float32"), [1, sig["context"] + sig["chunk"]])}
    declared |= {st["input"]: (f"protocol.states[{i}]", st["dtype"], list(st["dims"]))
                 for i, st in enumerate(protocol["states"])}
    declared |= {c["name"]: (f"protocol.constants[{i}]", c["dtype"], list(c["dims"]))
                 for i, c in enumerate(protocol["constants"])}
    for name, type_, shape in inputs:
        if name not in declared:
            continue
        where, dtype, dims = declared[name]
        if type_ != _ORT_TYPES.get(dtype, dtype):
            theirs = next((k for k, v in _ORT_TYPES.items() if v == type_), type_)
            raise RunnerError(f"{runner}: {model}: {where}.dtype is {dtype}, the model's input {name!r} is {theirs}")
        fixed = [d if isinstance(d, int) and d >= 0 else "?" for d in shape] if shape is not None else None
        if fixed is not None and (len(fixed) != len(dims) or any(f != "?" and f != d for f, d in zip(fixed, dims))):
            raise RunnerError(f"{runner}: {model}: {where} feeds {name!r} with dims {dims}, the model's input is "
                              f"[{', '.join(map(str, fixed))}]")


class OnnxruntimePythonRunner(Runner):
    name = "onnxruntime-python"
    capabilities = frozenset({"stream"})

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.session: ort.InferenceSession | None = None

    def activate(self, model_path: Path, outputs: list[str]) -> None:
        try:
            self.session = cpu_session(str(model_path), threads=self.threads)
        except Exception as exc:
            raise RunnerError(f"onnxruntime-python: cannot load {model_path}: {_first_line(exc)}") from None
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

    def run_stream(self, model_path: Path, protocol: dict, streams: list[np.ndarray]) -> StreamOutputs:
        """Every stream through ``model_path`` chunk by chunk (:func:`parity.runners.stream_loop.drive_stream`),
        one CPU session for all of them."""
        try:
            session = cpu_session(str(model_path), threads=self.threads)
        except Exception as exc:
            raise RunnerError(f"onnxruntime-python: cannot load {model_path}: {_first_line(exc)}") from None
        check_names(self.name, Path(model_path).name, protocol, [i.name for i in session.get_inputs()],
                    [o.name for o in session.get_outputs()])
        check_metadata(self.name, Path(model_path).name, protocol,
                       [(i.name, i.type, i.shape) for i in session.get_inputs()])
        names = output_names(protocol)

        def step(feed):
            return dict(zip(names, session.run(names, feed)))

        t0 = time.perf_counter()
        try:
            runs = [drive_stream(step, protocol, y) for y in streams]
        except Exception as exc:  # onnxruntime raises its own kinds for a wrong shape or dtype
            raise RunnerError(f"onnxruntime-python: {Path(model_path).name}: a stream did not run: "
                              f"{_first_line(exc)}") from None
        seconds = time.perf_counter() - t0
        self.session = session
        return StreamOutputs(self.name, [r[0] for r in runs], [r[1] for r in runs], self.info(), round(seconds, 3))

    def run_sequence(self, model_path: Path, protocol: dict, signal: str, outputs: list[str],
                     streams: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """A model's whole-sequence form: every window of each stream at once, stacked along the first axis of
        input ``signal`` (``(n_chunks, context + chunk)``), the states at their initial values and the
        constants as declared; ``outputs`` of each stream as float32."""
        from ser_export.streaming import stream_windows

        try:
            session = cpu_session(str(model_path), threads=self.threads)
        except Exception as exc:
            raise RunnerError(f"onnxruntime-python: cannot load {model_path}: {_first_line(exc)}") from None
        inputs = [i.name for i in session.get_inputs()]
        have = [o.name for o in session.get_outputs()]
        for name in [signal] + [s["input"] for s in protocol["states"]] + [c["name"] for c in protocol["constants"]]:
            if name not in inputs:
                raise RunnerError(f"onnxruntime-python: the whole-sequence form {Path(model_path).name} has no "
                                  f"input {name!r} (its inputs: {', '.join(inputs)})")
        for name in outputs:
            if name not in have:
                raise RunnerError(f"onnxruntime-python: the whole-sequence form {Path(model_path).name} has no "
                                  f"output {name!r} (its outputs: {', '.join(have)})")
        sig = protocol["signal"]
        dtype = np.float16 if sig["dtype"] == "float16" else np.float32
        out = []
        for y in streams:
            feed = {signal: stream_windows(y, int(sig["chunk"]), int(sig["context"])).astype(dtype)}
            feed |= initial_states(protocol) | constants(protocol)
            try:
                values = session.run(outputs, feed)
            except Exception as exc:  # onnxruntime raises its own kinds
                raise RunnerError(f"onnxruntime-python: the whole-sequence form {Path(model_path).name} did not "
                                  f"run: {_first_line(exc)}") from None
            out.append({n: np.asarray(v, np.float32) for n, v in zip(outputs, values)})
        return out

    def info(self) -> dict:
        return {"runtime": "onnxruntime-python", "version": ort.__version__,
                "backend": ",".join(self.session.get_providers()) if self.session else "CPUExecutionProvider",
                "threads": self.threads}

    def deactivate(self) -> None:
        self.session = None
