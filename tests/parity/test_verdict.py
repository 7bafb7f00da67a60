"""One verdict rule end to end: a mismatch found anywhere is exit 1, whatever else could not be checked.

The rule itself (:attr:`parity.report.GateReport.exit_code`) is tested case by case in ``test_units.py``;
here on a release broken the way the issue found it ranked wrongly (exit 2).  onnxruntime-python only,
5 cases, no shrinking: about 15 s.
"""
from __future__ import annotations

import json

from ser_export import cli
from tests.e2e import ROOT
from tests.parity import tamper

MODEL = "voice_emotion_cnn.onnx"


def test_an_enveloped_model_whose_variants_cannot_be_checked_exits_1_naming_every_failing_stage(tmp_path, capsys):
    # the committed AlexNet with a gain envelope after its input and its manifest sha256 forged: its variants'
    # metadata still names the old parent, so they are not checked
    release = tamper.copy_release(ROOT / "saved_models", tmp_path / "r", variants=("fp16", "int8")).parent
    tamper.gain_envelope(release / MODEL)
    tamper.resign(release, MODEL)
    report = tmp_path / "report.json"
    code = cli.main(["verify", str(release), "--examples", "5", "--runtimes", "onnxruntime-python", "--no-shrink",
                     "--counterexamples", str(tmp_path / "ce"), "--report", str(report)])
    out, err = capsys.readouterr()
    data = json.loads(report.read_text())
    assert code == 1 and data["exit_code"] == 1 and data["verdict"] == "failed", out[-3000:] + err

    failed = [r for m in data["models"] for r in m["results"] if r["applicable"] and not r["passed"]]
    assert {"logmel_vs_librosa[above_floor]", "logmel_vs_librosa[all_bins]", "golden_logits"} <= {
        r["stage"] for r in failed}, failed
    for r in failed:  # every failing stage is named, though the run also has models it could not check
        assert f"FAILED: {r['model']}/{r['stage']}/{r['runner']} " in out, (r["stage"], out[-3000:])

    unchecked = {m["arch"]: m for m in data["models"] if m["error"]}
    assert set(unchecked) == {"alexnet.fp16", "alexnet.int8"}, unchecked
    for m in unchecked.values():
        assert "its metadata does not name it the" in m["error"] and not m["passed"]
        assert f"NOT CHECKED: {m['file']}: " in out

    (line,) = err.strip().splitlines()  # one line: the mismatch first, and how much was not checked
    assert line.startswith(f"error: {release / MODEL}: FAILED: alexnet/") and line.endswith("(and 2 not checked)")
