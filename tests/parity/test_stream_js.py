"""The stream stages on the JS runtimes (onnxruntime-web in Node, onnxruntime-node): a Silero file passes against
silero_vad.jit with the state after the last chunk compared between runtimes, and the first divergent node is
found between two runtimes on a chunk (the probe run through Runner.run_stream)."""
import pytest

from parity.config import GateConfig
from parity.foreign import verify_model
from parity.runners import RUNNERS
from parity.stream_cases import draw_streams, render_stream
from parity.stream_check import StreamCheck
from parity.stream_localize import first_divergence_on_chunk
from parity.stream_table import CONTRACT_OF, CONTRACTS, wheel_data
from ser_export.stream_contract import read_contract
from tests.e2e import ROOT

pytestmark = pytest.mark.node

CONTRACT = read_contract(ROOT / "parity" / "contracts" / "silero_vad.toml")


@pytest.mark.parametrize("name", sorted(n for n in CONTRACT_OF if n != "silero_vad_half.onnx"))
def test_every_float_silero_file_passes_on_the_js_runtimes_with_their_states_compared(name, tmp_path):
    """Done-when 1 per file on onnxruntime-web-wasm (Node) and onnxruntime-node, with the contract the table uses
    (the fixed-shape openvino file and the sequence file's h/c states included); short streams."""
    contract = read_contract(CONTRACTS / f"{CONTRACT_OF[name]}.toml")
    cfg = GateConfig(runtimes=("onnxruntime-python", "onnxruntime-web-wasm", "onnxruntime-node"),
                     counterexample_dir=tmp_path)
    report = verify_model(wheel_data() / name, contract, cfg, torch_factory=str(wheel_data() / "silero_vad.jit"),
                          streams=StreamCheck(streams=2, seed=0, seconds=(1.0, 1.5), long_seconds=None))
    assert report.exit_code == 0, report.summary_lines()
    stages = {(r.stage, r.runner): r for r in report.models[0].results}
    score = contract.scores[0].name
    for runtime in ("onnxruntime-web-wasm", "onnxruntime-node"):
        for stage in (f"stream[{score}]", f"decisions[{score}]", f"segments[{score}]"):
            r = stages[(stage, runtime)]
            assert r.applicable and r.passed and r.against == "pytorch" and r.n_cases == 2, r.message()
        for state in contract.states:
            r = stages[(f"stream_state[{state.output}]", runtime)]
            assert r.applicable and r.passed and r.against == "onnxruntime-python", r.message()


def test_the_first_divergent_node_between_two_runtimes_on_a_chunk():
    y = render_stream(draw_streams(1, 0, 16000, 512, long_seconds=None)[0])[:5 * 512]
    python = RUNNERS["onnxruntime-python"](threads=1)
    web = RUNNERS["onnxruntime-web-wasm"](threads=1, timeout_s=120)
    try:
        model = wheel_data() / "silero_vad.onnx"
        wire = CONTRACT.to_wire()
        none = first_divergence_on_chunk(model, wire, y, python, web, 1e-3)
        tiny = first_divergence_on_chunk(model, wire, y, python, web, 1e-7)
    finally:
        web.deactivate()
    assert none["node"] is None and none["checked"] > 50 and none["chunk"] == 4
    assert tiny["node"] and tiny["between"] == "onnxruntime-web-wasm vs onnxruntime-python"
    assert 1e-7 < tiny["relative_error"] < 1e-3 and tiny["chunk"] == 4


def test_a_declared_sequence_form_without_onnxruntime_python_is_not_checked(tmp_path):
    contract = read_contract(ROOT / "parity" / "contracts" / "silero_vad_16k_sequence.toml")
    cfg = GateConfig(runtimes=("onnxruntime-node",), counterexample_dir=tmp_path)
    report = verify_model(wheel_data() / "silero_vad_16k_sequence.onnx", contract, cfg,
                          torch_factory=str(wheel_data() / "silero_vad.jit"),
                          streams=StreamCheck(streams=2, seed=0, long_seconds=None))
    assert report.exit_code == 2 and not report.mismatches()
    assert report.errors() == ["the whole-sequence form: not checked (run on onnxruntime-python, not among the "
                               "runtimes)"]
    assert {(r.stage, r.runner) for r in report.models[0].results if r.passed} >= {("stream[speech_probs]",
                                                                                   "onnxruntime-node")}


@pytest.mark.browser
def test_a_silero_file_passes_on_chromium_wasm(tmp_path):
    cfg = GateConfig(runtimes=("onnxruntime-python", "chromium-wasm"), counterexample_dir=tmp_path)
    report = verify_model(wheel_data() / "silero_vad.onnx", CONTRACT, cfg,
                          torch_factory=str(wheel_data() / "silero_vad.jit"),
                          streams=StreamCheck(streams=3, seed=0, long_seconds=None))
    assert report.exit_code == 0, report.summary_lines()
    stages = {(r.stage, r.runner): r for r in report.models[0].results}
    assert stages[("stream[output]", "chromium-wasm")].passed and stages[("decisions[output]", "chromium-wasm")].passed
    assert stages[("stream_state[stateN]", "chromium-wasm")].applicable
