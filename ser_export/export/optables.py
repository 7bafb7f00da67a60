"""Operator support tables of onnxruntime-web's backends, derived from installed packages.

Nothing here is a hand-typed list of operators:

- **webgl** and **webgpu**: parsed from ``docs/webgl-operators.md`` and
  ``docs/webgpu-operators.md`` that the onnxruntime-web package installed in
  ``js_harness/`` ships (generated upstream from the kernel registrations).
- **wasm**: the wasm backend is onnxruntime's CPU execution provider compiled to
  WebAssembly; its table is the CPU kernel registry of the installed
  onnxruntime Python package (``get_all_opkernel_def``).  The parity suite then
  loads every model in onnxruntime-web's real wasm backend, which settles any
  version skew between the two packages.

A table maps an ``ai.onnx`` operator to the ranges of schema versions
(``since_version``) that have a kernel.
"""
from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from pathlib import Path

import onnx

from ..jsenv import HARNESS_DIR, ort_web_dir

BACKENDS = ("wasm", "webgl", "webgpu")
OPEN = 10**9  # upper bound of an open range such as "13+"


@dataclasses.dataclass(frozen=True)
class OpTable:
    """Supported ``ai.onnx`` schema-version ranges per operator for one backend."""

    backend: str
    source: str
    ranges: dict[str, tuple[tuple[int, int], ...]]

    def supports(self, op_type: str, opset: int) -> bool:
        """Whether ``op_type`` as defined at ``opset`` has a kernel on this backend."""
        since = schema_version(op_type, opset)
        if since is None:
            return False
        return any(lo <= since <= hi for lo, hi in self.ranges.get(op_type, ()))


@lru_cache(maxsize=None)
def schema_version(op_type: str, opset: int, domain: str = "") -> int | None:
    """``since_version`` of the schema of ``op_type`` in effect at ``opset`` (None if none)."""
    try:
        return onnx.defs.get_schema(op_type, opset, domain).since_version
    except onnx.defs.SchemaError:
        return None


def _parse_range(text: str) -> tuple[int, int]:
    text = text.strip()
    if text.endswith("+"):
        return int(text[:-1]), OPEN
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def parse_webgl_table(markdown: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """Rows like ``| [Abs](...) | [6-12](...), [13+](...) |``."""
    table = {}
    for line in markdown.splitlines():
        m = re.match(r"^\|\s*\[([A-Za-z0-9_]+)\]\([^)]*\)\s*\|(.*)\|\s*$", line)
        if not m:
            continue
        versions = re.findall(r"\[(\d+(?:-\d+|\+)?)\]", m.group(2))
        if versions:
            table[m.group(1)] = tuple(_parse_range(v) for v in versions)
    return table


def parse_webgpu_table(markdown: str) -> dict[str, tuple[tuple[int, int], ...]]:
    """Rows like ``| Abs | ai.onnx(6-12,13+) |  |`` (other domains ignored)."""
    table = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Za-z0-9_]+", cells[0]):
            continue
        m = re.search(r"(?<![\w.])ai\.onnx\(([^)]*)\)", cells[1])
        if m:
            table[cells[0]] = tuple(_parse_range(v) for v in m.group(1).split(",") if v.strip())
    return table


def cpu_kernel_table() -> tuple[dict[str, tuple[tuple[int, int], ...]], str]:
    """``ai.onnx`` kernels of onnxruntime's CPU execution provider."""
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    table: dict[str, set[tuple[int, int]]] = {}
    for k in C.get_all_opkernel_def():
        if k.provider != "CPUExecutionProvider" or k.domain not in ("", "ai.onnx"):
            continue
        lo, hi = k.version_range
        table.setdefault(k.op_name, set()).add((lo, OPEN if hi >= 2**31 - 1 else hi))
    return ({op: tuple(sorted(r)) for op, r in table.items()},
            f"onnxruntime {onnxruntime.__version__} CPU kernel registry")


def _ort_web_version(path: Path) -> str:
    return json.loads((path / "package.json").read_text())["version"]


@lru_cache(maxsize=4)
def load_tables(harness: Path = HARNESS_DIR) -> dict[str, OpTable]:
    """The three backends' tables (needs the JS harness installed: ``setup-js``)."""
    web = ort_web_dir(harness)
    version = _ort_web_version(web)
    tables = {}
    for backend, parse in (("webgl", parse_webgl_table), ("webgpu", parse_webgpu_table)):
        doc = web / "docs" / f"{backend}-operators.md"
        ranges = parse(doc.read_text(encoding="utf-8"))
        if not ranges:
            raise RuntimeError(f"{doc}: no operator rows could be parsed")
        tables[backend] = OpTable(backend, f"onnxruntime-web {version} docs/{doc.name}", ranges)
    ranges, source = cpu_kernel_table()
    tables["wasm"] = OpTable("wasm", source, ranges)
    return tables
