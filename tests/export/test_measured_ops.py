"""The measured operator table: the suite, the committed table, and the lint's agreement with both.

The lint may not call compatible what failed to load, failed to run, gave wrong results or
fell back, and may not call incompatible what loaded, ran, was right and stayed on its
provider.  Checked against the committed table here (no browser needed), against a live run
of onnxruntime-web's wasm backend in Node, and (``tox -e browser``) against a live run in
Chromium on wasm, WebGL and WebGPU.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ser_export.export.lint import lint_model
from ser_export.export.measured_ops import (BACKEND_COLUMNS, COLUMNS, Cell, MeasuredTable, load_measured, read_table,
                                            render_markdown)
from ser_export.export.opsuite import NodeContext, all_cases, variant_of
from tests.e2e import ROOT, run_cli

COMMITTED = load_measured()


def test_every_case_builds_and_its_operator_maps_back_to_it():
    """Each case is a valid model that onnxruntime-python runs, and the lint's variant lookup sends
    the operator under test back to this very case (so each cell can be reached from a real model)."""
    from parity.opmeasure import reference_outputs

    for case in all_cases():
        model, inputs = case.build()
        outputs = reference_outputs(model.SerializeToString(), inputs)
        assert outputs and all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in outputs.values())
        ctx = NodeContext(model)
        nodes = [n for n in model.graph.node if n.op_type == case.op]
        assert nodes, case.case_id
        found = variant_of(nodes[-1], ctx, case.opset)
        assert found is not None and found.variant == case.variant, (case.case_id, found)


def test_committed_table_covers_the_suite_on_every_column():
    assert COMMITTED is not None, "no measured table: run `python -m ser_export optable`"
    suite = {c.case_id for c in all_cases()}
    assert set(COMMITTED.cases) == suite, "the suite changed: rebuild the table with `python -m ser_export optable`"
    for case_id, cols in COMMITTED.cells.items():
        assert set(cols) == set(COLUMNS), case_id


def _disagreements(table: MeasuredTable) -> list[str]:
    """Cases where the lint's verdict on a backend differs from the table's cells."""
    out = []
    for case in all_cases():
        model, _ = case.build()
        report = lint_model(model, measured=table)
        for backend, columns in BACKEND_COLUMNS.items():
            measured_ok = all(table.cell(case.case_id, c).ok for c in columns)
            findings = [f for f in report.findings if f.backend == backend]
            if backend == "webgl" and case.pin_on_webgl:  # measured with the symbolic dims pinned, i.e. with
                findings = [f for f in findings if f.severity != "requirement"]  # the requirement met
            lint_ok = not findings
            if measured_ok != lint_ok:
                cells = {c: table.cell(case.case_id, c).verdict for c in columns}
                out.append(f"{case.case_id} on {backend}: measured {cells}, lint "
                           f"{[f.message for f in findings] or 'no findings'}")
            for column in columns:
                cell = table.cell(case.case_id, column)
                if cell.verdict == "wrong result":  # reported as such, with the measured error
                    assert any(f"max |error| {cell.max_abs_error:.3g}" in f.message for f in findings), \
                        (case.case_id, backend, [f.message for f in findings])
    return out


def test_lint_agrees_with_the_committed_table():
    bad = _disagreements(COMMITTED)
    assert not bad, "\n".join(bad)


def test_lint_agreement_test_fails_when_the_lint_is_wrong(monkeypatch):
    """The agreement test has teeth: a table that says WebGL's Relu is broken is contradicted."""
    cells = {cid: dict(cols) for cid, cols in COMMITTED.cells.items()}
    for cid in cells:
        if cid.startswith("Relu[default]"):
            cells[cid]["webgl"] = Cell(loads=False, error="made up")
    broken = MeasuredTable(COMMITTED.measured_with, COMMITTED.tolerance, COMMITTED.cases, cells)
    # the lint reads the same broken table, so it agrees ...
    assert not _disagreements(broken)
    # ... but a lint that ignores the table (published tables only) disagrees with the measurement
    monkeypatch.setattr("ser_export.export.lint.load_measured", lambda: None)
    bad = []
    for case in all_cases():
        model, _ = case.build()
        report = lint_model(model, measured=None)
        ok = not [f for f in report.findings if f.backend == "webgl"]
        if ok != COMMITTED.cell(case.case_id, "webgl").ok:
            bad.append(case.case_id)
    assert "Constant[default]@13" in bad or "Clip[min only]@13" in bad, bad


def _verdicts(table: MeasuredTable, columns) -> dict[tuple[str, str], str]:
    return {(cid, c): table.cells[cid][c].verdict for cid in table.cells for c in columns if c in table.cells[cid]}


@pytest.mark.node
def test_live_wasm_in_node_matches_the_committed_table(tmp_path):
    """``optable --columns wasm-node`` now: every verdict as committed (a stale table fails here)."""
    out = tmp_path / "table.json"
    proc = run_cli("optable", "--columns", "wasm-node", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = read_table(out)
    assert live.measured_with["onnxruntime-web"] == COMMITTED.measured_with["onnxruntime-web"]
    assert _verdicts(live, ["wasm-node"]) == _verdicts(COMMITTED, ["wasm-node"])
    assert re.match(r"^.*table\.json: \d+ cases x 1 columns, \d+ ok, \d+ not ok; measured operator table v1",
                    proc.stdout.strip())


@pytest.mark.browser
def test_live_browsers_match_the_committed_table_and_the_lint():
    """The whole suite in Chromium now (wasm, WebGL, WebGPU with the placement proof): the same
    verdicts as the committed table, and the lint agrees with the live cells."""
    from parity.opmeasure import measure

    live = measure(("wasm", "webgl", "webgpu"))
    columns = ("wasm", "webgl", "webgpu")
    stale = {k: (v, _verdicts(COMMITTED, columns).get(k)) for k, v in _verdicts(live, columns).items()
             if _verdicts(COMMITTED, columns).get(k) != v}
    assert not stale, f"the committed table is stale (rebuild: python -m ser_export optable): {stale}"
    merged = {cid: {**COMMITTED.cells[cid], **live.cells[cid]} for cid in COMMITTED.cells}
    bad = _disagreements(MeasuredTable(live.measured_with, live.tolerance, COMMITTED.cases, merged))
    assert not bad, "\n".join(bad)


def test_table_round_trips_and_refuses_other_files(tmp_path):
    path = tmp_path / "t.json"
    COMMITTED.save(path)
    again = read_table(path)
    assert again.to_dict() == COMMITTED.to_dict()
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="bad.json: not a measured operator table"):
        read_table(tmp_path / "bad.json")


def test_readme_table_is_the_rendered_committed_table():
    """The docs' operator table (its page: ``ser_export.docs_blocks``) is generated from the committed JSON, not typed."""
    from ser_export import docs_blocks

    section = docs_blocks.read_block("optable", ROOT).strip("\n") + "\n"
    assert section == render_markdown(COMMITTED)


def test_lint_names_the_table_it_used():
    model, _ = next(c for c in all_cases() if c.case_id == "Relu[default]@13").build()
    sources = lint_model(model).table_sources
    for backend in ("wasm", "webgl", "webgpu"):
        assert sources[backend].startswith(COMMITTED.version)
        assert COMMITTED.measured_with["onnxruntime-web"] in sources[backend]
