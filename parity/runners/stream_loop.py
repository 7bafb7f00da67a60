"""The chunk loop of a stream through a stateful model, for the Python runners.

Every chunk gets its signal window (:func:`ser_export.streaming.stream_windows`), the
current states and the constants of the protocol (the wire form of
:meth:`ser_export.stream_contract.StreamContract.to_wire`); each state input then takes the
value of its output.  The JS runners loop the same way (``js_harness/lib/stream.mjs``).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ser_export.streaming import stream_windows

from .base import RunnerError

_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}


def input_names(protocol: Mapping) -> list[str]:
    """Every input the protocol feeds: the signal, the states, the constants (in that order)."""
    return ([protocol["signal"]["name"]] + [s["input"] for s in protocol["states"]]
            + [c["name"] for c in protocol["constants"]])


def output_names(protocol: Mapping) -> list[str]:
    """Every output a chunk's call must give: the recorded outputs, then the state outputs."""
    return list(protocol["outputs"]) + [s["output"] for s in protocol["states"]]


def check_names(runner: str, model: str, protocol: Mapping, model_inputs: list[str],
                model_outputs: list[str]) -> None:
    """A :class:`RunnerError` naming the first input or output of the protocol the model lacks, or the first
    model input the protocol does not feed."""
    for name in input_names(protocol):
        if name not in model_inputs:
            raise RunnerError(f"{runner}: {model} has no input {name!r} (its inputs: {', '.join(model_inputs)})")
    for name in output_names(protocol):
        if name not in model_outputs:
            raise RunnerError(f"{runner}: {model} has no output {name!r} (its outputs: {', '.join(model_outputs)})")
    fed = set(input_names(protocol))
    for name in model_inputs:
        if name not in fed:
            raise RunnerError(f"{runner}: {model} has input {name!r}, which the contract does not declare")


def initial_states(protocol: Mapping) -> dict[str, np.ndarray]:
    """Each state input at its initial value (``full(dims, init)`` in its dtype)."""
    return {s["input"]: np.full(s["dims"], s["init"], dtype=_DTYPES[s["dtype"]]) for s in protocol["states"]}


def constants(protocol: Mapping) -> dict[str, np.ndarray]:
    """Each constant input as an array of its dtype and dims."""
    return {c["name"]: np.full(c["dims"], c["value"], dtype=_DTYPES[c["dtype"]]) for c in protocol["constants"]}


def drive_stream(step: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]], protocol: Mapping,
                 y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One stream through ``step`` (one call of the model: inputs by name -> outputs by name).

    Parameters
    ----------
    step : callable
        ``step(feed) -> outputs``; ``feed`` holds every input of :func:`input_names`, ``outputs`` must hold
        every name of :func:`output_names`.
    protocol : mapping
        The wire form (``signal``, ``states``, ``constants``, ``outputs``).
    y : np.ndarray [shape=(n,)]
        The stream, float32 samples.

    Returns
    -------
    outputs : dict of np.ndarray [shape=(n_chunks, *dims)], float32
        Every chunk's value of each recorded output.
    final_state : dict of np.ndarray, float32
        Each state output after the last chunk.
    """
    sig = protocol["signal"]
    windows = stream_windows(y, int(sig["chunk"]), int(sig["context"]))
    states, const = initial_states(protocol), constants(protocol)
    pairs = [(s["input"], s["output"], _DTYPES[s["dtype"]]) for s in protocol["states"]]
    recorded: dict[str, list[np.ndarray]] = {n: [] for n in protocol["outputs"]}
    last: dict[str, np.ndarray] = {}
    for w in windows:
        feed = {sig["name"]: w[None].astype(_DTYPES[sig["dtype"]])} | states | const
        out = step(feed)
        for name in recorded:
            recorded[name].append(np.asarray(out[name], dtype=np.float32))
        for inp, outp, dtype in pairs:
            last[outp] = np.asarray(out[outp])
            states[inp] = last[outp].astype(dtype).reshape(states[inp].shape)
    return ({n: np.stack(v) for n, v in recorded.items()},
            {n: v.astype(np.float32) for n, v in last.items()})
