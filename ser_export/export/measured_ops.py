"""The measured operator table: what each onnxruntime-web backend really does with each case.

``python -m ser_export optable --out FILE`` runs every case of
:mod:`ser_export.export.opsuite` in onnxruntime-web's wasm backend in Node and in
headless Chromium on wasm, WebGL and WebGPU, and records for each case and column
whether the model **loads**, **runs**, gives the **correct** outputs (against
onnxruntime-python, within the ``operator_table`` tolerance) and whether any node
**falls back** to another execution provider.  The committed table
(``measured_ops.json`` beside this module) is what the operator lint reports from.

This module reads, writes and renders the table; the measuring lives in
``parity/opmeasure.py`` (it drives the runners).
"""
from __future__ import annotations

import dataclasses
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from ..io import UntrustedFileError, atomic_write_bytes, read_untrusted

PATH = Path(__file__).with_name("measured_ops.json")
#: Largest table file read (the committed one is about 180 kB).
MAX_BYTES = 16 << 20
FORMAT = "ser_export-measured-ops"
FORMAT_VERSION = 1

#: Measured columns: onnxruntime-web's wasm backend in Node, and the three backends in Chromium.
COLUMNS = ("wasm-node", "wasm", "webgl", "webgpu")

#: The lint's backends and the columns that decide each (wasm must hold in Node and in the page).
BACKEND_COLUMNS = {"wasm": ("wasm-node", "wasm"), "webgl": ("webgl",), "webgpu": ("webgpu",)}

#: Cases whose cells say whether a backend folds all-constant nodes when a session is created.
FOLDING_WITNESSES = ("ConstantOfShape[constant input]", "Range[constant inputs]")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One case on one column.

    ``runs``/``correct``/``falls_back`` are ``None`` where an earlier step failed (a
    model that does not load cannot run); ``max_abs_error`` is the largest
    ``|output - onnxruntime-python|`` over all outputs (``None`` if not run or if the
    shapes differ); ``error`` the first line of the load or run error, or what was
    wrong with the outputs.
    """

    loads: bool
    runs: bool | None = None
    correct: bool | None = None
    falls_back: bool | None = None
    max_abs_error: float | None = None
    error: str | None = None
    placement: Mapping[str, int | str] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.loads and self.runs and self.correct and self.falls_back is False)

    @property
    def verdict(self) -> str:
        """``ok``, ``fails to load``, ``fails to run``, ``wrong result``, ``falls back`` or
        ``placement unproven`` (no placement log: nothing shows where the nodes ran)."""
        if not self.loads:
            return "fails to load"
        if not self.runs:
            return "fails to run"
        if not self.correct:
            return "wrong result"
        if self.falls_back is None:
            return "placement unproven"
        if self.falls_back:
            return "falls back"
        return "ok"

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Cell":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown or "loads" not in data:
            raise ValueError(f"bad cell {dict(data)}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class CaseInfo:
    op: str
    variant: str
    opset: int
    description: str


@dataclasses.dataclass(frozen=True)
class MeasuredTable:
    """Cells by case id and column, with what they were measured with."""

    measured_with: Mapping[str, str]
    tolerance: Mapping[str, float]
    cases: Mapping[str, CaseInfo]
    cells: Mapping[str, Mapping[str, Cell]]

    def cell(self, case_id: str, column: str) -> Cell | None:
        return self.cells.get(case_id, {}).get(column)

    def verdict(self, case_id: str, backend: str) -> tuple[str, Cell | None, str | None]:
        """``(verdict, worst cell, its column)`` of a case on a lint backend (all its columns must hold).

        ``("not measured", None, None)`` when a column lacks the case.
        """
        worst = ("ok", None, None)
        for column in BACKEND_COLUMNS[backend]:
            cell = self.cell(case_id, column)
            if cell is None:
                return "not measured", None, None
            if not cell.ok and worst[0] == "ok":
                worst = (cell.verdict, cell, column)
            elif worst[1] is None:
                worst = ("ok", cell, column)
        return worst

    def folds_constants(self, backend: str) -> bool:
        """Whether ``backend`` computes all-constant nodes when a session is created: every folding
        witness case (at every opset measured) is ok there."""
        ids = [cid for cid, info in self.cases.items() if f"{info.op}[{info.variant}]" in FOLDING_WITNESSES]
        return bool(ids) and all(self.verdict(i, backend)[0] == "ok" for i in ids)

    @property
    def version(self) -> str:
        """One line naming the table and what it was measured with."""
        w = self.measured_with
        return (f"measured operator table v{FORMAT_VERSION} ({len(self.cases)} cases; onnxruntime-web "
                f"{w.get('onnxruntime-web', '?')}, {w.get('browser', '?')}, onnxruntime {w.get('onnxruntime', '?')}; "
                f"{w.get('date', '?')})")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "measured_with": dict(self.measured_with),
                "tolerance": dict(self.tolerance),
                "cases": {cid: dataclasses.asdict(info) for cid, info in self.cases.items()},
                "cells": {cid: {col: cell.to_dict() for col, cell in cols.items()}
                          for cid, cols in self.cells.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> "MeasuredTable":
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} table")
        cases = {cid: CaseInfo(**info) for cid, info in data["cases"].items()}
        cells = {cid: {col: Cell.from_dict(c) for col, c in cols.items()} for cid, cols in data["cells"].items()}
        unknown = set(cells) - set(cases)
        if unknown:
            raise ValueError(f"cells of unknown cases {sorted(unknown)[:3]}")
        return cls(measured_with=dict(data["measured_with"]), tolerance=dict(data["tolerance"]), cases=cases,
                   cells=cells)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_bytes(Path(path), (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode())


def read_table(path: str | os.PathLike) -> MeasuredTable:
    """A table file (read by :func:`ser_export.io.read_untrusted`); ``ValueError`` naming the file if it is not one."""
    try:
        data = read_untrusted(path, max_bytes=MAX_BYTES, format="json")
    except UntrustedFileError as exc:
        raise ValueError(f"{exc.path}: not a measured operator table ({exc.problem})") from None
    try:
        return MeasuredTable.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a measured operator table ({exc})") from None


@lru_cache(maxsize=None)
def load_measured(path: str = str(PATH)) -> MeasuredTable | None:
    """The committed table (``None`` if the package has none)."""
    return read_table(path) if Path(path).exists() else None


# ------------------------------------------------------------------ rendering ----
def _short(cell: Cell) -> str:
    verdict = cell.verdict
    if verdict == "ok":
        return "ok"
    if verdict == "wrong result":
        err = "shape" if cell.max_abs_error is None else f"{cell.max_abs_error:.2g}"
        return f"**wrong** ({err})"
    if verdict == "falls back":
        others = ", ".join(f"{p} {n}" for p, n in (cell.placement or {}).items() if p != "JsExecutionProvider")
        return f"falls back ({others})"
    return verdict


def render_markdown(table: MeasuredTable) -> str:
    """The table as markdown: a row per operator and variant, a column per backend, opsets merged
    where they agree."""
    rows: dict[tuple[str, str], dict[int, str]] = {}
    order: list[tuple[str, str]] = []
    for cid, info in table.cases.items():
        key = (info.op, info.variant)
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][info.opset] = cid
    w = table.measured_with
    lines = [f"Measured with onnxruntime-web {w.get('onnxruntime-web')} in Node {w.get('node')} (`wasm-node`) and in "
             f"{w.get('browser')} (`wasm`, `webgl`: {w.get('webgl_renderer')}, `webgpu`: "
             f"{w.get('webgpu_adapter')}), against onnxruntime {w.get('onnxruntime')} (Python, CPU); "
             f"{w.get('date')}. A cell is `ok` when the model loads, runs, matches onnxruntime-python within "
             f"atol {table.tolerance.get('atol')} + rtol {table.tolerance.get('rtol')} and no node falls back to "
             f"another execution provider; **wrong** gives the largest |error|. Opsets are merged where they "
             f"agree.", "",
             "| operator | variant | " + " | ".join(f"`{c}`" for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for op, variant in sorted(order, key=lambda k: (k[0].lower(), order.index(k))):
        by_opset = rows[(op, variant)]
        cells = []
        for column in COLUMNS:
            got = {opset: table.cells.get(cid, {}).get(column) for opset, cid in sorted(by_opset.items())}
            verdicts = {c.verdict if c else "not measured" for c in got.values()}
            if len(verdicts) == 1 and None not in got.values():  # one verdict: show the worst case of it
                cells.append(_short(max(got.values(), key=lambda c: c.max_abs_error or 0.0)))
            else:
                cells.append("; ".join(f"{o}: {_short(c) if c else 'not measured'}" for o, c in got.items()))
        opsets = "/".join(str(o) for o in sorted(by_opset))
        lines.append(f"| {op} ({opsets}) | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
