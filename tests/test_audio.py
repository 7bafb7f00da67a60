import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from ser_export import contract
from ser_export.audio import fit_length, load_audio, prepare_clip, rms, rms_normalize, windows
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
