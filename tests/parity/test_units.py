"""Unit tests of the parity modules (no Node needed)."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings

from parity import compare
from parity.cases import KINDS, CaseSpec, case_specs, draw_cases, golden_specs, render, shrink_failure
from parity.report import GateReport, ModelReport, write_json, write_junit


@settings(max_examples=40)
@given(case_specs())
def test_render_is_deterministic_and_normalised(spec):
    a, b = render(spec), render(spec)
    assert a.shape == (46305,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    if spec.normalised:
        assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)


def test_draw_cases_is_seeded_and_covers_the_kinds():
    first, again = draw_cases(60, seed=3), draw_cases(60, seed=3)
    assert first == again and len(set(first)) == 60
    assert {s.kind for s in first} == set(KINDS)
    assert any(not s.normalised for s in first) and draw_cases(60, seed=4) != first


def test_shrink_finds_a_minimal_failure():
    """A property failing for loud noise shrinks towards the simplest such case."""
    def fails(spec: CaseSpec) -> bool:
        return spec.kind == "noise" and spec.a > 0.5

    minimal = shrink_failure(200, 0, fails, budget_s=30)
    assert minimal is not None and minimal.kind == "noise" and minimal.a > 0.5
    assert minimal.seed == 0  # shrunk


def test_golden_specs_are_fixed():
    assert golden_specs() == golden_specs() and len(golden_specs()) == 8


def test_compare_logmel_reports_where_and_splits_regions():
    ref = np.full((2, 1, 4, 5), -10.0)
    ref[:, :, 0, 0] = -79.0  # near the floor
    ours = ref.copy()
    ours[1, 0, 0, 0] += 0.01   # small error near the floor
    ours[0, 0, 2, 3] += 0.002  # above the floor
    tol = {"floor_margin_db": 40.0, "above_floor": 0.001, "all_bins": 0.02}
    above, all_bins = compare.compare_logmel("m", "r", "ref", ours, ref, ["c0", "c1"], tol, 80.0, "logmel")
    assert not above.passed and above.where == {"case": 0, "input": "c0", "mel_band": 2, "frame": 3,
                                                "reference_db": -10.0}
    assert all_bins.passed and all_bins.max_abs == pytest.approx(0.01)
    assert above.min_passing_tolerance == pytest.approx(0.002)


def test_nan_output_is_the_worst_error():
    ref = np.zeros((1, 3))
    ours = np.array([[0.0, np.nan, 0.0]])
    r = compare.compare_logits("m", "r", "b", ours, ref, ["c"], ["a", "b", "c"], 1e-3)
    assert not r.passed and r.where["logit"] == "b" and r.max_abs == float("inf")


def test_top1_exempts_ties_within_tolerance():
    ref = np.array([[1.0, 1.0005, 0.0], [2.0, 0.0, 0.0]])
    ours = np.array([[1.0005, 1.0, 0.0], [0.0, 2.0, 0.0]])
    r = compare.compare_top1("m", "r", "b", ours, ref, ["tie", "clear"], ["a", "b", "c"], 1e-3)
    assert not r.passed and r.where["case"] == 1 and r.where["expected"] == "a" and r.where["got"] == "b"
    assert "1 ties" in r.detail


def test_reports_are_valid_json_and_junit(tmp_path):
    m = ModelReport(arch="alexnet", file="m.onnx", sha256_expected="a", sha256_actual="a")
    m.results.append(compare.StageResult("alexnet", "logits", "wasm", "pytorch", False, 1e-3, 0.5, 0.4, 3,
                                         {"case": 2, "input": "tone", "logit": "sad"}))
    m.results.append(compare.StageResult("alexnet", "top1", "wasm", "pytorch", True, 0, 0, 0, 3, {}))
    report = GateReport(release_dir="x", config={}, models=[m], wall_s=2.0, cases_checked=3)
    assert report.exit_code == 1
    write_json(report, tmp_path / "r.json")
    write_junit(report, tmp_path / "j.xml")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "failed" and data["models"][0]["results"][0]["min_passing_tolerance"] == 0.5
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("tests") == "3"
    m.error = "harness timed out"
    assert report.exit_code == 2


def test_localization_names_the_first_diverging_node(quick_release):
    """A runner that corrupts one intermediate tensor is caught at that node."""
    from parity.localize import first_divergence
    from parity.runners.onnxruntime_python import OnnxruntimePythonRunner

    class Corrupting(OnnxruntimePythonRunner):
        name = "corrupting"
        target = None

        def infer(self, waveforms):
            out = super().infer(waveforms)
            for name in out:
                if self.target and name == self.target:
                    out[name] = out[name] + 1.0
            return out

    import onnx

    path = quick_release["out"] / "voice_emotion_cnn.onnx"
    model = onnx.load(str(path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "convblock2" in n.name)
    bad = Corrupting()
    bad.target = conv.output[0]
    x = render(golden_specs()[0])
    found = first_divergence(path, x, OnnxruntimePythonRunner(), bad, relative_tol=1e-3)
    assert found["node"] == conv.name and found["op_type"] == "Conv"


def test_end_to_end_stages_report_case_numbers_of_the_whole_case_list():
    """Logits are judged on the normalised cases only; the reported case must still index all cases."""
    from parity.cases import CaseSpec
    from parity.gate import Cases, ModelCheck

    specs = [CaseSpec("noise", 1e-3, 0.0, 1, 1, False), CaseSpec("tone", 440.0, 0.0, 1, 2, True),
             CaseSpec("tone", 880.0, 0.0, 1, 3, True)]
    cases = Cases.from_specs(specs)
    check = ModelCheck.__new__(ModelCheck)  # only judge() is exercised
    check.arch, check.classes, check.logits_name, check.features_name = "m", ["a", "b"], "output", "logmel"
    check.tol = __import__("ser_export.tolerances", fromlist=["load"]).load()
    check.params = __import__("ser_export.contract", fromlist=["FrontendParams"]).FrontendParams()
    feats = np.zeros((3, 1, 128, 91), dtype=np.float32)
    base = {"output": np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], np.float32), "logmel": feats}
    other = {"output": np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 5.0]], np.float32), "logmel": feats}
    results = check.judge(cases, {"pytorch": base, "x": other}, feats.astype(np.float64))
    logits = next(r for r in results if r.stage == "logits" and r.runner == "x")
    assert not logits.passed and logits.where["case"] == 2 and logits.where["input"] == specs[2].label()
