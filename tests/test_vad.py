"""Voice activity (ser_export.vad): the resampler, Silero's frames and the window decision."""
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from ser_export import contract
from ser_export.audio import prepare_clip, rms_normalize
from ser_export.data import synthetic
from ser_export.errors import SerExportError
from ser_export.vad import (VadParams, VoiceActivity, find_vad_file, is_speech, packaged_vad_path,
                            kaiser_sinc_table, resample_poly_kaiser, resampled_length, speech_fraction)
from ser_export.io import sha256_file


@pytest.fixture(scope="module")
def vad():
    return VoiceActivity(VadParams(sha256=sha256_file(packaged_vad_path())))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(22050, 16000), (44100, 16000), (48000, 16000), (16000, 22050), (8000, 16000)]),
       st.floats(50, 3000), st.floats(0, 2 * np.pi))
def test_resampler_keeps_a_tone_below_the_cutoff(rates, freq, phase):
    sr_from, sr_to = rates
    n = sr_from // 2
    y = np.sin(2 * np.pi * freq * np.arange(n) / sr_from + phase)
    out = resample_poly_kaiser(y, sr_from, sr_to)
    assert out.shape == (resampled_length(n, sr_from, sr_to),) and out.dtype == np.float32
    expected = np.sin(2 * np.pi * freq * np.arange(out.size) / sr_to + phase)
    edge = sr_to // 20  # the zero padding beyond the ends bends the first and last 50 ms
    err = np.abs(out[edge:-edge] - expected[edge:-edge]).max()
    assert err < 2e-3, f"{sr_from}->{sr_to} Hz, {freq:.1f} Hz tone: max error {err:.3g}"


def _resample_tap_by_tap(y: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """The documented sum, evaluated tap by tap in float64 as the JavaScript does."""
    table, half, up, down = kaiser_sinc_table(sr_from, sr_to)
    n = y.shape[-1]
    n_out = resampled_length(n, sr_from, sr_to)
    num = np.arange(n_out, dtype=np.int64) * down
    centre, phase = num // up, num % up
    padded = np.zeros(y.shape[:-1] + (n + 2 * half + 1,))
    padded[..., half:half + n] = y
    out = np.zeros(y.shape[:-1] + (n_out,))
    for i in range(2 * half):
        out += padded[..., centre + 1 + i] * table[phase, i]
    return out.astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([(22050, 16000), (44100, 16000), (48000, 16000), (16000, 22050), (8000, 16000),
                        (22050, 8000), (16000, 48000)]),
       st.integers(1, 3000), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_the_polyphase_resampler_is_the_tap_by_tap_sum(rates, n, rows, seed):
    """scipy's upfirdn computes the documented sum (the one JavaScript adds up tap by tap), to float32
    rounding, for every length including those shorter than the filter, and for batches."""
    sr_from, sr_to = rates
    y = np.random.default_rng(seed).standard_normal((rows, n))
    fast, slow = resample_poly_kaiser(y, sr_from, sr_to), _resample_tap_by_tap(y, sr_from, sr_to)
    assert fast.shape == slow.shape == (rows, resampled_length(n, sr_from, sr_to))
    ulps = np.abs(fast - slow) / np.spacing(np.maximum(np.abs(slow), np.float32(1e-30)))
    note(f"{sr_from}->{sr_to} Hz, n {n}, rows {rows}, seed {seed}: worst {ulps.max():.2f} float32 ulp")
    assert ulps.max() <= 1.0


def test_resampler_removes_what_the_new_rate_cannot_hold():
    n = 22050
    y = np.sin(2 * np.pi * 10000 * np.arange(n) / 22050)   # above 8 kHz: must vanish at 16 kHz
    out = resample_poly_kaiser(y, 22050, 16000)
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 1e-3


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5000), st.sampled_from([(22050, 16000), (48000, 16000), (16000, 16000)]))
def test_resampled_length_is_the_ceiling(n, rates):
    sr_from, sr_to = rates
    assert resampled_length(n, sr_from, sr_to) == int(np.ceil(n * sr_to / sr_from - 1e-9))
    assert resample_poly_kaiser(np.zeros(n), sr_from, sr_to).size == resampled_length(n, sr_from, sr_to)


def test_a_model_window_has_66_frames_of_32_ms():
    p = VadParams(sha256="0" * 64)
    assert p.n_frames(contract.N_SAMPLES, contract.SAMPLE_RATE) == 66  # 33600 samples at 16 kHz / 512


def test_synthetic_speech_is_speech_and_noise_chord_clicks_are_not(vad):
    speakers = synthetic.make_speakers(4, 3)
    speech = np.stack([prepare_clip(synthetic.synthesize(s, e, synthetic.clip_rng(3, i, j, 0)))
                       for i, s in enumerate(speakers) for j, e in enumerate(["neutral", "angry", "happy"])])
    n, sr = contract.N_SAMPLES, contract.SAMPLE_RATE
    t = np.arange(n) / sr
    rng = np.random.default_rng(0)
    clicks = np.zeros(n)
    clicks[:: int(0.2 * sr)] = 1.0
    others = np.stack([rms_normalize(x) for x in (
        rng.standard_normal(n), sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)), clicks)])
    assert is_speech(vad.frame_probabilities(speech, sr), vad.params).all()
    frames = vad.frame_probabilities(others, sr)
    assert not is_speech(frames, vad.params).any(), speech_fraction(frames, vad.params.threshold)


def test_a_window_alone_scores_as_inside_a_batch(vad):
    rng = np.random.default_rng(1)
    speaker = synthetic.make_speakers(2, 4)[1]
    x = np.stack([prepare_clip(synthetic.synthesize(speaker, "sad", synthetic.clip_rng(4, 1, 2, 0))),
                  rms_normalize(rng.standard_normal(contract.N_SAMPLES))])
    together = vad.frame_probabilities(x, contract.SAMPLE_RATE)
    alone = np.concatenate([vad.frame_probabilities(x[i:i + 1], contract.SAMPLE_RATE) for i in range(2)])
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_the_decision_is_the_fraction_of_frames_over_the_threshold():
    p = VadParams(sha256="0" * 64, threshold=0.5, min_speech_fraction=0.25)
    frames = np.array([[0.9, 0.1, 0.1, 0.1], [0.5, 0.2, 0.2, 0.2], [0.49, 0.49, 0.49, 0.49]])
    np.testing.assert_array_equal(speech_fraction(frames, 0.5), [0.25, 0.25, 0.0])
    np.testing.assert_array_equal(is_speech(frames, p), [True, True, False])


def test_a_vad_file_with_another_checksum_is_refused(tmp_path):
    with pytest.raises(SerExportError, match="no silero_vad.onnx with sha256 ffffffffffff"):
        find_vad_file("f" * 64, near=tmp_path / "model.onnx")
    assert find_vad_file(sha256_file(packaged_vad_path())) == packaged_vad_path()


def test_finding_the_silero_file_leaves_torch_s_threads_alone():
    """``import silero_vad`` sets torch to one thread; the build must never import it (training would run
    on one core and give other numbers)."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(2); from ser_export.vad import packaged_vad_path, VoiceActivity, "
            "VadParams; from ser_export.io import sha256_file; p = packaged_vad_path(); VoiceActivity(VadParams(sha256=sha256_file(p)), path=p); "
            "import sys; print(torch.get_num_threads(), 'silero_vad' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "False"]


def test_the_copy_beside_a_model_is_read_only_from_inside_its_folder(tmp_path):
    """A silero_vad.onnx beside the model that links out of the folder is never used (nor read): the wheel's is."""
    sha = sha256_file(packaged_vad_path())
    folder = tmp_path / "release"
    folder.mkdir()
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(packaged_vad_path().read_bytes())   # the right bytes: only the guard can refuse them
    (folder / "silero_vad.onnx").symlink_to(outside)
    assert find_vad_file(sha, near=folder / "model.onnx") == packaged_vad_path()
    (folder / "silero_vad.onnx").unlink()
    (folder / "silero_vad.onnx").write_bytes(outside.read_bytes())
    assert find_vad_file(sha, near=folder / "model.onnx") == folder / "silero_vad.onnx"
