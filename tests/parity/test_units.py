"""Unit tests of the parity modules (no Node needed)."""
import dataclasses
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, note, settings, strategies as st

from parity import judge
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
    above, all_bins = judge.judge_features("m", "r", "ref", ours, ref, ["c0", "c1"], tol, -80.0, "logmel")
    assert not above.passed and above.where == {"case": 0, "input": "c0", "mel_band": 2, "frame": 3,
                                                "reference": -10.0}
    assert above.case_failed == [True, False] and all_bins.case_errors == pytest.approx([0.002, 0.01])
    assert all_bins.passed and all_bins.max_abs == pytest.approx(0.01)
    assert above.min_passing_tolerance == pytest.approx(0.002)


def test_nan_output_is_the_worst_error():
    ref = np.zeros((1, 3))
    ours = np.array([[0.0, np.nan, 0.0]])
    r = judge.judge_logits("m", "r", "b", ours, ref, ["c"], ["a", "b", "c"], 1e-3)
    assert not r.passed and r.where["logit"] == "b" and r.max_abs == float("inf")


def test_top1_exempts_ties_within_tolerance():
    ref = np.array([[1.0, 1.0005, 0.0], [2.0, 0.0, 0.0]])
    ours = np.array([[1.0005, 1.0, 0.0], [0.0, 2.0, 0.0]])
    r = judge.judge_top1("m", "r", "b", ours, ref, ["tie", "clear"], ["a", "b", "c"], 1e-3)
    assert not r.passed and r.where["case"] == 1 and r.where["expected"] == "a" and r.where["got"] == "b"
    assert r.metrics["ties_exempt"] == 1 and r.metrics["agreement"] == 0.0 and r.case_failed == [False, True]


def test_reports_are_valid_json_and_junit(tmp_path):
    m = ModelReport(arch="alexnet", file="m.onnx", sha256_expected="a", sha256_actual="a")
    m.results.append(judge.StageResult("alexnet", "logits", "wasm", "pytorch", False, 1e-3, 0.5, 0.4, 3,
                                       {"case": 2, "input": "tone", "logit": "sad"}))
    m.results.append(judge.StageResult("alexnet", "top1", "wasm", "pytorch", True, 0, 0, 0, 3, {}))
    report = GateReport(release_dir="x", config={}, models=[m], wall_s=2.0, cases_checked=3)
    assert report.exit_code == 1
    write_json(report, tmp_path / "r.json")
    write_junit(report, tmp_path / "j.xml")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verdict"] == "failed" and data["models"][0]["results"][0]["min_passing_tolerance"] == 0.5
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1" and suite.get("tests") == "3"
    m.error = "harness timed out"  # could not check something else as well: a found mismatch still decides
    assert report.exit_code == 1 and report.to_dict()["verdict"] == "failed"
    m.results[0] = dataclasses.replace(m.results[0], passed=True)
    assert report.exit_code == 2


def _model(name, *, failed=False, error=None, checksum_ok=True):
    m = ModelReport(arch=name, file=f"{name}.onnx", sha256_expected="a", sha256_actual="a" if checksum_ok else "b",
                    error=error)
    m.results.append(judge.StageResult(name, "logits", "wasm", "pytorch", not failed, 1e-3, 0.5, 0.4, 3, {}))
    return m


@pytest.mark.parametrize("models, error, code", [
    ([_model("a")], None, 0),
    ([_model("a", failed=True)], None, 1),
    ([_model("a", error="timed out")], None, 2),
    ([_model("a")], "manifest unreadable", 2),
    ([_model("a", failed=True), _model("a.fp16", error="names another parent")], None, 1),
    ([_model("a", error="timed out"), _model("b", failed=True)], None, 1),
    ([_model("a", checksum_ok=False), _model("b", error="timed out")], None, 1),
    ([_model("a", failed=True)], "the VAD file cannot be read", 1),
])
def test_a_mismatch_anywhere_is_exit_1_whatever_could_not_be_checked(models, error, code):
    report = GateReport(release_dir="r", config={}, models=models, error=error)
    assert report.exit_code == code
    line = report.verdict_line()
    assert (line is None) == (code == 0)
    if code == 1:  # the line names the mismatch, and says what else could not be checked
        assert "r/a" in line or "r/b" in line
        assert ("not checked" in line) == bool(report.errors()), line
    if code == 2:
        assert line.startswith(report.errors()[0])


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


def _run(outputs, normalised, features=None, reference=None, classes=("a", "b")):
    from parity.record import ModelRun, Subject

    n = len(normalised)
    return ModelRun(Subject("m", "m.onnx", "output", "logmel" if features is not None else None, tuple(classes)),
                    [f"case{i}" for i in range(n)], np.asarray(normalised, bool), outputs, reference=reference,
                    baseline="pytorch")


def test_end_to_end_stages_report_case_numbers_of_the_whole_case_list():
    """Logits are judged on the normalised cases only; the reported case must still index all cases."""
    feats = np.zeros((3, 1, 128, 91), dtype=np.float32)
    base = {"output": np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], np.float32), "logmel": feats}
    other = {"output": np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 5.0]], np.float32), "logmel": feats}
    run = _run({"pytorch": base, "x": other}, [False, True, True], feats, feats.astype(np.float64))
    results = judge.judge_model(run)
    logits = next(r for r in results if r.stage == "logits" and r.runner == "x")
    assert not logits.passed and logits.where["case"] == 2 and logits.where["input"] == "case2"
    assert logits.cases == [1, 2] and logits.case_failed == [False, True]
    assert judge.failing_cases(results, 3).tolist() == [False, False, True]


@pytest.mark.parametrize("stage", ["probabilities", "logmel_vs_pytorch[above_floor]"])
def test_every_per_case_stage_marks_its_failing_cases(stage):
    """A failure seen only by the probabilities, or only between runtimes, still names its case
    (so it is shrunk and saved like any other)."""
    rng = np.random.default_rng(0)
    feats = rng.uniform(-30, 0, (4, 1, 8, 5)).astype(np.float32)
    logits = rng.normal(size=(4, 2)).astype(np.float32) * 10
    other_logits, other_feats = logits.copy(), feats.copy()
    if stage == "probabilities":  # the logit tolerance passes, the probability one does not
        tol = judge.tolerances_mod.load()
        tol["defaults"]["logits"]["max_abs"] = 1.0
        other_logits[3] = [0.0, 0.5]
        logits[3] = [0.0, 0.0]
        reference = None
    else:  # both agree with no reference; they differ from each other
        tol = None
        other_feats[1, 0, 2, 2] += 0.5
        reference = None
    run = _run({"pytorch": {"output": logits, "logmel": feats}, "x": {"output": other_logits, "logmel": other_feats}},
               [True] * 4, feats, reference)
    results = judge.judge_model(run, tol)
    failed = [r for r in results if not r.passed]
    assert {r.stage.split("[")[0] for r in failed} == {stage.split("[")[0]}, [r.message() for r in failed]
    assert judge.failing_cases(results, 4).tolist() == [False, False, False, True] if stage == "probabilities" \
        else judge.failing_cases(results, 4).tolist() == [False, True, False, False]


@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=12),
       st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=12),
       st.floats(0, 5))
def test_top1_tie_rule_matches_its_definition(ours, ref, tol):
    """A case fails exactly when the labels differ and the reference's best two logits are >= tol apart."""
    n = min(len(ours), len(ref))
    ours, ref = np.array(ours[:n]), np.array(ref[:n])
    r = judge.judge_top1("m", "r", "b", ours, ref, [str(i) for i in range(n)], ["a", "b", "c"], tol)
    expected = []
    for o, f in zip(ours, ref):
        top2 = sorted(f)[-2:]
        expected.append(bool(o.argmax() != f.argmax() and top2[1] - top2[0] >= tol))
    note(f"ours {ours.tolist()} ref {ref.tolist()} tol {tol}: {r.case_failed} vs {expected}")
    assert r.case_failed == expected and r.passed == (not any(expected))
    assert r.max_abs == sum(expected)


@settings(max_examples=100)
@given(st.integers(1, 5), st.integers(1, 4), st.floats(0, 1e-2), st.integers(0, 2**31 - 1))
def test_per_case_errors_agree_with_the_worst_error(n, k, tol, seed):
    """``max_abs`` is the largest per-case error, its case is the one named, and a case fails iff its error > tol."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, k))
    ours = ref + rng.normal(scale=5e-3, size=(n, k))
    r = judge.judge_logits("m", "r", "b", ours, ref, [f"c{i}" for i in range(n)], None, tol)
    note(f"{r.message()} {r.case_errors}")
    assert r.max_abs == pytest.approx(max(r.case_errors))
    assert r.where["case"] == int(np.argmax(r.case_errors))
    assert r.case_failed == [e > tol for e in r.case_errors] and r.passed == (not any(r.case_failed))


def test_json_report_parses_whatever_the_values_and_messages(tmp_path):
    """NaN and infinities become null with a flag; the words "NaN" and "Infinity" in messages stay as written."""
    m = ModelReport(arch="alexnet", file="m.onnx", sha256_expected="a", sha256_actual="a",
                    error='runner said: "NaN" and Infinity, -Infinity; \x00 control')
    m.results.append(judge.StageResult("alexnet", "logits", "wasm", "pytorch", False, 1e-3, float("inf"), float("nan"),
                                       3, {"case": 2, "input": "NaN-shaped input Infinity"},
                                       detail="NaN everywhere", metrics={"x": float("-inf")},
                                       case_errors=[float("nan"), 1.0, float("inf")]))
    report = GateReport(release_dir="x", config={"note": "Infinity"}, models=[m], wall_s=2.0, cases_checked=3)
    write_json(report, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    r = data["models"][0]["results"][0]
    assert r["max_abs"] is None and r["p99"] is None and r["case_errors"] == [None, 1.0, None]
    assert r["detail"] == "NaN everywhere" and r["where"]["input"] == "NaN-shaped input Infinity"
    assert data["config"]["note"] == "Infinity" and data["models"][0]["error"].startswith('runner said: "NaN"')
    assert data["non_finite"] == {"models.0.results.0.max_abs": "inf", "models.0.results.0.p99": "nan",
                                  "models.0.results.0.min_passing_tolerance": "inf",
                                  "models.0.results.0.metrics.x": "-inf",
                                  "models.0.results.0.case_errors.0": "nan", "models.0.results.0.case_errors.2": "inf"}
    write_junit(report, tmp_path / "j.xml")
    ET.parse(tmp_path / "j.xml")  # control characters are escaped, the XML parses


def test_not_applicable_stages_never_fail():
    r = judge.not_applicable("m", "golden_logits", "x", "the contract declares no golden logits")
    m = ModelReport(arch="m", file="m.onnx", results=[r])
    assert not m.failures and r.message().startswith("n/a:")


class _Payload:
    """Something plain pickle would rebuild (and could run code for); weights_only refuses it."""

    def __reduce__(self):
        return (print, ("pickle ran code",))


def test_user_weights_are_loaded_safely(tmp_path):
    import torch

    from parity.runners.base import RunnerError
    from parity.runners.torch_module import load_weights

    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert load_weights(good)["w"].tolist() == [1.0, 1.0]
    bad = tmp_path / "bad.pt"
    torch.save({"w": _Payload()}, bad)
    with pytest.raises(RunnerError, match="not a weights file torch loads safely"):
        load_weights(bad)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(RunnerError, match="not a state dict"):
        load_weights(tmp_path / "list.pt")


def _post_record(n=6, frames=66, seed=0):
    from parity.record import PostprocessRecord

    rng = np.random.default_rng(seed)
    py_frames = rng.uniform(0, 1, (n, frames)).astype(np.float32)
    py_frames[:, :] = np.where(np.abs(py_frames - 0.5) < 0.01, 0.6, py_frames)  # no frame near the threshold
    probs = rng.dirichlet(np.ones(7), n)
    ood = rng.uniform(0, 10, n)
    ood = np.where(np.abs(ood - 5.0) < 0.5, 7.0, ood)
    speech = (py_frames >= 0.5).mean(axis=1) >= 0.05
    return PostprocessRecord(js_frames=py_frames.copy(), py_frames=py_frames, js_probabilities=probs.copy(),
                             py_probabilities=probs, js_ood=ood.copy(), py_ood=ood, js_speech=speech.copy(),
                             py_speech=speech, js_uncertain=ood > 5.0, py_uncertain=ood > 5.0, vad_threshold=0.5,
                             ood_threshold=5.0)


TOL_POST = {"speech_probability": 1e-4, "calibrated_probabilities": 1e-9, "ood_score_relative": 1e-9}
TOL_STREAM = {"decision_margin": 1e-4, "segment_slack_chunks": 1}  # the stream stages' decision rule


def test_postprocessing_agreement_passes_and_each_kind_of_disagreement_fails():
    labels = [f"c{i}" for i in range(6)]
    assert all(r.passed for r in judge.judge_postprocessing("m", "js", _post_record(), labels, TOL_POST, TOL_STREAM))
    for field, change, stage in (
            ("js_frames", lambda r: r.js_frames.__setitem__((2, 5), r.js_frames[2, 5] + 1e-3), "vad:stream[output]"),
            ("js_speech", lambda r: r.js_speech.__setitem__(3, not r.js_speech[3]), "speech"),
            ("js_probabilities", lambda r: r.js_probabilities.__setitem__((1, 0), r.js_probabilities[1, 0] + 1e-6),
             "calibrated"),
            ("js_ood", lambda r: r.js_ood.__setitem__(4, r.js_ood[4] * 1.001), "ood"),
            ("js_uncertain", lambda r: r.js_uncertain.__setitem__(0, not r.js_uncertain[0]), "ood")):
        rec = _post_record()
        change(rec)
        failed = [r for r in judge.judge_postprocessing("m", "js", rec, labels, TOL_POST, TOL_STREAM) if not r.passed]
        assert [r.stage for r in failed] == [f"postprocessing[{stage}]"], field
        assert any(failed[0].case_failed), field


def test_a_decision_may_flip_only_next_to_its_threshold():
    rec = _post_record()
    rec.py_frames[1, :] = 0.0
    rec.py_frames[1, :3] = 0.9             # a speech segment of 4 frames in Python, 3 in JS (4 of 66 frames are at
    rec.py_frames[1, 3] = 0.50004          # least 5 %, 3 are not): its last frame is within 1e-4 of the threshold,
    rec.js_frames[1, :] = rec.py_frames[1, :]  # on one side in Python and on the other in JS, which the decision
    rec.js_frames[1, 3] = 0.49997          # rule excuses (and the segment's end moves by one chunk)
    rec.js_speech[1], rec.py_speech[1] = False, True
    rec.py_ood[2] = rec.js_ood[2] = 5.0 + 1e-10  # within the relative tolerance of the OOD threshold
    rec.py_uncertain[2], rec.js_uncertain[2] = True, False
    assert all(r.passed for r in judge.judge_postprocessing("m", "js", rec, [str(i) for i in range(6)], TOL_POST,
                                                           TOL_STREAM))


def test_a_window_verdict_may_not_flip_where_its_frames_decide_alike():
    """The speech verdict is made from the frames' decisions: frames that decide alike (even near the threshold)
    leave no room for another verdict."""
    rec = _post_record()
    rec.py_frames[1, :] = 0.0
    rec.py_frames[1, 0] = rec.js_frames[1, 0] = 0.50004
    rec.js_frames[1, 1:] = 0.0
    rec.js_speech[1], rec.py_speech[1] = True, False
    failed = [r for r in judge.judge_postprocessing("m", "js", rec, [str(i) for i in range(6)], TOL_POST, TOL_STREAM)
              if not r.passed]
    assert [r.stage for r in failed] == ["postprocessing[speech]"] and failed[0].case_failed[1]
