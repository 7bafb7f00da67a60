import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from ser_export import contract
from ser_export.audio import (fit_length, load_audio, loudest_window, prepare_clip, read_audio, rms, rms_normalize,
                              windows)
from ser_export.errors import AudioError, SilentAudioError
from tests.conftest import write_wav

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@given(arrays(np.float32, st.integers(1, 5000), elements=finite))
def test_rms_normalize_gives_unit_rms_or_refuses_silence(y):
    if rms(y) < contract.MIN_RMS:
        with pytest.raises(SilentAudioError, match="silent"):
            rms_normalize(y)
    else:
        out = rms_normalize(y)
        assert out.dtype == np.float32
        assert rms(out) == pytest.approx(1.0, rel=1e-5)


def test_rms_normalize_matches_the_original_formula(rng):
    y = rng.standard_normal(1000)
    r = 10 ** (0 / 10)
    a = np.sqrt(len(y) * r ** 2 / np.sum(y ** 2))
    np.testing.assert_allclose(rms_normalize(y), (y * a).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
    y = np.ones(100, dtype=np.float32)
    y[37] = bad
    with pytest.raises(AudioError, match="non-finite.*index 37"):
        rms_normalize(y)


def test_empty_clip_is_refused():
    with pytest.raises(AudioError, match="empty"):
        rms_normalize(np.zeros(0, dtype=np.float32))


@given(st.integers(1, 100_000), st.integers(0, 2**31 - 1))
def test_fit_length(n, seed):
    y = np.arange(1, n + 1, dtype=np.float32)
    out = fit_length(y, 46305, np.random.default_rng(seed))
    assert out.shape == (46305,)
    if n >= 46305:  # a contiguous crop
        assert np.all(np.diff(out) == 1)
    else:  # the whole clip, zero-padded
        assert np.count_nonzero(out) == n


def test_prepare_clip_meets_the_contract(rng):
    y = np.concatenate([np.zeros(5000), rng.standard_normal(30000) * 0.1, np.zeros(5000)])
    out = prepare_clip(y, rng)
    assert out.shape == (contract.N_SAMPLES,) and rms(out) == pytest.approx(1.0, rel=1e-5)


def test_windows_cover_long_files_and_drop_tiny_tails():
    y = np.ones(46305 * 2 + 100, dtype=np.float32)
    starts = [s for s, _ in windows(y)]
    assert starts == [0, 46305]
    y = np.ones(46305 * 2 + 20000, dtype=np.float32)
    got = list(windows(y))
    assert [s for s, _ in got] == [0, 46305, 92610] and got[-1][1][20000:].max() == 0
    assert len(list(windows(np.ones(10, dtype=np.float32)))) == 1  # a short file still gives one window


def test_load_audio_mixes_stereo_and_resamples(tmp_path, rng):
    stereo = np.stack([np.sin(np.arange(44100) / 10), np.zeros(44100)], axis=1) * 0.5
    path = write_wav(tmp_path / "s.wav", stereo, sr=44100, subtype="PCM_16")
    y = load_audio(path)
    assert y.dtype == np.float32 and abs(y.size - 22050) <= 1
    assert np.abs(y).max() == pytest.approx(0.25, rel=0.05)


def test_load_audio_reads_flac(tmp_path, rng):
    path = write_wav(tmp_path / "a.flac", rng.standard_normal(22050) * 0.1, sr=22050, subtype="PCM_16")
    assert load_audio(path).shape == (22050,)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"), ("empty", "empty"), ("corrupt", "not a readable audio file"),
    ("text", "not a readable audio file"), ("directory", "directory"), ("nan", "non-finite"),
])
def test_load_audio_errors_name_the_problem(tmp_path, case, message):
    path = tmp_path / "x.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x01" * 50)
    elif case == "text":
        path.write_text("this is not audio\n")
    elif case == "directory":
        path.mkdir()
    elif case == "nan":
        write_wav(path, np.array([0.1, np.nan, 0.2] * 100))
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def _pcm_wav_bytes(tmp_path, rng, channels=2, sr=16000, n=4000) -> bytes:
    path = write_wav(tmp_path / "full.wav", rng.uniform(-0.5, 0.5, (n, channels)), sr=sr, subtype="PCM_16")
    return path.read_bytes()


@settings(max_examples=40)
@given(cut=st.integers(0, 4000 * 2 * 2 + 44 - 1), seed=st.integers(0, 2**16))
def test_a_truncated_wav_is_refused_never_read_short(tmp_path_factory, cut, seed):
    """libsndfile reads a truncated WAV without complaint; read_audio must name it instead."""
    tmp = tmp_path_factory.mktemp("cut")
    full = _pcm_wav_bytes(tmp, np.random.default_rng(seed))
    path = tmp / "cut.wav"
    path.write_bytes(full[:cut])
    with pytest.raises(AudioError) as info:
        read_audio(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    if cut > 44:  # the header is whole: the problem is the missing samples
        assert info.value.reason == "truncated" and "truncated WAV" in message, message


def test_a_whole_wav_with_odd_chunks_reads_in_full(tmp_path, rng):
    """A LIST chunk after the data (as some editors write) is not mistaken for truncation."""
    full = _pcm_wav_bytes(tmp_path, rng)
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\x00"  # odd size, padded
    riff_size = int.from_bytes(full[4:8], "little") + len(extra)
    path = tmp_path / "list.wav"
    path.write_bytes(full[:4] + riff_size.to_bytes(4, "little") + full[8:] + extra)
    frames, sr = read_audio(path)
    assert frames.shape == (4000, 2) and sr == 16000


@settings(max_examples=40)
@given(n=st.integers(1, 3000), window=st.integers(1, 500), seed=st.integers(0, 2**16))
def test_loudest_window_has_the_most_energy(n, window, seed):
    y = np.random.default_rng(seed).standard_normal(n).astype(np.float32) * np.linspace(0, 2, n, dtype=np.float32)
    got = loudest_window(y, window)
    assert got.shape == (window,)
    if n > window:
        energies = [float(np.sum(y[i:i + window].astype(np.float64) ** 2)) for i in range(n - window + 1)]
        assert float(np.sum(got.astype(np.float64) ** 2)) >= max(energies) * (1 - 1e-9)


@settings(max_examples=15)
@given(gap_s=st.floats(2.2, 6.0), seed=st.integers(0, 2**16), lead=st.booleans())
def test_prepare_clip_survives_a_silent_stretch_longer_than_a_window(gap_s, seed, lead):
    """Speech, digital silence longer than 2.1 s, speech: every crop gives a normalised clip."""
    rng = np.random.default_rng(seed)
    burst = rng.standard_normal(2000).astype(np.float32)
    gap = np.zeros(int(gap_s * contract.SAMPLE_RATE), np.float32)
    y = np.concatenate([burst, gap, burst * (0.5 if lead else 2.0)])
    for crop_rng in (None, rng):
        clip = prepare_clip(y, rng=crop_rng)
        assert clip.shape == (contract.N_SAMPLES,) and abs(rms(clip) - 1.0) < 1e-5
