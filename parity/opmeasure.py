"""Measure the operator suite on onnxruntime-web's backends: the data of the measured operator table.

Every case of :mod:`ser_export.export.opsuite` is run in onnxruntime-python (the
reference), then in each column's runner (``lib/opcase.mjs`` in Node or in Chromium);
each output is compared with the reference here, and the placement log says whether a
node fell back to another execution provider.
"""
from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import onnx

from ser_export import tolerances
from ser_export.export.measured_ops import COLUMNS, CaseInfo, Cell, MeasuredTable
from ser_export.export.opsuite import NodeContext, OpCase, all_cases

from .judge import judge_operator_outputs
from .runners import RUNNERS, RunnerError

#: The runner of each column.
COLUMN_RUNNERS = {"wasm-node": "onnxruntime-web-wasm", "wasm": "chromium-wasm", "webgl": "chromium-webgl",
                  "webgpu": "chromium-webgpu"}

#: The provider that must run every node of a column; ``None`` where no other provider exists (the
#: wasm backend is onnxruntime's CPU provider alone; WebGL's onnxjs engine has no per-node fallback).
EXPECTED_PROVIDER = {"wasm-node": None, "wasm": None, "webgpu": "JsExecutionProvider", "webgl": None}


def reference_outputs(model_bytes: bytes, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The case's outputs in onnxruntime-python (CPU), by name."""
    from ser_export.ortsession import cpu_session

    session = cpu_session(model_bytes, threads=1)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {k: np.asarray(v) for k, v in inputs.items()})))


def _falls_back(column: str, placement: dict | None, all_folded: bool) -> tuple[bool | None, dict | None]:
    expected = EXPECTED_PROVIDER[column]
    if expected is None:
        return False, (placement or {}).get("providers")
    providers = (placement or {}).get("providers") or {}
    if not providers:
        if all_folded:  # onnxruntime computed every node when the session was created: none left to place
            return False, {"folded when the session was created": "all"}
        return None, None  # no placement log: not provable
    return any(p != expected for p in providers), dict(providers)


def measure_case(runner, column: str, case: OpCase, model_path: Path, inputs: dict[str, np.ndarray],
                 reference: dict[str, np.ndarray], tol: dict) -> Cell:
    model = onnx.load(str(model_path))
    pin = case.symbolic_dims(model, inputs) if column == "webgl" and case.pin_on_webgl else None
    reply = runner.run_case(model_path, inputs, pin=pin)
    if not reply.get("loaded"):
        return Cell(loads=False, error=reply.get("loadError"))
    ctx = NodeContext(model)
    falls_back, placement = _falls_back(column, reply.get("placement"), all(ctx.is_folded(n) for n in model.graph.node))
    if not reply.get("ran"):
        return Cell(loads=True, runs=False, error=reply.get("runError"), placement=placement)
    correct, err, problem = judge_operator_outputs(reference, reply["outputs"], tol)
    return Cell(loads=True, runs=True, correct=correct, falls_back=falls_back, max_abs_error=err, error=problem,
                placement=placement)


def _versions(infos: dict[str, dict]) -> dict[str, str]:
    import onnxruntime

    out = {"onnxruntime": onnxruntime.__version__, "date": datetime.date.today().isoformat()}
    for column, info in infos.items():
        out.setdefault("onnxruntime-web", info.get("version"))
        out.setdefault("node", info.get("node"))
        if info.get("browser"):
            out["browser"] = info["browser"]
        if column == "webgl" and info.get("webglRenderer"):
            out["webgl_renderer"] = info["webglRenderer"]
        if column == "webgpu" and info.get("webgpuAdapter"):
            adapter = info["webgpuAdapter"]
            out["webgpu_adapter"] = "/".join(str(adapter.get(k)) for k in ("vendor", "architecture") if adapter.get(k))
    return {k: str(v) for k, v in out.items() if v is not None}


def measure(columns: Sequence[str] = COLUMNS, cases: Iterable[OpCase] | None = None,
            progress: Callable[[str], None] | None = None) -> MeasuredTable:
    """Run ``cases`` (default: the whole suite) on ``columns``; raises :class:`RunnerError` if a
    runner cannot start (no node, no Chromium) or dies."""
    cases = list(cases if cases is not None else all_cases())
    unknown = [c for c in columns if c not in COLUMN_RUNNERS]
    if unknown:
        raise ValueError(f"unknown columns {unknown}; choose from {list(COLUMN_RUNNERS)}")
    tol = tolerances.for_stage("operator_table")
    say = progress or (lambda msg: None)
    cells: dict[str, dict[str, Cell]] = {c.case_id: {} for c in cases}
    infos: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ser_export_optable_") as tmp:
        built = {}
        for c in cases:
            model, inputs = c.build()
            path = Path(tmp) / f"{len(built)}.onnx"
            blob = model.SerializeToString()
            path.write_bytes(blob)
            built[c.case_id] = (path, inputs, reference_outputs(blob, inputs))
        for column in columns:
            runner = RUNNERS[COLUMN_RUNNERS[column]]()
            try:
                for i, c in enumerate(cases):
                    path, inputs, reference = built[c.case_id]
                    cell = measure_case(runner, column, c, path, inputs, reference, tol)
                    cells[c.case_id][column] = cell
                    if cell.verdict != "ok":
                        say(f"{column}: {c.case_id}: {cell.verdict}" + (f" ({cell.error})" if cell.error else ""))
                infos[column] = runner.harness_info()
            finally:
                runner.deactivate()
            say(f"{column}: {len(cases)} cases measured")
    return MeasuredTable(measured_with=_versions(infos), tolerance=tol,
                         cases={c.case_id: CaseInfo(c.op, c.variant, c.opset, c.description) for c in cases},
                         cells=cells)


__all__ = ["measure", "measure_case", "judge_operator_outputs", "reference_outputs", "COLUMN_RUNNERS", "RunnerError"]
