"""One RMS level, ``10 ** (L / 20)`` (dB of amplitude), in Python, in JS and in the gate.

Our release uses L = 0, where every way of writing the level agrees; these tests use
L = -20 dB, where a window must come out at RMS 0.1 (not 0.01, which ``10 ** (L / 10)`` gives).
"""
import json

import numpy as np
import pytest

from ser_export import contract
from ser_export.audio import model_windows, rms, rms_normalize
from ser_export.model_contract import Normalization

LEVEL, TARGET = -20.0, 0.1
LEVELS = [-40.0, -26.5, -20.0, -6.0, 0.0, 3.0, 12.0]


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / contract.SAMPLE_RATE
    return (0.03 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("level", LEVELS)
def test_rms_target_is_db_of_amplitude(level):
    assert contract.rms_target(level) == pytest.approx(10 ** (level / 20), rel=1e-15)
    assert 20 * np.log10(contract.rms_target(level)) == pytest.approx(level, abs=1e-12)
    assert Normalization("rms", level).target_rms == contract.rms_target(level)
    assert contract.rms_target(0.0) == 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_the_metadata_formula_gives_the_target(level):
    """The formula string the metadata carries, evaluated, gives ``rms_target``'s RMS."""
    expression = contract.RMS_FORMULA.split(";")[0]
    assert expression == "x * sqrt(N * 10**(rms_level_db/10) / sum(x**2))"
    x = _speechlike(4000).astype(np.float64)
    out = eval(expression, {"x": x, "N": x.size, "rms_level_db": level, "sqrt": np.sqrt, "sum": np.sum})
    assert rms(out) == pytest.approx(contract.rms_target(level), rel=1e-12)
    assert contract.input_contract()["normalization"]["formula"] == contract.RMS_FORMULA


def test_python_normalises_to_rms_0_1_at_minus_20_db():
    y = _speechlike(contract.N_SAMPLES)
    assert rms(rms_normalize(y, rms_level=LEVEL)) == pytest.approx(TARGET, rel=1e-6)
    starts, windows = model_windows(_speechlike(3 * contract.N_SAMPLES), rms_level=LEVEL)
    assert len(windows) == 3 and all(rms(w) == pytest.approx(TARGET, rel=1e-6) for w in windows)


def test_the_release_level_is_unchanged():
    """L = 0 (our release): the gain is exactly sqrt(N / sum(x**2)), as before."""
    y = _speechlike(contract.N_SAMPLES)
    y64 = y.astype(np.float64)
    expected = (y64 * np.sqrt(y64.size * 1.0 * 1.0 / np.sum(y64 * y64))).astype(np.float32)
    np.testing.assert_array_equal(rms_normalize(y), expected)


@pytest.mark.node
def test_js_rms_target_equals_python_s_and_js_normalises_to_0_1():
    from tests.js.test_js_modules import node_eval

    out = node_eval(f"""
import {{ rmsTarget, rmsNormalize, toModelInputs, rms }} from './lib/preprocess.mjs';
const levels = {json.dumps(LEVELS)};
const n = 46305;
const x = Float32Array.from({{length: 3 * n}}, (_, i) => 0.03 * Math.sin(i / 9) * (1 + Math.sin(i / 3000)) + 0.001 * Math.cos(i));
const contract = {{sampleRate: 22050, inputLength: n, normalization: {{rms_level_db: {LEVEL}, min_rms: 1e-6}}}};
const r = toModelInputs([x], 22050, contract);
console.log(JSON.stringify({{targets: levels.map(rmsTarget),
  one: rms(rmsNormalize(x.subarray(0, n), contract.normalization).samples),
  windows: r.windows.map((w) => rms(w.samples))}}));
""")
    assert out["targets"] == [contract.rms_target(level) for level in LEVELS]
    assert out["one"] == pytest.approx(TARGET, rel=1e-5)
    assert len(out["windows"]) == 3 and out["windows"] == pytest.approx([TARGET] * 3, rel=1e-5)


def _waveform_model(path, n):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["waveform"], ["logits"], axes=[1], keepdims=1)], "mean",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def _contract(n):
    from ser_export.model_contract import ModelContract

    return ModelContract.from_mapping({
        "input": {"name": "waveform", "shape": ["batch", n], "sample_rate": contract.SAMPLE_RATE,
                  "normalization": {"kind": "rms", "rms_level_db": LEVEL, "min_rms": 1e-6}},
        "outputs": {"logits": "logits"}}, "test")


def test_the_gate_renders_cases_at_rms_0_1(tmp_path):
    from ser_export.export.model_file import open_model
    from parity.cases import draw_cases
    from parity.subject import ModelUnderTest

    n = contract.N_SAMPLES
    _waveform_model(tmp_path / "m.onnx", n)
    mut = ModelUnderTest(open_model(tmp_path / "m.onnx"), "m", _contract(n))
    try:
        cases = mut.cases(draw_cases(6, seed=3))
    finally:
        mut.close()
    normalised = np.flatnonzero(cases.normalised)
    assert normalised.size
    assert [rms(cases.waveforms[i]) for i in normalised] == pytest.approx([TARGET] * normalised.size, rel=1e-5)


@pytest.mark.node
def test_the_gate_s_preprocessing_gives_windows_at_rms_0_1_in_python_and_node(tmp_path):
    """The gate's JS-preprocessing check (:func:`parity.preprocessing.collect_preprocessing`) on a contract
    at -20 dB: every window, Python's and the Node runner's, at RMS 0.1."""
    import onnxruntime as ort

    from parity.preprocessing import RECORDINGS, collect_preprocessing
    from parity.runners import RUNNERS

    n = contract.N_SAMPLES
    _waveform_model(tmp_path / "m.onnx", n)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    norm = _contract(n).input.normalization
    meta = {"sample_rate": contract.SAMPLE_RATE, "input_length": n,
            "normalization": {"rms_level_db": norm.rms_level_db, "min_rms": norm.min_rms}}
    recordings = [r for r in RECORDINGS if r.name == "22050Hz-stereo-silent-window"]
    with RUNNERS["onnxruntime-node"]() as node:
        out = collect_preprocessing({"onnxruntime-node": node}, session, meta, recordings)
    (record,) = out["onnxruntime-node"]
    assert record.js_windows.shape == record.py_windows.shape and record.js_windows.shape[0] >= 2
    for windows in (record.js_windows, record.py_windows):
        assert [rms(w) for w in windows] == pytest.approx([TARGET] * len(windows), rel=1e-5)


def _mean_square_model(path, n):
    """A plain ONNX model (no ser_export code) whose one output is the mean square of its input: 0.01 at RMS 0.1."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["waveform", "waveform"], ["square"]),
         helper.make_node("ReduceMean", ["square"], ["logits"], axes=[1], keepdims=1)], "mean_square",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # onnxruntime-web reads IR <= 13
    onnx.save(model, str(path))


MEAN_SQUARE_CONTRACT = """
version = 1
name = "mean-square"
targets = ["wasm"]

[input]
name = "waveform"
shape = ["batch", {n}]
sample_rate = {sr}
normalization = {{ kind = "rms", rms_level_db = {level}, min_rms = 1e-6 }}

[outputs]
logits = "logits"
"""


@pytest.mark.node
def test_verify_feeds_every_runtime_inputs_at_rms_0_1_under_a_minus_20_db_contract(tmp_path):
    """``verify MODEL --contract FILE`` with a -20 dB contract: the model's output (the mean square of what it
    was given) is 0.01 on every normalised case in onnxruntime-python, onnxruntime-web-wasm and
    onnxruntime-node, read from the run ``--save-outputs`` wrote."""
    from parity import record
    from tests.e2e import run_cli

    n = contract.N_SAMPLES
    _mean_square_model(tmp_path / "m.onnx", n)
    (tmp_path / "c.toml").write_text(MEAN_SQUARE_CONTRACT.format(n=n, sr=contract.SAMPLE_RATE, level=LEVEL))
    runtimes = ["onnxruntime-python", "onnxruntime-web-wasm", "onnxruntime-node"]
    proc = run_cli("verify", str(tmp_path / "m.onnx"), "--contract", str(tmp_path / "c.toml"),
                   "--runtimes", ",".join(runtimes), "--examples", "3", "--save-outputs", str(tmp_path / "saved"),
                   timeout=600)  # about 20 s
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs, _ = record.load_runs(tmp_path / "saved")
    run = runs["mean-square"]
    assert list(run.outputs) == runtimes
    normalised = np.flatnonzero(run.normalised)
    assert normalised.size >= 1, run.case_labels
    for runtime, outputs in run.outputs.items():
        mean_square = outputs["logits"][normalised, 0].astype(np.float64)
        assert mean_square == pytest.approx([TARGET ** 2] * normalised.size, rel=1e-3), runtime
