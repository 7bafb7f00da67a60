"""The shipped JS modules (js_harness/lib), run in Node from pytest."""
import json
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.jsenv import HARNESS_DIR, find_node
from tests.e2e import ROOT

ROOT_MODEL = ROOT / "saved_models" / "voice_emotion_cnn.onnx"

pytestmark = pytest.mark.node


def node_eval(code: str) -> dict:
    """Run an ES-module snippet in the harness directory; it must print one JSON line."""
    proc = subprocess.run([find_node().node, "--input-type=module", "-e", code], capture_output=True, text=True,
                          cwd=HARNESS_DIR, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case, message", [
    ("silent", "silent"), ("nan", "non-finite"), ("empty", "empty"), ("mismatch", "differ in length"),
])
def test_preprocess_refuses_bad_audio(case, message):
    inputs = {"silent": "[new Float32Array(50000)]", "nan": "[Float32Array.from([0.1, NaN, 0.2])]",
              "empty": "[new Float32Array(0)]", "mismatch": "[new Float32Array(5), new Float32Array(6)]"}[case]
    out = node_eval(f"""
import {{ toModelInputs }} from './lib/preprocess.mjs';
const contract = {{sampleRate: 22050, inputLength: 46305, normalization: {{rms_level_db: 0, min_rms: 1e-6}}}};
try {{ toModelInputs({inputs}, 22050, contract); console.log(JSON.stringify({{ok: true}})); }}
catch (e) {{ console.log(JSON.stringify({{ok: false, error: e.message}})); }}
""")
    assert out["ok"] is False and message in out["error"]


def test_short_clip_gives_one_normalised_window():
    out = node_eval("""
import { toModelInputs, rms } from './lib/preprocess.mjs';
const contract = {sampleRate: 22050, inputLength: 46305, normalization: {rms_level_db: 0, min_rms: 1e-6}};
const x = Float32Array.from({length: 11025}, (_, i) => 0.01 * Math.sin(i / 7));
const r = toModelInputs([x], 22050, contract);
console.log(JSON.stringify({n: r.windows.length, len: r.windows[0].samples.length, rms: rms(r.windows[0].samples)}));
""")
    assert out == {"n": 1, "len": 46305, "rms": pytest.approx(1.0, rel=1e-5)}


def test_read_contract_matches_python_metadata(quick_release):
    from ser_export.export.metadata import read_metadata

    path = quick_release["out"] / "voice_emotion_cnn.onnx"
    out = node_eval(f"""
import {{ readFileSync }} from 'node:fs';
import {{ readContract }} from './lib/onnx_model.mjs';
const c = readContract(readFileSync({json.dumps(str(path))}));
console.log(JSON.stringify({{labels: c.labels, sampleRate: c.sampleRate, inputLength: c.inputLength, norm: c.normalization, meta: c.metadata}}));
""")
    meta = read_metadata(path)
    assert out["labels"] == meta["labels"] and out["sampleRate"] == 22050 and out["inputLength"] == 46305
    assert out["norm"] == meta["normalization"] and set(out["meta"]) == set(meta)


def test_read_contract_refuses_a_foreign_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    out = node_eval(f"""
import {{ readFileSync }} from 'node:fs';
import {{ readContract, pinDimensions }} from './lib/onnx_model.mjs';
const b = readFileSync({json.dumps(str(path))});
const errors = [];
for (const f of [() => readContract(b), () => pinDimensions(b, {{batch: 1}})]) {{
  try {{ f(); errors.push(null); }} catch (e) {{ errors.push(e.message); }}
}}
console.log(JSON.stringify({{errors}}));
""")
    assert "not a ser_export model" in out["errors"][0] and "no symbolic dimension" in out["errors"][1]


def test_pinned_model_loads_with_fixed_batch(quick_release, tmp_path):
    import onnxruntime as ort

    src = quick_release["out"] / "voice_emotion_cnn.onnx"
    dst = tmp_path / "pinned.onnx"
    node_eval(f"""
import {{ readFileSync, writeFileSync }} from 'node:fs';
import {{ pinDimensions }} from './lib/onnx_model.mjs';
writeFileSync({json.dumps(str(dst))}, pinDimensions(readFileSync({json.dumps(str(src))}), {{batch: 2}}));
console.log(JSON.stringify({{ok: true}}));
""")
    s = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert s.get_inputs()[0].shape == [2, 46305]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 46305)).astype(np.float32)
    np.testing.assert_array_equal(s.run(["output"], {"input": x})[0], ref.run(["output"], {"input": x})[0])


@pytest.fixture(scope="module")
def model_bytes():
    """A small model carrying the release model's metadata (the JS reader parses only the envelope)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 46305])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 46305])])
    model = helper.make_model(graph)
    model.metadata_props.extend(onnx.load(str(ROOT_MODEL), load_external_data=False).metadata_props)
    return model.SerializeToString()


def _read_contract(path, name):
    return node_eval(f"""
import {{ readFileSync }} from 'node:fs';
import {{ readContract, ModelFileError }} from './lib/onnx_model.mjs';
try {{
  const c = readContract(readFileSync({json.dumps(str(path))}), {json.dumps(name)});
  console.log(JSON.stringify({{ok: true, labels: c.labels}}));
}} catch (e) {{
  console.log(JSON.stringify({{ok: false, typed: e instanceof ModelFileError, message: e.message}}));
}}
""")


@settings(max_examples=8, deadline=None)
@given(fraction=st.floats(0.0, 0.999))
def test_a_truncated_model_is_a_clear_typed_error_in_js(model_bytes, tmp_path_factory, fraction):
    """What the demo and the JS module say for a model file cut short: one line naming it."""
    path = tmp_path_factory.mktemp("cut") / "m.onnx"
    path.write_bytes(model_bytes[:int(len(model_bytes) * fraction)])
    out = _read_contract(path, "voice_emotion_cnn.onnx")
    assert not out["ok"] and out["typed"], out
    assert out["message"].startswith("voice_emotion_cnn.onnx: ") and "\n" not in out["message"], out
    assert any(w in out["message"] for w in ("truncated", "empty", "no graph", "metadata")), out


def test_a_model_without_our_metadata_is_named_in_js(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    out = _read_contract(path, "other.onnx")
    assert out == {"ok": False, "typed": True,
                   "message": "other.onnx: its metadata has no 'labels': not a ser_export model"}
    whole = _read_contract(ROOT_MODEL, "m.onnx")  # and the released model reads
    assert whole["ok"] and len(whole["labels"]) == 7


def test_placement_is_read_from_onnxruntimes_log_and_a_fallback_is_found():
    """The package's placement rules (placement.mjs), which the browser runner and loadClassifier share:
    node counts summed per provider from onnxruntime's "Node placements" lines (all on one provider,
    or split when some nodes fell back), and the nodes off a backend's providers."""
    out = node_eval("""
import { placementFromLog, fallbacks, staticPlacement } from './packages/ser-export-web/src/placement.mjs';
const all = ['[I:onnxruntime:, session_state_utils.cc] Node placements',
  ' All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 53'];
const split = ['Node placements', ' Node(s) placed on [JsExecutionProvider]. Number of nodes: 50',
  '  Conv (conv1)', ' Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2', '  Cast (c1)',
  ' Node(s) placed on [JsExecutionProvider]. Number of nodes: 1'];
const p = (lines) => ({ providers: placementFromLog(lines), proven: true });
console.log(JSON.stringify({ all: placementFromLog(all), split: placementFromLog(split), none: placementFromLog(['x']),
  fellAll: fallbacks(p(all), 'webgpu'), fellSplit: fallbacks(p(split), 'webgpu'),
  fellWasm: fallbacks(staticPlacement('wasm'), 'wasm'), webgpuStatic: staticPlacement('webgpu') }));
""")
    assert out["all"] == {"WebGpuExecutionProvider": 53} and out["none"] is None
    assert out["split"] == {"JsExecutionProvider": 51, "CPUExecutionProvider": 2}
    assert out["fellAll"] == {} and out["fellWasm"] == {} and out["fellSplit"] == {"CPUExecutionProvider": 2}
    assert out["webgpuStatic"] is None  # webgpu can split a graph: it needs the log, never a fixed answer
