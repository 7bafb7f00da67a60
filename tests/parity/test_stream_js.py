"""Whole streams through a stateful model on the JS runners (js_harness/lib/stream.mjs, cmd "stream").

Silero VAD from the installed silero-vad wheel, streamed by onnxruntime-web (Node, wasm), onnxruntime-node
and Chromium (wasm), against onnxruntime-python driven through ser_export.streaming.stream_windows in a
plain loop here: every chunk's output and the state after the last chunk.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from parity.runners.base import RunnerError
from parity.runners.node import (ChromiumWasmRunner, ChromiumWebglRunner, ChromiumWebgpuRunner, OrtNodeRunner,
                                 OrtWebWasmRunner)
from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.jsenv import HARNESS_DIR, find_node
from ser_export.ortsession import cpu_session
from ser_export.streaming import n_chunks, stream_windows
from ser_export.vad import packaged_vad_path
from tests.e2e import ROOT

pytestmark = pytest.mark.node

SILERO = packaged_vad_path()
SILERO_HALF = SILERO.parent / "silero_vad_half.onnx"

#: silero_vad.onnx's inputs are input, state [2, batch, 128], sr (int64); outputs output [batch, 1], stateN
PROTOCOL = {"signal": {"name": "input", "chunk": 512, "context": 64, "dtype": "float32"},
            "states": [{"input": "state", "output": "stateN", "dims": [2, 1, 128], "dtype": "float32", "init": 0.0}],
            "constants": [{"name": "sr", "dtype": "int64", "dims": [], "value": 16000}],
            "outputs": ["output"]}
#: silero_vad_half.onnx (float16 weights) takes input and state only, both float32 at its boundary
PROTOCOL_HALF = {**PROTOCOL, "constants": []}

#: JS vs onnxruntime-python on the same file (measured here: 6e-8 on the outputs, 4e-6 on the state)
ATOL = 1e-5


def _streams() -> list[np.ndarray]:
    """Silence, a synthetic utterance and noise (3.98 s: not a multiple of 512), one chunk exactly, one sample."""
    rng = np.random.default_rng(27)
    speech = synthesize(make_speakers(2, 5)[0], "angry", clip_rng(5, 0, 3, 0), sr=16000, duration=3.0)
    long = np.concatenate([np.zeros(4800), 0.3 * speech / np.abs(speech).max(), 0.02 * rng.standard_normal(1123)])
    return [long.astype(np.float32), (0.1 * rng.standard_normal(512)).astype(np.float32), np.full(1, 0.5, np.float32)]


STREAMS = _streams()


def reference(model: Path, protocol: dict, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime-python, chunk by chunk: per-chunk outputs ``(n_chunks, 1, 1)`` and the last state."""
    session = cpu_session(str(model), threads=1)
    s = protocol["states"][0]
    state = np.full(s["dims"], s["init"], np.float32)
    constants = {c["name"]: np.array(c["value"], dtype=c["dtype"]) for c in protocol["constants"]}
    outs = []
    for window in stream_windows(y, protocol["signal"]["chunk"], protocol["signal"]["context"]):
        out, state = session.run(["output", s["output"]], {"input": window[None], s["input"]: state, **constants})
        outs.append(out)
    return np.stack(outs), state


@pytest.fixture(scope="module", params=[OrtWebWasmRunner, OrtNodeRunner], ids=lambda r: r.name)
def runner(request):
    with request.param() as r:
        yield r


def _counting(runner) -> list[str]:
    """The commands ``runner`` sends from now on."""
    sent, request = [], runner._request

    def counted(payload, timeout_s=None):
        sent.append(payload["cmd"])
        return request(payload, timeout_s)

    runner._request = counted
    return sent


def _check_against_python(result, model, protocol):
    assert result.runner and len(result.outputs) == len(STREAMS) == len(result.final_state)
    for i, y in enumerate(STREAMS):
        want, state = reference(model, protocol, y)
        got = result.outputs[i]["output"]
        assert got.shape == (n_chunks(y.size, 512), 1, 1) == want.shape, f"stream {i}"
        err = np.abs(got - want).max()
        assert err <= ATOL, f"stream {i}: per-chunk outputs differ by {err:.3g} (first chunk " \
                            f"{int(np.argmax(np.abs(got - want).reshape(len(want), -1).max(1) > ATOL))})"
        assert result.final_state[i]["stateN"].shape == (2, 1, 128)
        assert np.abs(result.final_state[i]["stateN"] - state).max() <= ATOL, f"stream {i}: final state"


def test_js_streams_equal_onnxruntime_python_chunk_by_chunk_in_one_request(runner):
    sent = _counting(runner)
    result = runner.run_stream(SILERO, PROTOCOL, STREAMS)
    assert sent.count("stream") == 1 and set(sent) <= {"stream", "info"}  # one request carried every stream
    assert "stream" in runner.capabilities and result.info["threads"] == 1
    assert result.info["execution_providers"] == [runner.backend] and result.info["backend"] == runner.backend
    _check_against_python(result, SILERO, PROTOCOL)
    # the speech was heard and the silence not: the comparison is on outputs that move
    p = result.outputs[0]["output"].reshape(-1)
    assert p[:9].max() < 0.1 and p[15:90].mean() > 0.8


def test_the_float16_silero_file_streams_too(runner):
    result = runner.run_stream(SILERO_HALF, PROTOCOL_HALF, STREAMS)
    _check_against_python(result, SILERO_HALF, PROTOCOL_HALF)


@pytest.mark.parametrize("where, name", [("outputs", "speech_prob"), ("state", "stateX"), ("constant", "rate")])
def test_a_protocol_naming_what_the_model_lacks_is_a_runner_error_naming_it(runner, where, name):
    protocol = json.loads(json.dumps(PROTOCOL))
    if where == "outputs":
        protocol["outputs"] = [name]
    elif where == "state":
        protocol["states"][0]["output"] = name
    else:
        protocol["constants"][0]["name"] = name
    with pytest.raises(RunnerError, match=f"no (output|input) '{name}'"):
        runner.run_stream(SILERO, protocol, STREAMS[1:2])
    assert runner.run_stream(SILERO, PROTOCOL, STREAMS[2:]).outputs[0]["output"].shape == (1, 1, 1)  # still serving


def test_the_package_vad_through_the_stream_loop_is_pythons(runner):
    """postprocess.mjs's VoiceActivity (one runStream per window) gives ser_export.vad's frame probabilities
    (batched onnxruntime-python) on the committed release's post-processing parameters."""
    from ser_export.audio import rms_normalize
    from ser_export.export.metadata import read_metadata
    from ser_export.postprocess import postprocessing_of
    from ser_export.vad import VoiceActivity

    pp = postprocessing_of(read_metadata(ROOT / "saved_models" / "voice_emotion_cnn.onnx"))
    speech = synthesize(make_speakers(2, 5)[0], "sad", clip_rng(5, 0, 2, 1), sr=22050, duration=2.1)
    noise = np.random.default_rng(1).standard_normal(speech.size)
    windows = np.stack([rms_normalize(np.concatenate([np.zeros(8000), speech])[:46305].astype(np.float32)),
                        rms_normalize(np.resize(noise, 46305).astype(np.float32))]).astype(np.float32)
    n_mels = len(pp.ood.mean) // 2
    js = runner.postprocess(windows, np.zeros((2, 4), np.float32), np.zeros((2, n_mels, 3), np.float32), 22050,
                            pp.to_dict(), SILERO)
    py = VoiceActivity(pp.vad, path=SILERO).frame_probabilities(windows, 22050)
    assert js["frames"].shape == py.shape == (2, 66)
    assert np.abs(js["frames"] - py).max() <= ATOL
    assert py[0].max() > 0.9 and py[0, :5].max() < 0.1  # speech after the silence is heard


def _tiny_model(path: Path, half: bool = True) -> Path:
    """A small stateful model: stateN = 0.5 * state + mean(x), y = max(x) + stateN (float16 in and out, or float32)."""
    import onnx
    from onnx import TensorProto, helper

    f16, f32 = TensorProto.FLOAT16 if half else TensorProto.FLOAT, TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["x"], ["x32"], to=f32), helper.make_node("Cast", ["state"], ["s32"], to=f32),
             helper.make_node("ReduceMean", ["x32"], ["mean"], keepdims=1),
             helper.make_node("Mul", ["s32", "half"], ["decayed"]), helper.make_node("Add", ["decayed", "mean"], ["n32"]),
             helper.make_node("ReduceMax", ["x32"], ["peak"], keepdims=1),
             helper.make_node("Add", ["peak", "n32"], ["y32"]),
             helper.make_node("Cast", ["n32"], ["stateN"], to=f16), helper.make_node("Cast", ["y32"], ["y"], to=f16)]
    graph = helper.make_graph(nodes, "fp16_stream",
                              [helper.make_tensor_value_info("x", f16, [1, "n"]),
                               helper.make_tensor_value_info("state", f16, [1, 3])],
                              [helper.make_tensor_value_info("y", f16, [1, 3]),
                               helper.make_tensor_value_info("stateN", f16, [1, 3])],
                              [helper.make_tensor("half", f32, [], [0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _tiny_protocol(dtype: str) -> dict:
    return {"signal": {"name": "x", "chunk": 100, "context": 7, "dtype": dtype},
            "states": [{"input": "state", "output": "stateN", "dims": [1, 3], "dtype": dtype, "init": 0.25}],
            "constants": [], "outputs": ["y"]}


TINY_STREAM = np.random.default_rng(3).uniform(-2, 2, 345).astype(np.float32)


def _check_tiny(result, model: Path, dtype: str, atol: float = 0.0) -> None:
    """The small model's stream against onnxruntime-python chunk by chunk (exactly, unless ``atol``)."""
    session = cpu_session(str(model), threads=1)
    state, want = np.full((1, 3), 0.25, dtype), []
    for window in stream_windows(TINY_STREAM, 100, 7):
        out, state = session.run(["y", "stateN"], {"x": window[None].astype(dtype), "state": state})
        want.append(out)
    got = result.outputs[0]["y"]
    assert got.dtype == np.float32 and got.shape == (4, 1, 3)
    np.testing.assert_allclose(got, np.stack(want).astype(np.float32), rtol=0, atol=atol)
    np.testing.assert_allclose(result.final_state[0]["stateN"], state.astype(np.float32), rtol=0, atol=atol)


def test_float16_signal_state_and_outputs_are_converted_in_and_out(runner, tmp_path):
    model = _tiny_model(tmp_path / "fp16.onnx")
    _check_tiny(runner.run_stream(model, _tiny_protocol("float16"), [TINY_STREAM]), model, "float16")


@pytest.mark.parametrize("change, message", [
    (lambda p: p["signal"].update(dtype="float16"), "protocol.signal.dtype is float16, the model's input 'input' is float32"),
    (lambda p: p["states"][0].update(dims=[2, 1, 64]), "feeds 'state' with dims [2,1,64], the model's input is [2,?,128]"),
    (lambda p: p["constants"].clear(), "the protocol feeds no value to the model input 'sr'"),
])
def test_a_protocol_that_does_not_fit_the_models_inputs_is_one_error(runner, change, message):
    protocol = json.loads(json.dumps(PROTOCOL))
    change(protocol)
    with pytest.raises(RunnerError) as exc:
        runner.run_stream(SILERO, protocol, STREAMS[2:])
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_the_float16_converter_is_numpys():
    """toFloat16Bits rounds as numpy's astype(float16) does (ties to even, subnormals, overflow);
    fromFloat16Bits reads every one of the 65536 bit patterns as numpy does."""
    rng = np.random.default_rng(0)
    ties = (np.arange(1, 2048, dtype=np.float32) * 2.0 ** -11 + 2.0 ** -12).astype(np.float32)  # 1 + k/2048 + half ulp
    values = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 6, 2000), ties, ties * 2.0 ** -20,
                             [0.0, -0.0, 65504, 65519.99, 65520, -70000, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0001,
                              2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -11), np.inf, -np.inf]]).astype(np.float32)
    code = f"""
import {{ toFloat16Bits, fromFloat16Bits }} from './lib/stream.mjs';
const v = Float32Array.from({json.dumps([float(x) for x in values])});
const all = Uint16Array.from({{ length: 65536 }}, (_, i) => i);
console.log(JSON.stringify({{ bits: Array.from(toFloat16Bits(v)), back: Array.from(new Uint32Array(fromFloat16Bits(all).buffer)),
  nan: toFloat16Bits([NaN])[0] }}));
"""
    proc = subprocess.run([find_node().node, "--input-type=module", "-e", code], capture_output=True, text=True,
                          cwd=HARNESS_DIR, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(np.array(out["bits"], np.uint16), values.astype(np.float16).view(np.uint16))
    want = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    back = np.array(out["back"], np.uint32).view(np.float32)
    nan = np.isnan(want)
    assert np.isnan(back[nan]).all()
    np.testing.assert_array_equal(back[~nan].view(np.uint32), want[~nan].view(np.uint32))  # bit for bit: -0 too
    assert np.isnan(np.array([out["nan"]], np.uint16).view(np.float16)[0])


@pytest.mark.browser
def test_chromium_wasm_streams_equal_onnxruntime_python(tmp_path):
    """Silero (float and half files) and the float16 small model (Chromium has Float16Array: onnxruntime-web
    gives float16 outputs as one there, not as bits) in the page, against onnxruntime-python."""
    model = _tiny_model(tmp_path / "fp16.onnx")
    with ChromiumWasmRunner() as runner:
        _check_tiny(runner.run_stream(model, _tiny_protocol("float16"), [TINY_STREAM]), model, "float16")
        sent = _counting(runner)
        result = runner.run_stream(SILERO, PROTOCOL, STREAMS)
        assert sent.count("stream") == 1
        assert result.info["placement"]["providers"].keys() == {"CPUExecutionProvider"}
        _check_against_python(result, SILERO, PROTOCOL)
        _check_against_python(runner.run_stream(SILERO_HALF, PROTOCOL_HALF, STREAMS), SILERO_HALF, PROTOCOL_HALF)


@pytest.mark.browser
@pytest.mark.parametrize("cls", [ChromiumWebgpuRunner, ChromiumWebglRunner], ids=lambda c: c.name)
def test_chromium_gpu_backends_stream_a_model_they_run_whole(cls, tmp_path):
    """WebGPU and WebGL stream the small float32 model (WebGL with its symbolic dims pinned to the fed shapes);
    Silero does not fit either (WebGPU leaves nodes to the CPU provider, WebGL lacks its If): one RunnerError."""
    model = _tiny_model(tmp_path / "tiny.onnx", half=False)
    with cls() as runner:
        result = runner.run_stream(model, _tiny_protocol("float32"), [TINY_STREAM])
        _check_tiny(result, model, "float32", atol=1e-5)
        assert set(result.info["placement"]["providers"]) <= {"JsExecutionProvider", "webgl"}
        with pytest.raises(RunnerError, match="fell back from JsExecutionProvider|graph attribute is not supported"):
            runner.run_stream(SILERO, PROTOCOL, STREAMS[2:])
