"""The stream stages' rules (parity/stream_judge.py), the stream cases, the chunk loop's name checks and the
rendering of a stream report, on small synthetic outputs (no model)."""
import json
from pathlib import Path
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from parity import stream_judge as sj
from parity.report import GateReport, ModelReport, summary_table, write_json, write_junit
from parity.runners.base import Runner, RunnerError, StreamOutputs
from parity.runners.onnxruntime_python import check_metadata
from parity.runners.stream_loop import check_names, drive_stream
from parity.stream_cases import KINDS, draw_streams, render_stream
from parity.stream_check import StreamCheck, check_stream
from parity.stream_record import StreamRun
from ser_export import tolerances
from ser_export.stream_contract import read_contract
from tests.e2e import ROOT

TOL = tolerances.load()
WIRE = read_contract(ROOT / "parity" / "contracts" / "silero_vad.toml").to_wire()


def test_decisions_follow_the_threshold_and_the_hysteresis():
    p = np.array([0.1, 0.6, 0.4, 0.3, 0.6, 0.5])
    assert sj.decide(p, 0.5).tolist() == [False, True, False, False, True, True]
    assert sj.decide(p, 0.5, 0.15).tolist() == [False, True, True, False, True, True]
    assert sj.segments(sj.decide(p, 0.5, 0.15)) == [(1, 3), (4, 6)]
    assert sj.segments(np.zeros(4, bool)) == []


def _scores(n=60, on=(10, 30)):
    p = np.full(n, 0.05)
    p[on[0]:on[1]] = 0.95
    return p


def test_a_decision_may_differ_only_near_a_threshold_or_a_segment_boundary():
    ref = _scores()
    near = ref.copy()
    near[5] = 0.5  # the reference is far from the threshold here: this flip fails
    differ, failed = sj.decision_failures(near, ref, 0.5, 0.15, margin=1e-3, slack=1)
    assert differ[5] and failed[5]
    edge = ref.copy()
    edge[9] = 0.95  # one chunk early at the segment's start: within the slack
    differ, failed = sj.decision_failures(edge, ref, 0.5, 0.15, margin=1e-3, slack=1)
    assert differ[9] and not failed.any()
    ref_near = ref.copy()
    ref_near[45] = 0.4995  # the reference itself lies at the threshold: either answer is within tolerance
    ours = ref_near.copy()
    ours[45] = 0.5005
    differ, failed = sj.decision_failures(ours, ref_near, 0.5, 0.15, margin=1e-3, slack=1)
    assert differ[45] and not failed.any()


def test_segments_must_start_and_end_within_the_slack():
    ref = [{"p": _scores()[:, None]}]
    late = [{"p": _scores(on=(13, 30))[:, None]}]
    one = [{"p": _scores(on=(11, 30))[:, None]}]
    t = {"decision_margin": 1e-3, "segment_slack_chunks": 1}
    dec, seg = sj.judge_decisions("m", "r", "ref", late, ref, "p", 0.5, 0.0, ["s0"], t)
    assert not seg.passed and seg.max_abs == 3 and not dec.passed
    assert dec.where["first_failing_chunk"] == 12 and dec.metrics["differ"] == 3
    dec, seg = sj.judge_decisions("m", "r", "ref", one, ref, "p", 0.5, 0.0, ["s0"], t)
    assert seg.passed and dec.passed and dec.metrics["agreement"] < 1.0
    extra = _scores()
    extra[50:53] = 0.95  # a segment the reference does not have
    dec, seg = sj.judge_decisions("m", "r", "ref", [{"p": extra[:, None]}], ref, "p", 0.5, 0.0, ["s0"], t)
    assert not seg.passed and seg.max_abs == np.inf and seg.where["first_failing_segment"] == 1


def test_output_errors_name_the_stream_and_its_first_failing_chunk():
    ref = [{"p": np.zeros((8, 1, 1))}, {"p": np.zeros((5, 1, 1))}]
    ours = [{"p": np.zeros((8, 1))}, {"p": np.zeros((5, 1))}]  # (k, 1) and (k, 1, 1): the same values
    ours[1]["p"][3] = 0.2
    ours[1]["p"][4] = 0.5
    r = sj.judge_stream_outputs("m", "r", "ref", ours, ref, "p", ["a", "b"], 0.1)
    assert not r.passed and r.where == {"stream": 1, "input": "b", "worst_chunk": 4, "first_failing_chunk": 3}
    assert r.case_failed == [False, True] and r.max_abs == 0.5
    short = [{"p": np.zeros((7, 1))}, {"p": np.zeros((5, 1))}]
    assert sj.judge_stream_outputs("m", "r", "ref", short, ref, "p", ["a", "b"], 0.1).max_abs == np.inf
    fewer = sj.judge_stream_outputs("m", "r", "ref", ours[:1], ref, "p", ["a", "b"], 0.1)
    assert fewer.case_failed == [False, True] and fewer.max_abs == np.inf  # a stream the runner did not give
    nan = [{"p": np.full((8, 1), np.nan)}, {"p": np.zeros((5, 1))}]
    assert not sj.judge_stream_outputs("m", "r", "ref", nan, ref, "p", ["a", "b"], 0.1).passed


def test_drift_compares_the_first_and_last_tenth_of_the_long_stream():
    ref = {"p": np.zeros((100, 1))}
    ours = {"p": np.linspace(0, 1e-3, 100)[:, None]}
    r = sj.judge_drift("m", "r", "ref", ours, ref, "p", "long", 0, 2e-3, 3.2)
    assert r.passed and r.metrics["first_share"] == pytest.approx(1e-3 * 9 / 99)
    assert r.metrics["last_share"] == pytest.approx(1e-3) and r.metrics["growth"] == pytest.approx(11.0)
    assert not sj.judge_drift("m", "r", "ref", ours, ref, "p", "long", 0, 5e-4, 3.2).passed


def _outputs(name, values, states=None):
    return StreamOutputs(name, [{"p": v} for v in values], states or [{} for _ in values], {}, 0.1)


def _run(outputs, **kw):
    return StreamRun("m", ["a"], [1000], 16000, 512, "ref", outputs, ["p"], **kw)


def test_the_state_after_the_last_chunk_is_compared_between_runtimes_that_report_it():
    p = [np.zeros((3, 1))]
    state = [{"s": np.zeros((2, 1, 4), np.float32)}]
    moved = [{"s": np.full((2, 1, 4), 0.01, np.float32)}]
    outputs = {"ref": _outputs("ref", p), "a": _outputs("a", p, state), "b": _outputs("b", p, moved)}
    results = sj.judge_stream_run(_run(outputs, states=["s"]), TOL)
    r = next(r for r in results if r.stage == "stream_state[s]")
    assert r.runner == "b" and r.against == "a" and not r.passed and r.max_abs == pytest.approx(0.01)
    outputs = {"ref": _outputs("ref", p), "a": _outputs("a", p, state)}
    results = sj.judge_stream_run(_run(outputs, states=["s"]), TOL)
    r = next(r for r in results if r.stage == "stream_state")
    assert not r.applicable and "the reference keeps its own state" in r.detail


def test_the_whole_sequence_form_must_equal_the_streamed_output():
    p = [np.linspace(0, 1, 6)[:, None]]
    outputs = {"ref": _outputs("ref", p), "onnxruntime-python": _outputs("onnxruntime-python", p)}
    same = _run(outputs, sequence={"onnxruntime-python": [{"q": p[0].reshape(-1)}]}, sequence_outputs=["q"])
    r = next(r for r in sj.judge_stream_run(same, TOL) if r.stage == "sequence[q]")
    assert r.passed and r.max_abs == 0
    off = _run(outputs, sequence={"onnxruntime-python": [{"q": p[0].reshape(-1) + 1e-4}]}, sequence_outputs=["q"])
    assert not next(r for r in sj.judge_stream_run(off, TOL) if r.stage == "sequence[q]").passed


def test_a_stream_a_runner_did_not_give_fails_every_stage_never_dropped():
    """Two streams drawn, runner "a" gives one: each stage judges both, the missing one an infinite error."""
    two = [_scores()[:, None], _scores()[:, None]]
    state = [{"s": np.zeros((2, 1, 4), np.float32)}] * 2
    outputs = {"ref": _outputs("ref", two), "b": _outputs("b", two, state), "a": _outputs("a", two[:1], state[:1])}
    run = StreamRun("m", ["s0", "long"], [30720, 30720], 16000, 512, "ref", outputs, ["p"], states=["s"],
                    decisions={"p": (0.5, 0.0)}, long_index=1)
    mine = {r.stage: r for r in sj.judge_stream_run(run, TOL) if r.runner == "a"}
    for stage in ("stream[p]", "decisions[p]", "segments[p]", "stream_drift[p]", "stream_state[s]"):
        r = mine[stage]
        assert not r.passed and r.case_failed[-1] and r.case_errors[-1] == np.inf and r.where["stream"] == 1, stage
    assert mine["decisions[p]"].case_failed == [False, True] and mine["stream_state[s]"].n_cases == 2
    cls = {"scores_max_abs": 0.1, "decision_agreement_min": 0.9}
    values = [{"p": v} for v in two]
    _, dec = sj.judge_vs_parent_stream("m", "r", "parent", values[:1], values, "p", (0.5, 0.0), ["s0", "s1"], cls, "c")
    assert not dec.passed and dec.n_cases == 2 and dec.case_failed == [False, True]


def test_a_variant_stream_below_the_class_agreement_is_marked_failed():
    cls = {"scores_max_abs": 1.0, "decision_agreement_min": 0.95}
    theirs = [{"p": _scores()[:, None]}, {"p": _scores()[:, None]}]
    ours = [{"p": _scores()[:, None]}, {"p": _scores(on=(10, 40))[:, None]}]  # 10 of 60 chunks differ
    _, dec = sj.judge_vs_parent_stream("m", "r", "parent", ours, theirs, "p", (0.5, 0.0), ["s0", "s1"], cls, "c")
    assert not dec.passed and dec.case_failed == [False, True] and dec.where["first_differing_chunk"] == 30


def test_stream_cases_are_deterministic_of_every_kind_and_never_a_whole_number_of_chunks():
    specs = draw_streams(10, 7, 16000, 512, long_seconds=6.0)
    assert specs == draw_streams(10, 7, 16000, 512, long_seconds=6.0)
    assert specs != draw_streams(10, 8, 16000, 512, long_seconds=6.0)
    assert {s.kind for s in specs} == set(KINDS) | {"long"} and specs[-1].kind == "long"
    assert all(s.n_samples % 512 for s in specs)
    for s in specs[:5] + specs[-1:]:
        y = render_stream(s)
        assert y.dtype == np.float32 and y.shape == (s.n_samples,) and np.isfinite(y).all()
        assert np.array_equal(y, render_stream(s))
        below = 50.0 if s.kind == "silence" else 0.0
        assert np.abs(y).max() == pytest.approx(10 ** ((s.level_db - below) / 20), rel=1e-3)
        if s.kind == "silence":
            assert not y[:s.n_samples // 2].any()
    assert render_stream(specs[0].prefix(700)).shape == (700,)


def test_the_chunk_loop_names_what_the_model_lacks():
    with pytest.raises(RunnerError, match="m.onnx has no input 'sr'"):
        check_names("r", "m.onnx", WIRE, ["input", "state"], ["output", "stateN"])
    with pytest.raises(RunnerError, match="has input 'extra', which the contract does not declare"):
        check_names("r", "m.onnx", WIRE, ["input", "state", "sr", "extra"], ["output", "stateN"])
    with pytest.raises(RunnerError, match="has no output 'stateN'"):
        check_names("r", "m.onnx", WIRE, ["input", "state", "sr"], ["output"])


#: onnxruntime's metadata of silero_vad.onnx's inputs (name, type, shape).
SILERO_INPUTS = [("input", "tensor(float)", [None, None]), ("state", "tensor(float)", [2, None, 128]),
                 ("sr", "tensor(int64)", [])]


def test_the_protocol_dtypes_and_fixed_dims_are_checked_against_the_models_inputs():
    check_metadata("r", "m.onnx", WIRE, SILERO_INPUTS)  # the Silero contract fits
    check_metadata("r", "m.onnx", WIRE, [("input", "tensor(float)", ["batch", 576])] + SILERO_INPUTS[1:])
    wrong = [
        (["constants"], [{"name": "sr", "dtype": "int32", "dims": [], "value": 16000}],
         "r: m.onnx: protocol.constants[0].dtype is int32, the model's input 'sr' is int64"),
        (["states"], [dict(WIRE["states"][0], dims=[2, 1, 64])],
         "r: m.onnx: protocol.states[0] feeds 'state' with dims [2, 1, 64], the model's input is [2, ?, 128]"),
        (["signal"], dict(WIRE["signal"], dtype="float16"),
         "r: m.onnx: protocol.signal.dtype is float16, the model's input 'input' is float32")]
    for (key,), value, line in wrong:
        with pytest.raises(RunnerError) as e:
            check_metadata("r", "m.onnx", dict(WIRE, **{key: value}), SILERO_INPUTS)
        assert str(e.value) == line
    with pytest.raises(RunnerError, match=r"protocol.signal feeds 'input' with dims \[1, 576\], the model's input is "
                                          r"\[1, 512\]$"):
        check_metadata("r", "m.onnx", WIRE, [("input", "tensor(float)", [1, 512])] + SILERO_INPUTS[1:])


def test_onnxruntime_python_checks_the_protocol_against_the_session_in_one_line(tmp_path):
    import onnx

    from parity.runners.onnxruntime_python import OnnxruntimePythonRunner

    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 512])
    state = onnx.helper.make_tensor_value_info("state", onnx.TensorProto.FLOAT, [2, 1, 128])
    sr = onnx.helper.make_tensor_value_info("sr", onnx.TensorProto.INT64, [])
    outs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("output", "stateN")]
    graph = onnx.helper.make_graph([onnx.helper.make_node("ReduceMax", ["input"], ["output"], keepdims=1),
                                    onnx.helper.make_node("Identity", ["state"], ["stateN"]),
                                    onnx.helper.make_node("Cast", ["sr"], ["unused"], to=1)],
                                   "g", [x, state, sr], outs)
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    with pytest.raises(RunnerError) as e:
        OnnxruntimePythonRunner().run_stream(tmp_path / "m.onnx", WIRE, [np.zeros(1000, np.float32)])
    assert str(e.value) == ("onnxruntime-python: m.onnx: protocol.signal feeds 'input' with dims [1, 576], the model's "
                            "input is [1, 512]")


def test_onnxruntime_pythons_multi_line_errors_become_their_first_line(monkeypatch, tmp_path):
    from parity.runners import onnxruntime_python

    def load(path, threads):
        raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model failed\n  at node 7\n")

    monkeypatch.setattr(onnxruntime_python, "cpu_session", load)
    runner = onnxruntime_python.OnnxruntimePythonRunner()
    for call in (lambda: runner.run_stream(tmp_path / "m.onnx", WIRE, []),
                 lambda: runner.run_sequence(tmp_path / "m.onnx", WIRE, "input", ["output"], []),
                 lambda: runner.activate(tmp_path / "m.onnx", ["output"])):
        with pytest.raises(RunnerError) as e:
            call()
        assert str(e.value) == (f"onnxruntime-python: cannot load {tmp_path / 'm.onnx'}: [ONNXRuntimeError] : 10 : "
                                f"INVALID_GRAPH : Load model failed")


def test_the_chunk_loop_feeds_windows_and_carries_the_state():
    seen = []

    def step(feed):
        seen.append((feed["input"].copy(), feed["state"].copy(), int(feed["sr"])))
        return {"output": feed["input"][:, -1:], "stateN": feed["state"] + 1}

    y = np.arange(1, 1100, dtype=np.float32)
    out, final = drive_stream(step, WIRE, y)
    assert len(seen) == 3 and all(s[0].shape == (1, 576) for s in seen) and seen[0][2] == 16000
    assert np.all(seen[0][0][0, :64] == 0) and np.array_equal(seen[1][0][0, :64], y[448:512])
    assert [float(s[1].mean()) for s in seen] == [0.0, 1.0, 2.0] and float(final["stateN"].mean()) == 3.0
    assert out["output"].shape == (3, 1, 1) and out["output"][2, 0, 0] == 0.0  # the zero-padded last chunk


class _NoStream(Runner):
    name = "js-like"

    def infer(self, waveforms):
        raise AssertionError

    def info(self):
        return {}


def test_a_runner_that_cannot_run_streams_is_not_checked_and_says_so(tmp_path):
    contract = read_contract(ROOT / "parity" / "contracts" / "silero_vad.toml")
    mr = ModelReport("silero-vad", "m.onnx")
    run = check_stream(tmp_path / "m.onnx", contract, {"js-like": _NoStream()}, "js-like", TOL,
                       StreamCheck(streams=1, long_seconds=None), mr)
    assert run is None and mr.error == "js-like: cannot run streams yet (no stream capability): not checked"
    assert mr.streaming  # its table is the stream table, whatever ran
    report = GateReport(str(tmp_path / "m.onnx"), {}, models=[mr])
    assert report.exit_code == 2


def test_a_stream_report_renders_as_json_junit_and_text(tmp_path):
    ref = [{"p": _scores()[:, None]}]
    outputs = {"ref": _outputs("ref", ref and [ref[0]["p"]]), "a": _outputs("a", [_scores(on=(13, 30))[:, None]])}
    mr = ModelReport("m", "m.onnx", results=sj.judge_stream_run(_run(outputs, decisions={"p": (0.5, 0.0)}), TOL))
    report = GateReport(str(tmp_path / "m.onnx"), {}, models=[mr])
    assert report.exit_code == 1 and "m/stream[p]/a vs ref" in report.verdict_line()
    write_json(report, tmp_path / "r.json")
    write_junit(report, tmp_path / "r.xml")
    stages = {r["stage"] for r in json.loads((tmp_path / "r.json").read_text())["models"][0]["results"]}
    assert {"stream[p]", "decisions[p]", "segments[p]"} <= stages
    failures = [c.get("name") for c in ET.parse(tmp_path / "r.xml").iter("testcase") if c.find("failure") is not None]
    assert "m/stream[p]/a" in failures
    mr.streaming = True
    mr.timings["runners"] = {"a": {"seconds": 0.08, "streams": 1, "streams_per_s": 12.5}}
    table = summary_table(report)
    assert table[0] == "m.onnx (m, streams):" and "streams/s" in table[1]
    row = next(line.split() for line in table if line.split()[:1] == ["a"])
    assert row[1] == "p" and float(row[2]) > 0 and row[-2] == "0.9500" and float(row[-1]) == 12.5, row


def test_a_streaming_report_without_stream_results_keeps_the_stream_table():
    """The table is chosen by the contract's kind (ModelReport.streaming), not by which stages ran."""
    mr = ModelReport("vad", "vad.onnx", results=[sj.not_applicable("vad", "stream", "r", "not a target")],
                     streaming=True)
    table = summary_table(GateReport("r", {}, models=[mr]))
    assert table[0] == "vad.onnx (vad, streams):" and not any("logmel" in line for line in table)


def test_a_stream_class_can_be_overridden_like_any_class():
    """A saved run's tolerances are laid over the shipped ones when it is judged again (--rejudge): the stream
    classes' bounds are class bounds too."""
    out = tolerances.apply_overrides({"classes": {"fp16_stream": {"scores_max_abs": 2.5}}})
    assert out["classes"]["fp16_stream"] == {"scores_max_abs": 2.5, "decision_agreement_min": 0.995}
    assert tolerances.apply_overrides(tolerances.load()) == tolerances.load()
    with pytest.raises(ValueError, match="decision_agreement_min must be a finite number >= 0 and <= 1"):
        tolerances.apply_overrides({"classes": {"fp16_stream": {"decision_agreement_min": 2}}})


def test_a_self_driven_reference_without_its_declared_reset_is_refused_in_one_line():
    from parity.runners.torch_module import TorchModuleRunner
    from ser_export.stream_contract import Reference
    from tests.parity.stream_models import SelfDriven

    wire = {"signal": {"name": "input", "chunk": 160, "context": 0, "dtype": "float32"}, "states": [],
            "constants": [], "outputs": ["p"]}
    streams = [np.ones(320, np.float32), np.ones(160, np.float32)]
    runner = TorchModuleRunner("tests.parity.stream_models:SelfDriven", reference=Reference(drive="self"))
    got = runner.run_stream(Path("m.onnx"), wire, streams)
    assert got.outputs[1]["p"][0] == got.outputs[0]["p"][0]  # reset before each stream: no carried state
    runner = TorchModuleRunner("tests.parity.stream_models:SelfDriven", reference=Reference(drive="self"))
    runner.model = SelfDriven(reset=False)
    with pytest.raises(RunnerError) as e:
        runner.run_stream(Path("m.onnx"), wire, streams)
    assert str(e.value) == ("pytorch: --torch tests.parity.stream_models:SelfDriven: has no method 'reset_states' "
                            "(reference.reset; reset = \"\" for a module that starts every call afresh)")
    runner = TorchModuleRunner("tests.parity.stream_models:SelfDriven", reference=Reference(drive="self", reset=""))
    runner.model = SelfDriven(reset=False)
    assert runner.run_stream(Path("m.onnx"), wire, streams[:1]).outputs[0]["p"].shape == (2, 1, 1)
