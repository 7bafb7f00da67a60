"""The gate passes a good release and fails, naming stage, runner, case and size, on broken ones."""
import json
import os
import stat

import pytest

from tests.e2e import run_cli
from tests.parity import tamper

pytestmark = pytest.mark.node

FAST = ["--examples", "6", "--no-shrink"]
#: The post-processing stages on every JS runner: the VAD's frames as streams (the stream stages), then the rest.
POSTPROCESSING_STAGES = ("vad:stream[output]", "vad:decisions[output]", "vad:segments[output]", "speech", "calibrated",
                         "ood")


def _verify(release, *extra, runtimes="pytorch,onnxruntime-python,onnxruntime-web-wasm", env=None):
    report = release / "report.json"
    proc = run_cli("verify", str(release), "--runtimes", runtimes, "--report", str(report),
                   "--junit", str(release / "junit.xml"), "--counterexamples", str(release / "ce"), *extra,
                   env=env)
    data = json.loads(report.read_text()) if report.exists() else None
    return proc, data


def _failures(data):
    return [r for m in data["models"] for r in m["results"] if not r["passed"]]


def test_good_release_passes_on_all_runners(quick_release, tmp_path):
    tamper.copy_release(quick_release["out"], tmp_path / "r")
    proc, data = _verify(tmp_path / "r", *FAST, runtimes="pytorch,onnxruntime-python,onnxruntime-web-wasm,"
                                                        "onnxruntime-node")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["verdict"] == "passed" and not _failures(data)
    info = data["runners"]
    assert info["onnxruntime-web-wasm"]["backend"] == "wasm" and info["onnxruntime-web-wasm"]["threads"] == 1
    assert info["onnxruntime-web-wasm"]["node"].startswith("v")
    assert info["onnxruntime-node"]["version"] == "1.30.0"
    stages = {r["stage"] for m in data["models"] for r in m["results"]}
    assert {"golden_logits", "top1", "batch_invariance[logmel]", "determinism[logits]"} <= stages
    pre = [s for s in stages if s.startswith("js_preprocessing[")]
    assert len(pre) == 6  # every generated recording through the shipped JS preprocessing
    # the shipped JS post-processing (VAD, calibration, OOD flag) on every JS runner, against Python's
    post = {(r["stage"], r["runner"]) for m in data["models"] for r in m["results"]
            if r["stage"].startswith("postprocessing[")}
    assert post == {(f"postprocessing[{k}]", r) for k in POSTPROCESSING_STAGES
                    for r in ("onnxruntime-web-wasm", "onnxruntime-node")}
    vad = next(m for m in data["models"] if m["arch"] == "silero-vad")  # its stream stages: test_release_vad.py
    assert vad["file"] == "silero_vad.onnx" and vad["checksum"]["ok"] is True and vad["kind"] == "stream"
    assert "<testsuites" in (tmp_path / "r" / "junit.xml").read_text()


def test_a_tampered_voice_activity_model_fails_with_exit_1(quick_release, tmp_path):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r").parent
    path = release / "silero_vad.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    proc, report = _verify(release, *FAST, runtimes="onnxruntime-python")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("silero_vad.onnx: sha256 does not match the manifest's "
                                                         "(not the released file)")


def test_checksum_mismatch_fails(quick_release, tmp_path):
    path = tamper.copy_release(quick_release["out"], tmp_path / "r")
    tamper.change_weight(path)
    proc, data = _verify(tmp_path / "r", *FAST, runtimes="onnxruntime-python")
    assert proc.returncode == 1
    assert "does not match the manifest" in proc.stdout and not data["models"][0]["checksum"]["ok"]


@pytest.mark.parametrize("how, stage", [
    ("change_weight", "golden_logits"),
    ("wrong_pad_mode", "logmel_vs_librosa"),
    ("batch_global_reference", "batch_invariance"),
])
def test_broken_model_fails_naming_stage_runner_case_and_size(quick_release, tmp_path, how, stage):
    path = tamper.copy_release(quick_release["out"], tmp_path / "r")
    getattr(tamper, how)(path)
    tamper.resign(tmp_path / "r", path.name)  # checksums agree: only parity can catch it
    proc, data = _verify(tmp_path / "r", *FAST)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = [f for f in _failures(data) if f["stage"].startswith(stage)]
    assert failures, [f["stage"] for f in _failures(data)]
    f = failures[0]
    assert f["runner"] and f["max_abs"] > f["tolerance"] and f["where"]
    assert "case" in f["where"] and "input" in f["where"]
    assert f"{stage}" in proc.stdout and "FAILED" in proc.stdout
    if stage == "logmel_vs_librosa":  # the edge frames see the padding
        assert f["where"]["frame"] in (0, 1, 2, 88, 89, 90)
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert "<failure" in junit


def test_labels_that_contradict_the_manifest_are_refused(quick_release, tmp_path):
    """A model whose metadata labels differ from the manifest's: not the released model, nothing to
    compare (exit 2, one line naming the file)."""
    path = tamper.copy_release(quick_release["out"], tmp_path / "r")
    tamper.swap_labels(path)
    tamper.resign(tmp_path / "r", path.name)
    proc, data = _verify(tmp_path / "r", *FAST)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: its metadata labels [") and "differ from the manifest's" in line
    assert data["verdict"] == "not checked"


def _fake_node(tmp_path, body):
    script = tmp_path / "node"
    script.write_text("#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo v20.0.0; exit 0; fi\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize("body, message", [("sleep 600\n", "did not answer"), ("exit 3\n", "exited with 3")])
def test_harness_that_hangs_or_crashes_exits_2(quick_release, tmp_path, body, message):
    tamper.copy_release(quick_release["out"], tmp_path / "r")
    env = dict(os.environ, SER_EXPORT_NODE=_fake_node(tmp_path, body))
    proc, data = _verify(tmp_path / "r", *FAST, "--timeout", "5", runtimes="onnxruntime-web-wasm", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout and data["verdict"] == "not checked"


def test_missing_manifest_exits_2(tmp_path):
    proc, _ = _verify(tmp_path, *FAST)
    assert proc.returncode == 2 and "manifest" in proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and "manifest" in proc.stderr
