"""ser-export-web's live hop logic (src/listen.mjs: liveInputs, LiveWindow), in Node: the live window's model
input is toModelInputs' bit for bit, each hop's result is classify's on the same window, and a hop older than a
hop is dropped, by the AudioContext's clock or, in the worker, by the clock estimated from the arrivals."""
import pytest

from tests.e2e import ROOT
from tests.js.test_js_modules import node_eval

pytestmark = pytest.mark.node

SRC = "./packages/ser-export-web/src"
MODEL = ROOT / "saved_models" / "voice_emotion_cnn.onnx"

SIGNAL = """
let seed = 7;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const signal = (n) => Float32Array.from({ length: n }, (_, i) => 0.2 * Math.sin(2 * Math.PI * 180 * i / 22050)
  * (1 + Math.sin(i / 3000)) + 0.02 * rnd());
"""


def test_live_inputs_are_to_model_inputs_bit_for_bit():
    out = node_eval(f"""
import {{ liveInputs }} from '{SRC}/listen.mjs';
import {{ toModelInputs }} from '{SRC}/preprocess.mjs';
{SIGNAL}
const contract = {{ sampleRate: 22050, inputLength: 46305, normalization: {{ rms_level_db: -20, min_rms: 1e-4 }} }};
const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const x = signal(46305);
const live = liveInputs(x, 22050, contract)[0];
const ref = toModelInputs([x], 22050, contract).windows[0];
const y = signal(100801);
const at48 = liveInputs(y, 48000, contract);                     // another rate: toModelInputs' first window
const ref48 = toModelInputs([y], 48000, contract).windows[0];
const errs = [];
for (const bad of [new Float32Array(46305), Float32Array.from(x, (v, i) => (i === 9 ? NaN : v))]) {{
  try {{ liveInputs(bad, 22050, contract); errs.push(null); }} catch (e) {{ errs.push(e.name); }}
}}
console.log(JSON.stringify({{ same: same(live.samples, ref.samples), rms: live.rms === ref.rms,
  same48: at48.length === 1 && same(at48[0].samples, ref48.samples), errs }}));
""")
    assert out == {"same": True, "rms": True, "same48": True, "errs": ["SilentAudioError", "InvalidAudioError"]}


def test_each_hop_gives_classifys_result_on_its_window_and_stale_hops_are_dropped():
    out = node_eval(f"""
import {{ loadClassifier }} from '{SRC}/index.mjs';
import {{ LiveWindow }} from '{SRC}/listen.mjs';
{SIGNAL}
const clf = await loadClassifier({str(MODEL)!r}, {{ threads: 1 }});
const hop = 11025;
const x = signal(8 * hop);
const got = [];
let now = 0;
const lw = new LiveWindow(clf, {{ rate: 22050, hopSeconds: 0.5, clock: () => now, emit: (m) => got.push(m) }});
await lw.warm();
const settle = async (w) => {{ while (w.busy) await new Promise((r) => setTimeout(r, 1)); }};
for (let k = 0; k < 8; k++) {{
  const time = ((k + 1) * hop) / 22050;
  now = k === 5 ? time + 0.6 : time;                       // hop 5 is read 0.6 s late: stale
  lw.push(x.slice(k * hop, (k + 1) * hop), time);
  await settle(lw);
}}
const results = got.filter((m) => m.type === 'result');
const same = [];
for (const r of results) {{
  const end = r.result.index + 1;
  const ref = await clf.classify(x.slice(end * hop - 46305, end * hop), 22050);
  same.push(JSON.stringify(r.result.windows) === JSON.stringify(ref.windows) && r.result.top === ref.top);
}}
// in a worker (no clock given): the smallest delay between a hop's audio time and its arrival is the
// reference; a hop that arrives 0.7 s later than that is stale, one 0.1 s later is not
const est = [];
const lw2 = new LiveWindow(clf, {{ rate: 22050, hopSeconds: 0.5, emit: (m) => est.push(m.type) }});
const sec = () => performance.now() / 1000;
lw2.push(x.slice(0, 46305), sec() - 2);
await settle(lw2);
lw2.push(x.slice(46305, 46305 + hop), sec() - 2.7);
lw2.push(x.slice(46305 + hop, 46305 + 2 * hop), sec() - 2.1);
await settle(lw2);
console.log(JSON.stringify({{ types: got.map((m) => m.type), indices: results.map((r) => r.result.index), same,
  timed: results.every((r) => ['preprocessMs', 'modelMs', 'vadMs', 'postprocessMs', 'computeMs']
    .every((k) => r.result.timings[k] >= 0) && r.result.timings.thread === 'main'), est }}));
""")
    # hops 0-3 do not fill a window; 4 classified, 5 read 0.6 s late (dropped), 6 and 7 classified
    assert out["types"] == ["result", "drop", "result", "result"] and out["indices"] == [4, 6, 7], out
    assert all(out["same"]) and out["timed"], out
    assert out["est"] == ["result", "drop", "result"], out
