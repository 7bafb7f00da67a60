"""``loadClassifier(model, {variant})`` in ser-export-web: the variant's file beside the model, the names the
Python side makes (:data:`ser_export.export.variants.VARIANTS`), and the committed int8s variant giving
``predict --variant int8s``'s decision in Node."""
import json
import subprocess

import numpy as np
import pytest

from ser_export.export.variants import VARIANTS
from ser_export.jsenv import HARNESS_DIR, find_node
from tests.e2e import ROOT

pytestmark = pytest.mark.node

INDEX = HARNESS_DIR / "packages" / "ser-export-web" / "src" / "index.mjs"


def node_eval(code: str) -> dict:
    proc = subprocess.run([find_node().node, "--input-type=module", "-e", code], capture_output=True, text=True,
                          cwd=HARNESS_DIR, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_variant_names_are_the_python_side_s_and_each_names_the_file_beside_the_model():
    out = node_eval(f"""
import {{ VARIANTS, variantSource }} from {json.dumps(INDEX.as_uri())};
const tryIt = (f) => {{ try {{ return f(); }} catch (e) {{ return `${{e.name}}: ${{e.message}}`; }} }};
console.log(JSON.stringify({{
  names: VARIANTS,
  path: variantSource('models/voice_emotion_cnn.onnx', 'int8s'),
  url: variantSource(new URL('https://x.org/m/voice_emotion_cnn_resnet.onnx?v=3#a'), 'fp16').href,
  query: variantSource('/m/a.onnx?v=3', 'int8'),
  none: variantSource('a.onnx', undefined),
  unknown: tryIt(() => variantSource('a.onnx', 'int4')),
  bytes: tryIt(() => variantSource(new Uint8Array(4), 'int8s')),
  notOnnx: tryIt(() => variantSource('a.bin', 'int8s')),
}}));
""")
    assert out["names"] == list(VARIANTS)
    assert out["path"] == "models/voice_emotion_cnn.int8s.onnx"
    assert out["url"] == "https://x.org/m/voice_emotion_cnn_resnet.fp16.onnx?v=3#a"
    assert out["query"] == "/m/a.int8.onnx?v=3" and out["none"] == "a.onnx"
    assert out["unknown"].startswith("TypeError: variant must be one of fp16, int8, int8s")
    assert "give the model as a URL or path" in out["bytes"] and "does not end in .onnx" in out["notOnnx"]


def test_load_classifier_runs_the_committed_int8s_variant_with_predict_s_decision(tmp_path):
    import soundfile as sf

    from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
    from ser_export.predict import predict_file

    model = ROOT / "saved_models" / "voice_emotion_cnn.onnx"
    speaker = make_speakers(2, 9)[0]
    y = (0.2 * synthesize(speaker, "angry", clip_rng(9, 0, 1, 1))).astype(np.float32)
    wav = tmp_path / "clip.wav"
    sf.write(str(wav), y, 22050, subtype="FLOAT")
    py = predict_file(wav, model, variant="int8s").to_dict()
    f32 = tmp_path / "clip.f32"
    f32.write_bytes(np.ascontiguousarray(y, np.float32).tobytes())
    out = node_eval(f"""
import {{ readFileSync }} from 'node:fs';
import {{ loadClassifier }} from {json.dumps(INDEX.as_uri())};
const clf = await loadClassifier({json.dumps(str(model))}, {{ variant: 'int8s', worker: false }});
const buf = readFileSync({json.dumps(str(f32))});
const r = await clf.classify(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), 22050);
await clf.release();
console.log(JSON.stringify({{ top: r.top, windows: r.windows.map((w) => w.top) }}));
""")
    assert out["windows"] == [w["top"] for w in py["windows"]] and out["top"] == py["top"]
