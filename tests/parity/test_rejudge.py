"""A run saved with ``verify --save-outputs`` is judged again under other tolerances without running anything."""
import json

import numpy as np
import pytest

from parity import judge, record
from parity.rejudge import rejudge
from ser_export import tolerances
from tests.e2e import ROOT, run_cli


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """The committed release through PyTorch and onnxruntime-python, outputs saved."""
    out = tmp_path_factory.mktemp("saved")
    proc = run_cli("verify", str(ROOT / "saved_models"), "--runtimes", "pytorch,onnxruntime-python",
                   "--examples", "4", "--no-shrink", "--report", str(out / "live.json"),
                   "--save-outputs", str(out / "outputs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _no_runtime(monkeypatch):
    """Every way of running a model raises."""
    import onnxruntime
    import torch

    from parity.runners import base

    def refuse(*_a, **_k):
        raise AssertionError("a runtime ran during --rejudge")

    for name in ("run", "infer", "activate"):
        monkeypatch.setattr(base.Runner, name, refuse)
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)
    import parity.config
    import parity.foreign
    import parity.gate

    for module in (parity.config, parity.gate, parity.foreign):  # every module that binds the runner factory
        monkeypatch.setattr(module, "make_runners", refuse)


def test_rejudge_gives_the_live_verdict_and_figures(saved_run, monkeypatch):
    _no_runtime(monkeypatch)
    report = rejudge(saved_run / "outputs")
    live = json.loads((saved_run / "live.json").read_text())
    assert report.exit_code == 0
    for m, lm in zip(report.models, live["models"]):
        assert {r.name: r.max_abs for r in m.results} == {r["model"] + "/" + r["stage"] + "/" + r["runner"]:
                                                          r["max_abs"] for r in lm["results"]}
        assert m.sha256_actual == lm["checksum"]["actual"]


def test_rejudge_under_tighter_tolerances_fails_without_running(saved_run, monkeypatch, tmp_path):
    _no_runtime(monkeypatch)
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"defaults": {"logits": {"max_abs": 1e-9}}}))
    report = rejudge(saved_run / "outputs", tolerances.load_overrides(tight))
    assert report.exit_code == 1
    failed = {r.stage for m in report.models for r in m.failures}
    assert "logits" in failed and "golden_logits" in failed
    assert all(r.tolerance == 1e-9 for m in report.models for r in m.failures if r.stage == "logits")


def test_rejudge_cli_exit_codes(saved_run, tmp_path):
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"defaults": {"logmel_db": {"above_floor": 0.0}}}))
    proc = run_cli("verify", "--rejudge", str(saved_run / "outputs"), "--tolerances", str(tight))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "logmel_vs_librosa[above_floor]" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("verify", "--rejudge", str(saved_run / "outputs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("text, message", [
    ('{"defaults": {"logit": {"max_abs": 1}}}', "defaults.logit is not a stage"),
    ('{"defaults": {"logits": {"maxabs": 1}}}', "defaults.logits.maxabs is not a tolerance of logits"),
    ('{"defaults": {"logits": {"max_abs": "1"}}}', "defaults.logits.max_abs must be a finite number"),
    ('{"defaults": {"logits": {"max_abs": -1}}}', "must be a finite number >= 0"),
    ('{"runners": {"x": {"top1": {}}}}', "runners.x.top1 is not a stage"),
    ('{"default": {}}', "unknown top-level field 'default'"),
    ('[1]', "must hold a JSON object"),
    ('{"defaults": ', "cannot read tolerances"),
])
def test_a_bad_tolerance_file_is_one_line_naming_the_field(tmp_path, text, message):
    path = tmp_path / "tol.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        tolerances.load_overrides(path)
    if "logit is not" not in message:  # the CLI's one line: checked once (a CLI start costs seconds)
        return
    proc = run_cli("verify", "--rejudge", str(tmp_path), "--tolerances", str(path))
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_overrides_keep_everything_else():
    base = tolerances.load()
    path_data = {"runners": {"chromium-webgl": {"logits": {"max_abs": 0.01}}}}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.json"
        p.write_text(json.dumps(path_data))
        merged = tolerances.load_overrides(p)
    assert merged["defaults"] == base["defaults"]
    assert tolerances.for_stage("logits", "chromium-webgl", merged)["max_abs"] == 0.01
    assert tolerances.for_stage("logits", "chromium-wasm", merged) == base["defaults"]["logits"]


@pytest.mark.parametrize("damage", ["no index", "bad json", "truncated npz", "wrong case count", "bad name"])
def test_a_damaged_saved_run_cannot_be_judged(saved_run, tmp_path, damage):
    import shutil

    folder = tmp_path / "o"
    shutil.copytree(saved_run / "outputs", folder)
    if damage == "no index":
        (folder / "index.json").unlink()
    elif damage == "bad json":
        (folder / "alexnet.json").write_text("{")
    elif damage == "truncated npz":
        data = (folder / "alexnet.npz").read_bytes()
        (folder / "alexnet.npz").write_bytes(data[: len(data) // 2])
    elif damage == "wrong case count":
        run = record.ModelRun.load(folder, "alexnet")
        run.case_labels = run.case_labels[:-1]
        run.save(folder, "alexnet")
    elif damage == "bad name":
        index = json.loads((folder / "index.json").read_text())
        index["models"] = ["../alexnet"]
        (folder / "index.json").write_text(json.dumps(index))
    report = rejudge(folder)
    assert report.exit_code == 2 and report.verdict_line(), report.to_dict()
    if damage != "truncated npz":  # the CLI's one line: checked once
        return
    proc = run_cli("verify", "--rejudge", str(folder))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_a_run_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    run = record.ModelRun(record.Subject("m", "m.onnx", "out", "f", ("a", "b")), ["c0", "c1"], np.array([True, False]),
                          {"pytorch": {"out": rng.normal(size=(2, 2)), "f": rng.normal(size=(2, 1, 3, 4))}},
                          reference=rng.normal(size=(2, 1, 3, 4)), baseline="pytorch")
    run.save(tmp_path, "m")
    again = record.ModelRun.load(tmp_path, "m")
    assert again.subject == run.subject and again.case_labels == run.case_labels
    np.testing.assert_array_equal(again.outputs["pytorch"]["f"], run.outputs["pytorch"]["f"])
    assert [r.to_dict() for r in judge.judge_model(again)] == [r.to_dict() for r in judge.judge_model(run)]
