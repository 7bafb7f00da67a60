"""ser-export-web's block-wise form (src/blocks.mjs): a recording given block by block gives toModelInputs'
windows and classify's result on the whole array, bit for bit, with the same refusals (Node)."""
import json

import numpy as np
import pytest

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from tests.e2e import ROOT
from tests.js.test_js_modules import node_eval

pytestmark = pytest.mark.node

SRC = "./packages/ser-export-web/src"
MODEL = ROOT / "saved_models" / "voice_emotion_cnn.onnx"

SIGNAL = """
const contract = { sampleRate: 22050, inputLength: 46305, normalization: { rms_level_db: 0, min_rms: 1e-4 } };
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
// tones and noise with a stretch of digital silence (a silent window), `n` frames of `nch` channels
const signal = (n, nch, rate) => Array.from({ length: nch }, (_, c) => Float32Array.from({ length: n },
  (_, i) => (i > n / 3 && i < n / 3 + 100000 * rate / 22050) ? 0 : 0.3 * Math.sin(2 * Math.PI * (200 + 50 * c) * i / rate) + 0.05 * rnd()));
const blocksOf = (chans, sizes) => {  // blocks of the given sizes in turn; mono blocks as a Float32Array
  const out = [];
  for (let s = 0, k = 0; s < chans[0].length; s += sizes[k++ % sizes.length]) {
    const part = chans.map((c) => c.subarray(s, s + sizes[k % sizes.length]));
    out.push(part.length === 1 ? part[0] : part);
  }
  return out;
};
"""


@pytest.mark.parametrize("rate, channels, seconds, sizes, stretch", [
    (44100, 2, 7.3, [777, 5000, 1], 1000),    # 44.1 kHz stereo, blocks of changing sizes, some of one frame
    (16000, 1, 6.9, [1001], 2000),
    (22050, 1, 7.1, [999, 46305], 1000),      # the model's rate: no resampling
    (48000, 1, 2.2, [4096], 3000),
    (44101, 1, 3.1, [5000], 1000),            # down = 44101: a stretch spans whole periods of it
    (8000, 1, 1.0, [100], 64),                # upsampling, one window only
])
def test_block_inputs_are_to_model_inputs_of_the_whole_recording(rate, channels, seconds, sizes, stretch):
    out = node_eval(SIGNAL + f"""
import {{ BlockInputs }} from '{SRC}/blocks.mjs';
import {{ toModelInputs }} from '{SRC}/preprocess.mjs';
const chans = signal(Math.floor({seconds} * {rate}) + 3, {channels}, {rate});
const whole = toModelInputs(chans, {rate}, contract);
const inputs = new BlockInputs({rate}, contract, {{ stretchFrames: {stretch} }});
const got = [];
const blocks = blocksOf(chans, {json.dumps(sizes)});
for (const b of blocks) got.push(...inputs.push(b));
got.push(...inputs.finish());
const bytes = (w) => w.samples === null ? null : Buffer.from(w.samples.buffer).toString('base64');
console.log(JSON.stringify({{ blocks: blocks.length, duration: [inputs.durationSeconds, whole.durationSeconds],
  got: got.map((w) => [w.start, w.startSeconds, w.rms, bytes(w)]),
  whole: whole.windows.map((w) => [w.start, w.startSeconds, w.rms, bytes(w)]) }}));
""")
    assert out["blocks"] > 5 and out["duration"][0] == out["duration"][1]
    assert len(out["whole"]) >= 1 and out["got"] == out["whole"]   # starts, RMS and every sample's bits
    if seconds > 4:
        assert any(w[3] is None for w in out["whole"]) and any(w[3] is not None for w in out["whole"])


@pytest.mark.parametrize("case", ["nan_late", "empty", "silent", "mismatch", "bad_rate"])
def test_block_inputs_refuse_what_to_model_inputs_refuses_with_the_same_error(case):
    chans, rate = {
        "nan_late": ("(() => { const c = signal(60000, 2, 44100); c[1][45123] = NaN; return c; })()", 44100),
        "empty": ("[new Float32Array(0)]", 22050),
        "silent": ("[new Float32Array(120000)]", 16000),
        "mismatch": ("[new Float32Array(5000), new Float32Array(5001)]", 44100),
        "bad_rate": ("signal(3000, 1, 44100)", 44100.5),
    }[case]
    out = node_eval(SIGNAL + f"""
import {{ BlockInputs }} from '{SRC}/blocks.mjs';
import {{ toModelInputs }} from '{SRC}/preprocess.mjs';
const chans = {chans};
const attempt = (fn) => {{ try {{ fn(); return null; }} catch (e) {{ return [e.name, e.message]; }} }};
const whole = attempt(() => toModelInputs(chans, {rate}, contract));
const blocks = attempt(() => {{
  const inputs = new BlockInputs({rate}, contract, {{ stretchFrames: 1000 }});
  for (const b of blocksOf(chans, [4096])) inputs.push(b);
  inputs.finish();
}});
console.log(JSON.stringify({{ whole, blocks }}));
""")
    assert out["whole"] is not None and out["blocks"] == out["whole"], out


@pytest.fixture(scope="module")
def speech_f32(tmp_path_factory):
    """~14 s at 44.1 kHz stereo (planar float32): speech, digital silence, noise, speech."""
    import librosa

    speaker = make_speakers(2, 9)[1]
    speech = np.concatenate([synthesize(speaker, e, clip_rng(9, 1, i, 0)) for i, e in enumerate(["angry", "sad"])])
    y = np.concatenate([speech, np.zeros(2 * 46305 + 1000), 0.1 * np.random.default_rng(0).standard_normal(30000),
                        speech[:40001]])
    mono = librosa.resample(y, orig_sr=22050, target_sr=44100).astype(np.float32)
    path = tmp_path_factory.mktemp("speech") / "speech.f32"
    np.stack([mono, 0.6 * mono]).astype(np.float32).tofile(path)
    return path, mono.size


def test_classify_stream_is_classify_on_the_whole_recording(speech_f32):
    """The committed release's model on wasm: classifyStream with 1000-frame async blocks, 3000-frame
    stretches and batches of 2 windows, and with its defaults, gives classify's JSON exactly (every
    probability, score and fraction the same double) and the same log-mel (the windows' other rates are
    test_block_inputs_are_to_model_inputs_of_the_whole_recording's)."""
    path, n = speech_f32
    out = node_eval(f"""
import {{ readFileSync }} from 'node:fs';
import {{ loadClassifier }} from '{SRC}/index.mjs';
const buf = readFileSync({json.dumps(str(path))});
const flat = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const chans = [flat.slice(0, {n}), flat.slice({n})];
const clf = await loadClassifier({json.dumps(str(MODEL))}, {{ backend: 'wasm', proveBackend: false }});
async function* blocks(size) {{
  for (let s = 0; s < chans[0].length; s += size) yield chans.map((c) => c.subarray(s, s + size));
}}
const strip = (r) => {{ const {{ ms, logmel, ...rest }} = r; return rest; }};
const whole = await clf.classify(chans, 44100, {{ logmel: true }});
const stream = await clf.classifyStream(blocks(1000), 44100, {{ batchWindows: 2, stretchFrames: 3000, logmel: true }});
const defaults = await clf.classifyStream(blocks(65536), 44100);
const same = (a, b) => a.dims.join() === b.dims.join() && a.windows.length === b.windows.length
  && a.windows.every((w, i) => w.start_s === b.windows[i].start_s && w.rms === b.windows[i].rms
    && Buffer.compare(Buffer.from(w.data.buffer), Buffer.from(b.windows[i].data.buffer)) === 0);
await clf.release();
console.log(JSON.stringify({{ whole: strip(whole), stream: strip(stream), defaults: strip(defaults),
  logmel: same(stream.logmel, whole.logmel), logmelWindows: whole.logmel.windows.length, noLogmel: !('logmel' in defaults) }}));
""")
    whole = out["whole"]
    verdicts = [w["verdict"] for w in whole["windows"]]
    assert len(verdicts) == 6 and {"silent", "no_speech", "classified"} <= set(verdicts), verdicts
    assert out["stream"] == whole and out["defaults"] == whole
    assert out["logmel"] is True and out["logmelWindows"] == sum(v != "silent" for v in verdicts) and out["noLogmel"]


def test_block_inputs_hold_no_more_for_a_longer_recording():
    """The largest ArrayBuffer memory while 2 and 8 minutes of 16 kHz audio go through BlockInputs in 1 s blocks
    (made on the fly, each window dropped once made): the same within 1 MiB (8 minutes at 22.05 kHz are
    42 MiB of float32)."""
    out = node_eval(SIGNAL + f"""
import {{ BlockInputs }} from '{SRC}/blocks.mjs';
const peak = (minutes) => {{
  const inputs = new BlockInputs(16000, contract);
  let max = 0, windows = 0;
  const step = (ws) => {{ windows += ws.length; max = Math.max(max, process.memoryUsage().arrayBuffers); }};
  for (let s = 0; s < minutes * 60; s++) step(inputs.push(signal(16000, 1, 16000)[0]));
  step(inputs.finish());
  return {{ max, windows }};
}};
peak(1);
const a = peak(2), b = peak(8);
console.log(JSON.stringify({{ a, b }}));
""")
    assert out["b"]["windows"] > 4 * out["a"]["windows"] - 4
    growth = out["b"]["max"] - out["a"]["max"]
    assert growth < 1 << 20, f"{growth / 2**20:.1f} MiB more at 8 minutes than at 2"
