"""Operator lint: can each onnxruntime-web backend run this model, as exported?

The verdicts come from what was **measured** (:mod:`.measured_ops`: every case of
:mod:`.opsuite` run in onnxruntime-web's wasm backend in Node and in Chromium on
wasm, WebGL and WebGPU, against onnxruntime-python), per backend:

1. **Nodes**: each node is matched to the measured case it is an instance of (the
   operator, at the same schema version, in the first variant whose predicate holds:
   a ``Clip`` with only a minimum, a ``Concat`` of 8 runtime inputs, ...).  A case
   that failed to load or run, gave wrong outputs or fell back to another provider is
   a finding with what was measured (``unsupported-op``, ``fails-to-run``,
   ``wrong-result`` with the error, ``falls-back``).  Nodes whose inputs are all
   constant are computed when the session is created on backends that fold
   constants (measured), and ``Constant`` never needs a kernel.  Operators the suite
   does not measure fall back to the published tables (:mod:`.optables`).
2. **Model-wide traps**, each measured by its own case: an empty optional input
   ``''`` (WebGL fails to load it), an int64 constant outside the int32 range (WebGL
   rejects it), a symbolic input dimension (WebGL checks input shapes literally and
   ignores ``freeDimensionOverrides``: a *requirement*, met by pinning the dimension in
   the model bytes, ``pinDimensions`` in ``js_harness/lib/onnx_model.mjs``).

A :class:`LintReport` lists every finding with the nodes concerned; the export fails
when a target backend has an error.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import LintError
from .measured_ops import MeasuredTable, load_measured
from .opsuite import INT32_MAX, INT32_MIN, TRAP_CASES, NodeContext, variant_of
from .optables import BACKENDS, OpTable, load_tables

#: Operators onnxruntime resolves when it loads the graph: they never need a kernel.
GRAPH_LEVEL_OPS = frozenset({"Constant"})

#: Finding code per measured verdict (a trap case reports under its own code).
VERDICT_CODES = {"fails to load": "unsupported-op", "fails to run": "fails-to-run", "wrong result": "wrong-result",
                 "falls back": "falls-back", "placement unproven": "placement-unproven"}

#: Codes that a runtime can meet with a session option (not errors).
REQUIREMENT_CODES = frozenset({"dynamic-input-dims"})


@dataclasses.dataclass(frozen=True)
class Finding:
    backend: str
    severity: str        # "error" or "requirement"
    code: str
    message: str
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "nodes": list(self.nodes[:10]), "n_nodes": len(self.nodes)}


@dataclasses.dataclass
class LintReport:
    opset: int
    ops: dict[str, int]
    findings: list[Finding]
    table_sources: dict[str, str]
    session_options: dict[str, dict]

    def errors(self, backend: str | None = None) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error" and backend in (None, f.backend)]

    def compatible(self, backend: str) -> bool:
        return not self.errors(backend)

    def backends_dict(self) -> dict:
        out = {}
        for backend in self.table_sources:
            out[backend] = {
                "compatible": self.compatible(backend),
                "table": self.table_sources[backend],
                "findings": [f.to_dict() for f in self.findings if f.backend == backend],
                "session_options": self.session_options.get(backend, {}),
            }
        return out

    def summary(self) -> str:
        parts = []
        for backend in self.table_sources:
            errs = self.errors(backend)
            parts.append(f"{backend}: " + ("ok" if not errs else "; ".join(
                f"{f.message} ({', '.join(f.nodes[:3])}{'...' if len(f.nodes) > 3 else ''})" for f in errs)))
        return " | ".join(parts)


def model_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise LintError("model imports no ai.onnx opset")


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts = collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in model.graph.node)
    return dict(sorted(counts.items()))


def _int64_out_of_range(model: onnx.ModelProto) -> list[str]:
    names = []
    tensors = [(t.name, t) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    tensors.append((node.name or node.output[0], attr.t))
    for name, tensor in tensors:
        if tensor.data_type == onnx.TensorProto.INT64:
            values = numpy_helper.to_array(tensor)
            if values.size and (values.min() < INT32_MIN or values.max() > INT32_MAX):
                names.append(name)
    return names


def _dynamic_inputs(model: onnx.ModelProto) -> dict[str, list[str]]:
    initializers = {t.name for t in model.graph.initializer}
    dynamic = {}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        symbolic = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        if symbolic:
            dynamic[inp.name] = symbolic
    return dynamic


def _measured_message(op: str, variant: str, case_id: str, backend: str, verdict: str, cell, column) -> str:
    detail = ""
    if cell is not None:
        if verdict == "wrong result" and cell.max_abs_error is not None:
            detail = f": max |error| {cell.max_abs_error:.3g} vs onnxruntime-python"
        elif verdict == "falls back" and cell.placement:
            detail = f": placed on {dict(cell.placement)}"
        elif cell.error:
            detail = f": {cell.error}"
    where = f"{backend} ({column})" if column and column != backend else backend
    return f"{op} ({variant}) {verdict} on {where}, measured as {case_id}{detail}"


def lint_model(model: onnx.ModelProto, backends: Iterable[str] = BACKENDS,
               tables: Mapping[str, OpTable] | None = None,
               measured: MeasuredTable | None | bool = True) -> LintReport:
    """Check ``model`` against each backend in ``backends``.

    Parameters
    ----------
    model : onnx.ModelProto
    backends : iterable of {"wasm", "webgl", "webgpu"}
    tables : mapping, optional
        The published operator tables (for operators the suite does not measure).
    measured : MeasuredTable, True or None
        The measured table (``True``: the committed one; ``None``: published tables only).
    """
    backends = list(backends)
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    tables = tables or load_tables()
    measured = load_measured() if measured is True else measured
    opset = model_opset(model)
    ctx = NodeContext(model)
    findings: dict[tuple[str, str, str], list[str]] = collections.defaultdict(list)  # (backend, code, msg) -> nodes
    session_options: dict[str, dict] = {}

    def report(backend: str, code: str, message: str, where: str) -> None:
        findings[(backend, code, message)].append(where)

    def trap(backend: str, code: str, what: str) -> str | None:
        """The finding's message if the trap's measured case failed on ``backend`` (None if it is ok)."""
        if measured is None:
            return None
        for case_id in (f"{TRAP_CASES[code]}@{o}" for o in (opset, 13, 17)):
            if case_id in measured.cases:
                verdict, cell, column = measured.verdict(case_id, backend)
                if verdict in ("ok", "not measured"):
                    return None
                info = measured.cases[case_id]
                return f"{what}: " + _measured_message(info.op, info.variant, case_id, backend, verdict, cell, column)
        return None

    for backend in backends:
        folds = measured is not None and measured.folds_constants(backend)
        for i, node in enumerate(model.graph.node):
            where = node.name or f"#{i}:{node.op_type}"
            if node.domain not in ("", "ai.onnx"):
                report(backend, "foreign-domain", f"{node.domain}.{node.op_type} is not an ai.onnx operator", where)
                continue
            if node.op_type in GRAPH_LEVEL_OPS or (folds and ctx.is_folded(node)):
                continue  # resolved or computed when the session is created
            case = variant_of(node, ctx, opset) if measured is not None else None
            if case is not None:
                verdict, cell, column = measured.verdict(case.case_id, backend)
                if verdict == "ok":
                    continue
                if verdict != "not measured":
                    report(backend, case.code or VERDICT_CODES[verdict],
                           _measured_message(node.op_type, case.variant, case.case_id, backend, verdict, cell, column),
                           where)
                    continue
            if not tables[backend].supports(node.op_type, opset):
                report(backend, "unsupported-op", f"{node.op_type} (opset {opset}) has no {backend} kernel in "
                                                  f"{tables[backend].source} (not measured)", where)

        empty = [n.name or f"#{i}:{n.op_type}" for i, n in enumerate(model.graph.node) if any(x == "" for x in n.input)]
        wide = _int64_out_of_range(model)
        dynamic = _dynamic_inputs(model)
        dims = sorted({d for v in dynamic.values() for d in v})
        half = [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
        for code, where_list, what in (
                ("empty-optional-input", empty, "a node with an empty optional input ''"),
                ("int64-out-of-int32", wide, "an int64 constant outside the int32 range"),
                ("float16-tensor", half, "float16 initializers"),
                ("dynamic-input-dims", list(dynamic), f"inputs with symbolic dimensions {dims}")):
            if not where_list or any(k[0] == backend and k[1] == code for k in findings):
                continue
            message = trap(backend, code, what)
            if message is not None:
                for where in where_list:
                    report(backend, code, message, where)
        if dynamic and any(k[0] == backend and k[1] == "dynamic-input-dims" for k in findings):
            session_options[backend] = {"pin_dimensions": {d: 1 for d in dims}}

    out = []
    for (backend, code, message), nodes in findings.items():
        severity = "requirement" if code in REQUIREMENT_CODES else "error"
        if code == "dynamic-input-dims":
            message += (" (met by pinning the symbolic dimensions in the model bytes: "
                        "js_harness/lib/onnx_model.mjs pinDimensions)")
        out.append(Finding(backend, severity, code, message, tuple(dict.fromkeys(nodes))))
    sources = {b: (f"{measured.version}; operators it does not measure: {tables[b].source}" if measured is not None
                   else tables[b].source) for b in backends}
    return LintReport(opset=opset, ops=op_counts(model), findings=out, table_sources=sources,
                      session_options=session_options)


def require_compatible(report: LintReport, backends: Iterable[str], what: str = "model") -> None:
    """Raise :class:`LintError` naming every failing backend, operator and node."""
    failing = [b for b in backends if not report.compatible(b)]
    if failing:
        details = "; ".join(
            f"{f.backend}: {f.message} at {', '.join(f.nodes[:3])}" for b in failing for f in report.errors(b))
        raise LintError(f"{what} cannot run on {', '.join(failing)}: {details}")
