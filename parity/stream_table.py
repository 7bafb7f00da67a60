"""Every ONNX file of the installed silero-vad wheel x every runtime, against the wheel's TorchScript model.

:func:`measure` runs each file through the stream stages (:func:`parity.stream_check.check_stream`) with the
contract written for it in ``parity/contracts/`` and ``silero_vad.jit`` as the reference, and keeps per
runtime the largest per-chunk error, the drift (the error in the first and last 10 % of the long stream), the
decision agreement and the verdict; a variant also gets its figures against its parent.
``python -m ser_export stream-table`` writes the table as JSON (:data:`PATH`);
``--markdown`` renders it (:func:`render_markdown`), the block in ``docs/streaming.md``.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Mapping

from ser_export.stream_contract import read_contract

from .judge import metric
from .report import ModelReport
from .runners import Runner
from .runners.torch_module import TorchModuleRunner
from .stream_check import StreamCheck, check_stream

CONTRACTS = Path(__file__).with_name("contracts")
#: Where the measured table is kept (``--markdown`` renders it into the docs).
PATH = CONTRACTS / "silero_table.json"
#: The contract written for each ONNX file of the wheel (from its inputs and outputs).
CONTRACT_OF = {"silero_vad.onnx": "silero_vad", "silero_vad_16k_op15.onnx": "silero_vad",
               "silero_vad_op18_ifless.onnx": "silero_vad", "silero_vad_openvino_16k.onnx": "silero_vad_16k_nosr",
               "silero_vad_16k_sequence.onnx": "silero_vad_16k_sequence", "silero_vad_half.onnx": "silero_vad_half"}
#: The table's runtimes (``stream-table``'s default; ``--runtimes`` chooses others).
RUNTIMES = ("onnxruntime-python", "onnxruntime-web-wasm", "onnxruntime-node", "chromium-wasm")
#: The table's streams: 10 short ones and a 60 s one, seed 0.
CHECK = StreamCheck(streams=10, seed=0, long_seconds=60.0, shrink=False, localize=False)


def wheel_data() -> Path:
    """The installed silero-vad wheel's ``data`` folder."""
    import silero_vad

    return Path(os.path.dirname(silero_vad.__file__)) / "data"


def measure(runners: Mapping[str, Runner], tolerances: Mapping, check: StreamCheck = CHECK,
            files: list[str] | None = None) -> dict:
    """The table: one row per ONNX file of the wheel (or ``files``), one entry per runtime of ``runners``."""
    data = wheel_data()
    names = files or sorted(p.name for p in data.glob("*.onnx"))
    unknown = [n for n in names if n not in CONTRACT_OF]
    if unknown:
        raise ValueError(f"{data / unknown[0]}: no contract written for it in {CONTRACTS}")
    rows = []
    for name in names:
        contract = read_contract(CONTRACTS / f"{CONTRACT_OF[name]}.toml")
        mr = ModelReport(contract.name, name)
        reference = TorchModuleRunner(str(data / "silero_vad.jit"), threads=1, reference=contract.reference)
        run = check_stream(data / name, contract, {"pytorch": reference, **runners}, "pytorch", tolerances, check,
                           mr)
        score = contract.scores[0].name
        row = {"file": name, "contract": f"{CONTRACT_OF[name]}.toml", "score": score, "error": mr.error,
               "chunks": sum(-(-n // contract.signal.chunk) for n in run.lengths) if run else 0, "runtimes": {}}
        for runtime in runners:
            mine = [r for r in mr.results if r.runner == runtime and r.applicable]
            row["runtimes"][runtime] = None if not mine else {
                "max_abs": metric(mine, runtime, f"stream[{score}]"),
                "drift_first": metric(mine, runtime, f"stream_drift[{score}]", "first_share"),
                "drift_last": metric(mine, runtime, f"stream_drift[{score}]", "last_share"),
                "decision_agreement": metric(mine, runtime, f"decisions[{score}]", "agreement"),
                "passed": all(r.passed for r in mine if not r.stage.startswith("vs_parent"))}
        parent = [r for r in mr.results if r.stage.startswith("vs_parent[") and r.applicable]
        if parent:
            row["vs_parent"] = {"parent": parent[0].against, "runner": parent[0].runner,
                                "class": contract.variant.tolerance_class,
                                "max_abs": metric(parent, parent[0].runner, f"vs_parent[stream,{score}]"),
                                "decision_agreement": metric(parent, parent[0].runner,
                                                             f"vs_parent[decisions,{score}]", "agreement"),
                                "passed": all(r.passed for r in parent)}
        rows.append(row)
    return {"silero_vad": importlib.metadata.version("silero-vad"), "reference": "silero_vad.jit",
            "streams": check.streams, "seconds": list(check.seconds), "long_seconds": check.long_seconds,
            "seed": check.seed, "runtimes": list(runners), "versions": versions(runners), "rows": rows}


def versions(runners: Mapping[str, Runner]) -> dict:
    """The version of each runtime the table was measured on (after its runs: a JS runner knows its own once
    started), the reference's torch, and the browser of a browser runtime."""
    import torch

    out = {"pytorch": torch.__version__}
    for name, runner in runners.items():
        info = runner.info()
        out[name] = info.get("version")
        if info.get("browser"):
            out[f"{name} browser"] = info["browser"]
    return out


def render_markdown(table: Mapping) -> str:
    """The table as the markdown of ``docs/streaming.md`` (one line per file and runtime)."""
    fmt = lambda v: "-" if v is None else f"{v:.2g}"  # noqa: E731
    lo, hi = table["seconds"]
    lines = [f"silero-vad {table['silero_vad']}, {table['streams']} streams of {lo:g}-{hi:g} s and one of "
             f"{table['long_seconds']:g} s (seed {table['seed']}), each file vs {table['reference']}:", "",
             "| file | runtime | max \\|p − p_jit\\| | drift: first 10 % → last 10 % | decisions agree | verdict |",
             "|---|---|---|---|---|---|"]
    for row in table["rows"]:
        for runtime in table["runtimes"]:
            f = row["runtimes"][runtime]
            if f is None:
                lines.append(f"| {row['file']} | {runtime} | - | - | - | not checked: {row['error']} |")
                continue
            agree = "-" if f["decision_agreement"] is None else f"{100 * f['decision_agreement']:.2f} %"
            lines.append(f"| {row['file']} | {runtime} | {fmt(f['max_abs'])} | {fmt(f['drift_first'])} → "
                         f"{fmt(f['drift_last'])} | {agree} | {'passes' if f['passed'] else 'FAILS'} |")
    variants = [r for r in table["rows"] if r.get("vs_parent")]
    if variants:
        lines.append("")
        for row in variants:
            v = row["vs_parent"]
            lines.append(f"{row['file']} vs its parent {v['parent']} (class {v['class']}, {v['runner']}): "
                         f"max |p − p_parent| {fmt(v['max_abs'])}, decisions agree "
                         f"{100 * v['decision_agreement']:.2f} %: {'passes' if v['passed'] else 'FAILS'}.")
    return "\n".join(lines) + "\n"
