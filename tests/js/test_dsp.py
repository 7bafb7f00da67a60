"""The package's numeric kernels (js_harness/packages/ser-export-web/src/dsp.mjs): the one resampler,
which both the preprocessing and the VAD's input use, and the one softmax; against Python's."""
import json
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ser_export.jsenv import HARNESS_DIR
from tests.js.test_js_modules import node_eval

pytestmark = pytest.mark.node

DSP = "./packages/ser-export-web/src/dsp.mjs"


def _write_f32(path, x: np.ndarray) -> str:
    np.ascontiguousarray(x, np.float32).tofile(path)
    return json.dumps(str(path))


READ_F32 = """
import { readFileSync } from 'node:fs';
const readF32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
"""


def test_resampler_keeps_a_tone_and_removes_what_cannot_be_represented():
    out = node_eval(f"""
import {{ resamplePolyKaiser }} from '{DSP}';
const fs = 44100, n = 44100;
const tone = (f) => Float32Array.from({{length: n}}, (_, i) => Math.sin(2 * Math.PI * f * i / fs));
const a = resamplePolyKaiser(tone(1000), fs, 22050);
const b = resamplePolyKaiser(tone(15000), fs, 22050);  // above the new Nyquist: must vanish
const rmsOf = (x) => Math.sqrt(x.slice(2000, -2000).reduce((s, v) => s + v * v, 0) / (x.length - 4000));
let err = 0;
for (let j = 2000; j < a.length - 2000; j++) err = Math.max(err, Math.abs(a[j] - Math.sin(2 * Math.PI * 1000 * j / 22050)));
console.log(JSON.stringify({{len: a.length, err, alias: rmsOf(b)}}));
""")
    assert out["len"] == 22050
    assert out["err"] < 2e-3          # passband: the tone comes through
    assert out["alias"] < 1e-3        # stopband: no aliasing of 15 kHz into 7.05 kHz


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(22050, 16000), (48000, 16000), (44100, 16000)]),
       st.integers(100, 6000))
def test_the_vad_input_is_python_s_resampler_to_float32_rounding(tmp_path_factory, seed, rates, n):
    """VoiceActivity.vadInput (gain, then dsp.mjs's resampler) and ser_export.vad.resample_poly_kaiser: the
    same formula, evaluated in float64 in the same order, so they agree to float32 rounding."""
    from ser_export.vad import resample_poly_kaiser

    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    sr_from, sr_to = rates
    f = _write_f32(tmp_path_factory.mktemp("vad") / "x.f32", x)
    out = node_eval(READ_F32 + f"""
import {{ VoiceActivity }} from './lib/postprocess.mjs';
const params = {{ sample_rate: {sr_to}, gain_db: -20, resampler: {{ zeros: 32, rolloff: 0.97, beta: 8.6 }} }};
console.log(JSON.stringify(Array.from(VoiceActivity.prototype.vadInput.call({{ params }}, readF32({f}), {sr_from}))));
""")
    expected = resample_poly_kaiser(x.astype(np.float64) * 0.1, sr_from, sr_to)
    got = np.asarray(out, np.float32)
    assert got.shape == expected.shape
    err = float(np.abs(got - expected).max())
    assert err <= 1e-7, f"seed {seed}, {sr_from}->{sr_to} Hz, n {n}: max |JS - Python| {err:.3g}"


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([8000, 16000, 44100, 48000, 96000]), st.integers(3000, 60000))
@example(seed=1, sr=48000, n=100801)  # 46305.46 samples at 22050 Hz: ceil 46306 (Python), not 46305
def test_the_preprocessing_resamples_with_the_same_resampler(tmp_path_factory, seed, sr, n):
    """toModelInputs at another rate: the recording's length at the model's rate is Python's
    (ceil(n * 22050 / sr), what librosa gives ``predict``), and its windows are
    ser_export.vad.resample_poly_kaiser's, cut and RMS-normalised."""
    from ser_export.audio import model_windows, to_mono
    from ser_export.vad import resample_poly_kaiser, resampled_length

    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    f = _write_f32(tmp_path_factory.mktemp("pre") / "x.f32", x)
    out = node_eval(READ_F32 + f"""
import {{ toModelInputs }} from './lib/preprocess.mjs';
const contract = {{ sampleRate: 22050, inputLength: 46305, normalization: {{ rms_level_db: 0, min_rms: 1e-6 }} }};
const r = toModelInputs([readF32({f})], {sr}, contract);
console.log(JSON.stringify({{ duration: r.durationSeconds, starts: r.windows.map((w) => w.start),
  windows: r.windows.map((w) => Array.from(w.samples)) }}));
""")
    length = resampled_length(n, sr, 22050)
    assert length == to_mono(x[:, None], sr).size  # what predict resamples to
    assert out["duration"] == length / 22050
    starts, windows = model_windows(resample_poly_kaiser(x, sr, 22050), 46305, 0.0, 1e-6)
    assert out["starts"] == starts
    np.testing.assert_allclose(np.asarray(out["windows"], np.float32), np.stack(windows), rtol=1e-5, atol=1e-6)


def test_softmax_is_python_s_calibrated_probabilities():
    """dsp.mjs's softmax(logits, temperature) against ser_export.postprocess.calibrated_probabilities;
    finite for logits far from zero (the largest is subtracted first)."""
    from ser_export.postprocess import calibrated_probabilities

    logits = [[0.5, -1.25, 3.0, 0.0], [1000.0, 999.0, -1000.0, 998.5], [-700.0, -701.0, -702.0, -750.0]]
    out = node_eval(f"""
import {{ softmax }} from '{DSP}';
const logits = {json.dumps(logits)};
console.log(JSON.stringify([1, 0.5, 1.7].map((t) => logits.map((l) => softmax(Float32Array.from(l), t)))
  .concat([logits.map((l) => softmax(l))])));
""")
    for got, t in zip(out, [1, 0.5, 1.7, 1]):
        expected = calibrated_probabilities(np.asarray(logits, np.float32), t)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-300)


KERNEL = re.compile(r"\b(?:function\s+|const\s+|let\s+)(softmax|calibratedProbabilities|besselI0|resample\w*|"
                    r"kaiser\w*)\b", re.IGNORECASE)


def test_the_kernels_have_one_home():
    """No module of the harness or the package defines a softmax, a resampler or a Kaiser window of its
    own: they import dsp.mjs's."""
    homes = {}
    for path in HARNESS_DIR.rglob("*.mjs"):
        if "node_modules" in path.parts:
            continue
        for name in KERNEL.findall(path.read_text()):
            homes.setdefault(name.lower(), set()).add(path.relative_to(HARNESS_DIR).as_posix())
    assert homes and set().union(*homes.values()) == {"packages/ser-export-web/src/dsp.mjs"}, homes
