"""Operator lint: can each onnxruntime-web backend run this model, as exported?

Two kinds of checks, per backend:

1. **Operators** (all backends): every node's operator, at the schema version in
   effect for the model's opset, must have a kernel in the backend's table
   (:mod:`.optables`).  Operators outside ``ai.onnx`` fail everywhere.
2. **Graph traps** found on WebGL (``shared/WEB-BACKENDS.md``) that pass every
   other runtime:

   - ``Clip`` without a ``max`` input: WebGL reads ``min`` only when ``max`` is
     given, so the clamp is skipped silently (error);
   - an empty optional input (``''``) on a node: "unrecognized input ''" at load (error);
   - int64 constants outside the int32 range: "int64 is not supported" (error);
   - a symbolic (dynamic) input dimension: WebGL checks input shapes literally and
     ignores ``freeDimensionOverrides``, so the model bytes must have it pinned before
     a WebGL session is created (``pinDimensions`` in ``js_harness/lib/onnx_model.mjs``;
     a requirement recorded in the manifest, not an error).

A :class:`LintReport` lists every finding with the nodes concerned; the export
fails when a target backend has an error.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import LintError
from .optables import BACKENDS, OpTable, load_tables

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


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


def lint_model(model: onnx.ModelProto, backends: Iterable[str] = BACKENDS,
               tables: Mapping[str, OpTable] | None = None) -> LintReport:
    """Check ``model`` against each backend in ``backends``."""
    backends = list(backends)
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}; choose from {BACKENDS}")
    tables = tables or load_tables()
    opset = model_opset(model)
    findings: list[Finding] = []
    session_options: dict[str, dict] = {}

    by_op: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for i, node in enumerate(model.graph.node):
        by_op[(node.domain, node.op_type)].append(node.name or f"#{i}:{node.op_type}")
    for backend in backends:
        table = tables[backend]
        for (domain, op), nodes in sorted(by_op.items()):
            if domain not in ("", "ai.onnx"):
                findings.append(Finding(backend, "error", "foreign-domain",
                                        f"{domain}.{op} is not an ai.onnx operator", tuple(nodes)))
            elif not table.supports(op, opset):
                findings.append(Finding(backend, "error", "unsupported-op",
                                        f"{op} (opset {opset}) has no {backend} kernel", tuple(nodes)))

    if "webgl" in backends:
        clip_min_only = [n.name for n in model.graph.node if n.op_type == "Clip" and opset >= 11
                         and len(n.input) >= 2 and n.input[1] and (len(n.input) < 3 or not n.input[2])]
        if clip_min_only:
            findings.append(Finding("webgl", "error", "clip-min-only",
                                    "Clip with a min but no max (WebGL skips the clamp silently)",
                                    tuple(clip_min_only)))
        empty_inputs = [n.name for n in model.graph.node if any(i == "" for i in n.input)]
        if empty_inputs:
            findings.append(Finding("webgl", "error", "empty-optional-input",
                                    "node with an empty optional input '' (WebGL fails to load it)",
                                    tuple(empty_inputs)))
        wide = _int64_out_of_range(model)
        if wide:
            findings.append(Finding("webgl", "error", "int64-out-of-int32",
                                    "int64 constant outside the int32 range (WebGL rejects it)", tuple(wide)))
        dynamic = _dynamic_inputs(model)
        if dynamic:
            dims = sorted({d for v in dynamic.values() for d in v})
            findings.append(Finding("webgl", "requirement", "dynamic-input-dims",
                                    f"symbolic input dims {dims}: WebGL ignores freeDimensionOverrides; pin them "
                                    f"in the model bytes (js_harness/lib/onnx_model.mjs pinDimensions)",
                                    tuple(dynamic)))
            session_options["webgl"] = {"pin_dimensions": {d: 1 for d in dims}}

    return LintReport(opset=opset, ops=op_counts(model), findings=findings,
                      table_sources={b: tables[b].source for b in backends},
                      session_options=session_options)


def require_compatible(report: LintReport, backends: Iterable[str], what: str = "model") -> None:
    """Raise :class:`LintError` naming every failing backend, operator and node."""
    failing = [b for b in backends if not report.compatible(b)]
    if failing:
        details = "; ".join(
            f"{f.backend}: {f.message} at {', '.join(f.nodes[:3])}" for b in failing for f in report.errors(b))
        raise LintError(f"{what} cannot run on {', '.join(failing)}: {details}")
