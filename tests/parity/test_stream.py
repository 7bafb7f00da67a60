"""Streaming models through the gate (issue 27): every float ONNX file of the installed silero-vad wheel against
its TorchScript model on onnxruntime-python, with the contracts of parity/contracts/ (written from what the files
and the package declare); a broken copy, a wrong protocol and a wrong contract; the half variant's figures."""
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import silero_vad
from onnx import numpy_helper

from parity.config import GateConfig
from parity.foreign import verify_model
from parity.stream_check import StreamCheck
from parity.stream_table import CONTRACT_OF
from ser_export.cli import main
from ser_export.stream_contract import read_contract
from tests.e2e import ROOT

DATA = Path(os.path.dirname(silero_vad.__file__)) / "data"
JIT = DATA / "silero_vad.jit"
CONTRACTS = ROOT / "parity" / "contracts"
#: Every float ONNX file of the wheel and the contract written for it (the table's map, parity/stream_table.py).
FLOAT_FILES = {name: contract for name, contract in CONTRACT_OF.items() if name != "silero_vad_half.onnx"}
SHORT = StreamCheck(streams=3, seed=0, long_seconds=None)
CLI_SHORT = ["--runtimes", "onnxruntime-python", "--streams", "3", "--long-seconds", "0"]


def _verify(model: Path, contract: str, check: StreamCheck = SHORT, tmp: Path | None = None):
    cfg = GateConfig(runtimes=("onnxruntime-python",), counterexample_dir=tmp)
    return verify_model(model, read_contract(CONTRACTS / f"{contract}.toml"), cfg, torch_factory=str(JIT),
                        streams=check)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m ser_export ARGS`` in this process (the exit code its ``main`` returns, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _stages(report) -> dict:
    return {(r.stage, r.runner): r for r in report.models[0].results}


def test_every_onnx_file_of_the_wheel_has_a_contract():
    assert {p.name for p in DATA.glob("*.onnx")} == set(CONTRACT_OF)
    assert all((CONTRACTS / f"{c}.toml").is_file() for c in CONTRACT_OF.values())


@pytest.mark.parametrize("name", sorted(FLOAT_FILES))
def test_every_float_file_passes_against_the_torchscript_model(name, tmp_path):
    report = _verify(DATA / name, FLOAT_FILES[name], tmp=tmp_path)
    stages = _stages(report)
    assert report.exit_code == 0, report.summary_lines()
    score = read_contract(CONTRACTS / f"{FLOAT_FILES[name]}.toml").scores[0].name
    for stage in (f"stream[{score}]", f"decisions[{score}]", f"segments[{score}]"):
        r = stages[(stage, "onnxruntime-python")]
        assert r.applicable and r.passed and r.against == "pytorch" and r.n_cases == 3, r.message()
    assert stages[(f"decisions[{score}]", "onnxruntime-python")].metrics["agreement"] == 1.0
    # the streams hold speech: the decisions are not all "silence"
    assert stages[(f"segments[{score}]", "onnxruntime-python")].metrics["segments"] >= 1
    print(name, stages[(f"stream[{score}]", "onnxruntime-python")].message())


def test_the_sequence_model_equals_its_streamed_self(tmp_path):
    report = _verify(DATA / "silero_vad_16k_sequence.onnx", "silero_vad_16k_sequence", tmp=tmp_path)
    r = _stages(report)[("sequence[speech_probs]", "onnxruntime-python")]
    assert r.applicable and r.passed and r.tolerance <= 1e-5, r.message()
    print(r.message())


def test_the_error_along_a_long_stream_is_reported(tmp_path):
    report = _verify(DATA / "silero_vad.onnx", "silero_vad", StreamCheck(streams=1, seed=1, long_seconds=60.0),
                     tmp=tmp_path)
    r = _stages(report)[("stream_drift[output]", "onnxruntime-python")]
    assert r.applicable and r.passed and r.metrics["chunks"] == 1876 and round(r.metrics["seconds"]) == 60
    assert 0 < r.metrics["first_share"] and 0 < r.metrics["last_share"] <= r.tolerance
    print(r.message())


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """silero_vad.onnx with encoder.2's convolution weight x1.5 (in both branches of its sr test), its parent
    beside it, and the Silero contract naming that parent."""
    folder = tmp_path_factory.mktemp("scaled")
    model = onnx.load(str(DATA / "silero_vad.onnx"))
    for attr in model.graph.node[2].attribute:
        for node in attr.g.node:
            if node.op_type == "Constant" and node.output[0].endswith("encoder.2.reparam_conv.weight"):
                t = node.attribute[0].t
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(1.5), t.name))
    onnx.save(model, str(folder / "scaled.onnx"))
    (folder / "silero_vad.onnx").write_bytes((DATA / "silero_vad.onnx").read_bytes())
    (folder / "scaled.toml").write_text((CONTRACTS / "silero_vad.toml").read_text()
                                        + '\n[variant]\nparent = "silero_vad.onnx"\ntolerance_class = "exact_stream"\n')
    return folder


def test_a_copy_with_one_weight_scaled_fails_naming_stage_chunk_and_node(scaled, capsys):
    report = scaled / "report.json"
    code, out, err = _cli(capsys, "verify", str(scaled / "scaled.onnx"), "--contract", str(scaled / "scaled.toml"),
                          "--torch", str(JIT), *CLI_SHORT, "--report", str(report), "--counterexamples",
                          str(scaled / "ce"))
    assert code == 1, out + err
    err = err.strip().splitlines()
    assert len(err) == 1 and "stream[output]/onnxruntime-python vs pytorch" in err[0]
    assert "first_failing_chunk" in err[0]
    assert "on chunk" in out and "encoder/2/reparam_conv/Conv (Conv)" in out, out
    data = json.loads(report.read_text())["models"][0]
    loc = data["localization"][0]
    assert loc["op_type"] == "Conv" and loc["weight"].endswith("encoder.2.reparam_conv.weight")
    ce = data["counterexamples"][0]
    assert ce["samples"] == (ce["first_failing_chunk"] + 1) * 512 and Path(ce["saved"]).exists()
    assert ce["stage"] == "stream[output]"
    assert np.load(ce["saved"]).shape == (ce["samples"],)
    failed = {r["stage"] for r in data["results"] if not r["passed"]}
    assert {"stream[output]", "vs_parent[stream,output]", "vs_parent[decisions,output]"} <= failed


def test_a_contract_without_the_context_fails_against_the_torchscript_model(tmp_path, capsys):
    contract = tmp_path / "no_context.toml"
    contract.write_text((CONTRACTS / "silero_vad.toml").read_text().replace("context = 64", "context = 0"))
    code, out, err = _cli(capsys, "verify", str(DATA / "silero_vad.onnx"), "--contract", str(contract), "--torch",
                          str(JIT), *CLI_SHORT, "--counterexamples", str(tmp_path / "ce"))
    assert code == 1, out + err
    assert "FAILED: silero-vad/stream[output]/onnxruntime-python vs pytorch" in err
    print(err.strip())  # the figure docs/streaming.md cites
    # against silero_vad.jit alone no node is named, and the report says why (docs/streaming.md)
    assert "first divergence (onnxruntime-python vs pytorch): not localised: the reference has no graph" in out, out


def test_a_state_output_that_does_not_exist_cannot_be_checked(tmp_path, capsys):
    contract = tmp_path / "bad_state.toml"
    contract.write_text((CONTRACTS / "silero_vad.toml").read_text().replace('output = "stateN"',
                                                                          'output = "stateX"'))
    code, out, err = _cli(capsys, "verify", str(DATA / "silero_vad.onnx"), "--contract", str(contract), "--torch",
                          str(JIT), *CLI_SHORT)
    assert code == 2, out + err
    assert err.strip().splitlines() == ["error: onnxruntime-python: silero_vad.onnx has no output 'stateX' (its outputs: output, stateN)"]


def _fp16_rounded(source: Path, out: Path) -> Path:
    """``source`` with every float32 initializer rounded to float16 (and stored as float32 again)."""
    model = onnx.load(str(source))
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16).astype(np.float32),
                                               t.name))
    onnx.save(model, str(out))
    return out


def test_the_half_variant_is_judged_against_its_parent_and_fails_its_fp16_class(tmp_path):
    """silero_vad_half.onnx does not meet the fp16 stream class (scores within 0.1 and 99.5 % of decisions as its
    float parent's), and not because of float16: it is float32 throughout, and its weights are not the float
    model's rounded to float16 (they differ by far more than that rounding), while a true float16 rounding of the
    float model's weights passes the class."""
    report = _verify(DATA / "silero_vad_half.onnx", "silero_vad_half", StreamCheck(streams=5, seed=0,
                                                                                   long_seconds=None), tmp=tmp_path)
    stages = _stages(report)
    scores = stages[("vs_parent[stream,output]", "onnxruntime-python")]
    decisions = stages[("vs_parent[decisions,output]", "onnxruntime-python")]
    assert scores.against == "silero_vad.onnx" and "fp16_stream" in scores.detail
    print(scores.message())
    print(decisions.message())
    assert not scores.passed and scores.max_abs > scores.tolerance == 0.1
    assert not decisions.passed and decisions.metrics["agreement"] < 0.995
    assert report.exit_code == 1

    half = onnx.load(str(DATA / "silero_vad_half.onnx"))
    assert {t.data_type for t in half.graph.initializer} == {onnx.TensorProto.FLOAT}
    float_weights = {t.name: numpy_helper.to_array(t) for t in
                     onnx.load(str(DATA / "silero_vad_16k_op15.onnx")).graph.initializer}
    w = numpy_helper.to_array(next(t for t in half.graph.initializer if t.name == "encoder.0.reparam_conv.weight"))
    ref = float_weights["model.encoder.0.reparam_conv.weight"]
    rounding = np.abs(ref.astype(np.float16).astype(np.float32) - ref).max()
    print(f"encoder.0 weight: half vs float {np.abs(w - ref).max():.3g}, float16 rounding {rounding:.3g}")
    assert np.abs(w - ref).max() > 1000 * rounding

    rounded = _fp16_rounded(DATA / "silero_vad_op18_ifless.onnx", tmp_path / "rounded.onnx")
    (tmp_path / "silero_vad_op18_ifless.onnx").write_bytes((DATA / "silero_vad_op18_ifless.onnx").read_bytes())
    contract = tmp_path / "rounded.toml"
    contract.write_text((CONTRACTS / "silero_vad.toml").read_text()
                        + '\n[variant]\nparent = "silero_vad_op18_ifless.onnx"\ntolerance_class = "fp16_stream"\n')
    cfg = GateConfig(runtimes=("onnxruntime-python",), counterexample_dir=tmp_path)
    ok = verify_model(rounded, read_contract(contract), cfg, streams=StreamCheck(streams=5, seed=0,
                                                                                 long_seconds=None))
    stages = _stages(ok)
    for stage in ("vs_parent[stream,output]", "vs_parent[decisions,output]"):
        r = stages[(stage, "onnxruntime-python")]
        assert r.applicable and r.passed, r.message()
        print(r.message())


@pytest.fixture(scope="module")
def integrator(tmp_path_factory):
    from tests.parity import stream_models

    folder = tmp_path_factory.mktemp("integrator")
    stream_models.build(folder)
    return folder


def test_a_reference_driven_through_the_declared_inputs(integrator, tmp_path):
    """A --torch factory of a plain torch module, given the window and the state as declared and returning the
    score and the next state: its exported file passes, the state after the last chunk compared too; a
    reference with another leak fails."""
    contract = read_contract(integrator / "integrator.toml")
    cfg = GateConfig(runtimes=("onnxruntime-python",), counterexample_dir=tmp_path)
    check = StreamCheck(streams=3, seed=0, long_seconds=None)
    report = verify_model(integrator / "integrator.onnx", contract, cfg,
                          torch_factory="tests.parity.stream_models:integrator_factory", streams=check)
    stages = _stages(report)
    assert report.exit_code == 0, report.summary_lines()
    state = stages[("stream_state[state_out]", "onnxruntime-python")]
    assert state.applicable and state.against == "pytorch" and state.passed
    assert stages[("segments[score]", "onnxruntime-python")].metrics["segments"] >= 1
    bad = verify_model(integrator / "integrator.onnx", contract, cfg,
                       torch_factory="tests.parity.stream_models:leaky_factory", streams=check)
    assert bad.exit_code == 1 and not _stages(bad)[("stream[score]", "onnxruntime-python")].passed
    assert not _stages(bad)[("stream_state[state_out]", "onnxruntime-python")].passed


def test_a_torch_file_that_is_not_torchscript_cannot_be_checked(tmp_path, capsys):
    fake = tmp_path / "model.jit"
    fake.write_bytes(b"not a TorchScript archive")
    code, out, err = _cli(capsys, "verify", str(DATA / "silero_vad.onnx"), "--contract",
                          str(CONTRACTS / "silero_vad.toml"), "--torch", str(fake), *CLI_SHORT)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"--torch {fake}: not a TorchScript file torch.jit.load reads" in lines[0], err


def test_a_streaming_run_is_not_saved_or_sharded_yet(tmp_path, capsys):
    code, out, err = _cli(capsys, "verify", str(DATA / "silero_vad.onnx"), "--contract",
                          str(CONTRACTS / "silero_vad.toml"), *CLI_SHORT, "--save-outputs", str(tmp_path / "s"))
    assert code == 2 and err.strip().splitlines() == [
        "error: --save-outputs, --rejudge and --shard do not take a streaming model's run yet"], err
