"""The release's voice-activity model through the stream stages (issue 27 item 4): its contract made in one place
from the release's parameters, recorded in the manifest, and the release gate judging the release's Silero file
on its runtimes against the wheel's TorchScript model by that contract."""
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from parity.runners.onnxruntime_python import OnnxruntimePythonRunner
from ser_export.cli import main
from ser_export.manifest import Manifest
from ser_export.stream_contract import StreamContract
from ser_export.vad import VadParams, VoiceActivity
from ser_export.vad_release import refresh_manifest, vad_record
from tests.e2e import ROOT
from tests.parity import tamper

RELEASE = ROOT / "saved_models"
FAST = ["--examples", "2", "--no-shrink", "--streams", "2", "--long-seconds", "0", "--stream-seconds", "1,2"]


def _manifest(release: Path = RELEASE) -> dict:
    return json.loads((release / "manifest.json").read_text())


def _params(manifest: dict) -> VadParams:
    return VadParams.from_dict(next(iter(manifest["models"].values()))["postprocessing"]["vad"])


@pytest.fixture
def release(tmp_path) -> Path:
    """A copy of the committed release with one model (and its VAD)."""
    return tamper.copy_release(RELEASE, tmp_path / "r").parent


def _verify(capsys, release: Path, *extra: str, runtimes: str = "onnxruntime-python"):
    capsys.readouterr()
    report = release / "report.json"
    code = main(["verify", str(release), "--runtimes", runtimes, "--report", str(report), "--counterexamples",
                 str(release / "ce"), *FAST, *extra])
    out = capsys.readouterr()
    data = json.loads(report.read_text()) if report.exists() else None
    vad = next((m for m in data["models"] if m["arch"] == "silero-vad"), None) if data else None
    return code, out.out, out.err, vad


def test_the_committed_manifest_records_the_contract_the_build_makes():
    manifest = _manifest()
    params = _params(manifest)
    made = vad_record((RELEASE / "silero_vad.onnx").read_bytes(), params, manifest["vad"]["version"]).to_dict()
    assert manifest["vad"] == json.loads(json.dumps(made))
    contract = StreamContract.from_mapping(manifest["vad"]["contract"], "vad.contract")
    assert contract == params.stream_contract()
    # what the release declares: the decision is the post-processing's threshold, the protocol Silero's
    assert contract.decisions["output"].threshold == params.threshold
    assert (contract.signal.chunk, contract.signal.context) == (params.frame_length, params.context)
    assert contract.constants[0].value == params.sample_rate


def test_refreshing_the_committed_manifest_changes_nothing(tmp_path):
    release = tmp_path / "r"
    release.mkdir()
    for name in ("manifest.json", "silero_vad.onnx"):  # all the refresh reads
        (release / name).write_bytes((RELEASE / name).read_bytes())
    assert refresh_manifest(release) is False
    assert (release / "manifest.json").read_bytes() == (RELEASE / "manifest.json").read_bytes()
    manifest = _manifest(release)
    del manifest["vad"]["contract"]  # a release made before the contract gains it, by the same function
    (release / "manifest.json").write_text(json.dumps(manifest))
    assert refresh_manifest(release) is True
    assert _manifest(release)["vad"] == _manifest()["vad"]


@pytest.mark.parametrize("field, value, message", [
    ("threshold", 0.4, "vad.contract.scores is"),
    ("context", 0, "vad.contract.signal is"),
])
def test_a_contract_the_release_does_not_make_is_refused_in_one_line(release, capsys, field, value, message):
    manifest = _manifest(release)
    c = manifest["vad"]["contract"]
    if field == "threshold":
        c["scores"][0]["decision"]["threshold"] = value
    else:
        c["signal"]["context"] = value
    (release / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    code = main(["verify", str(release), "--runtimes", "onnxruntime-python", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "postprocessing.vad make" in err[0], err


def test_the_python_vad_is_the_stream_loop_of_its_contract():
    """VoiceActivity's frames are run_stream's scores on each window by the recorded contract, bit for bit."""
    params = _params(_manifest())
    vad = VoiceActivity(params, path=RELEASE / "silero_vad.onnx")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    windows = np.stack([0.3 * rng.standard_normal(16000), np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)])
    frames = vad.frame_probabilities(windows.astype(np.float32), 16000)
    streams = list(vad.vad_input(windows.astype(np.float32), 16000))
    runner = OnnxruntimePythonRunner(threads=1)
    got = runner.run_stream(RELEASE / "silero_vad.onnx", params.stream_contract().to_wire(), streams)
    for i, out in enumerate(got.outputs):
        assert np.array_equal(out["output"].reshape(-1), frames[i])


def test_the_gate_judges_the_release_vad_by_the_stream_stages(release, capsys):
    code, out, err, vad = _verify(capsys, release)
    assert code == 0, out + err
    stages = {r["stage"]: r for r in vad["results"] if r["runner"] == "onnxruntime-python"}
    assert {"stream[output]", "decisions[output]", "segments[output]"} <= set(stages)
    for r in stages.values():
        assert r["passed"] and r["applicable"] and r["against"] == "pytorch"
    assert stages["decisions[output]"]["detail"].startswith("on at >= 0.5:")  # the release's threshold
    assert vad["kind"] == "stream" and vad["checksum"]["ok"]


def test_a_release_before_the_contract_is_checked_by_checksum_only(release, capsys):
    manifest = _manifest(release)
    del manifest["vad"]["contract"]
    (release / "manifest.json").write_text(json.dumps(manifest))
    code, out, err, vad = _verify(capsys, release)
    assert code == 0, out + err
    assert vad["kind"] == "file" and [r["applicable"] for r in vad["results"]] == [False]


def _scale_one_weight(release: Path) -> None:
    """silero_vad.onnx's encoder.2 convolution weight x1.5, and the manifest's checksums of it updated."""
    path = release / "silero_vad.onnx"
    model = onnx.load(str(path))
    for attr in model.graph.node[2].attribute:
        for node in attr.g.node:
            if node.op_type == "Constant" and node.output[0].endswith("encoder.2.reparam_conv.weight"):
                t = node.attribute[0].t
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(1.5), t.name))
    onnx.save(model, str(path))
    manifest = _manifest(release)
    data = path.read_bytes()
    manifest["vad"] |= {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for entry in manifest["models"].values():
        entry["postprocessing"]["vad"]["sha256"] = manifest["vad"]["sha256"]
    (release / "manifest.json").write_text(json.dumps(manifest))
    Manifest.read(release)  # a consistent manifest: only the stream stages can tell


def test_a_vad_with_one_weight_scaled_exits_1_naming_the_stream_stage(release, capsys):
    _scale_one_weight(release)
    code, out, err, vad = _verify(capsys, release)
    assert code == 1, out + err
    assert "silero_vad.onnx: FAILED: silero-vad/stream[output]/onnxruntime-python vs pytorch" in err.splitlines()[-1]
    failed = {r["stage"] for r in vad["results"] if not r["passed"]}
    assert {"stream[output]", "decisions[output]"} <= failed


@pytest.mark.node
def test_the_release_vad_on_the_js_runtimes(release, capsys):
    """Python vs the JS runners' run_stream on the release's file: every stream stage, the final state between
    runtimes (the TorchScript reference keeps its own)."""
    code, out, err, vad = _verify(capsys, release, runtimes="onnxruntime-python,onnxruntime-web-wasm,onnxruntime-node")
    assert code == 0, out + err
    got = {(r["stage"], r["runner"]) for r in vad["results"] if r["applicable"] and r["passed"]}
    for runner in ("onnxruntime-web-wasm", "onnxruntime-node"):
        assert {("stream[output]", runner), ("decisions[output]", runner), ("segments[output]", runner),
                ("stream_state[stateN]", runner)} <= got
    print(out)


def _vad_results(report: Path) -> dict:
    vad = next(m for m in json.loads(report.read_text())["models"] if m["arch"] == "silero-vad")
    return {(r["stage"], r["runner"]): (r["passed"], r["max_abs"]) for r in vad["results"]}


def test_a_saved_or_sharded_run_keeps_the_vad_stream_verdict(release, capsys):
    """--rejudge and merge-reports give the VAD's stream stages as the run judged them (judged in shard 1 only)."""
    _scale_one_weight(release)  # a failing VAD: the verdict that must survive
    args = ["--runtimes", "onnxruntime-python", "--examples", "3", "--batch-size", "1", "--no-shrink", "--streams",
            "2", "--long-seconds", "0", "--stream-seconds", "1,2", "--counterexamples", str(release / "ce")]
    assert main(["verify", str(release), *args, "--save-outputs", str(release / "saved"),
                 "--report", str(release / "whole.json")]) == 1
    whole = _vad_results(release / "whole.json")
    assert not whole[("stream[output]", "onnxruntime-python")][0]
    assert main(["verify", "--rejudge", str(release / "saved"), "--report", str(release / "again.json")]) == 1
    assert _vad_results(release / "again.json") == whole
    for k in (2, 1, 3):
        main(["verify", str(release), *args, "--shard", f"{k}/3", "--report", str(release / f"shard-{k}.json")])
    assert main(["merge-reports", *(str(release / f"shard-{k}.json") for k in (2, 1, 3)),
                 "--report", str(release / "merged.json")]) == 1
    assert _vad_results(release / "merged.json") == whole
    capsys.readouterr()
