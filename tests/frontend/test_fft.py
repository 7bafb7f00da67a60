"""The four-step FFT front-end: exact against numpy's FFT, same log-mel as the Conv2d reference."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from ser_export import tolerances
from ser_export.contract import FrontEnd
from parity.judge import judge_features
from ser_export.frontend import FftSpectrogram, build_frontend
from ser_export.frontend.fft import four_step_constants, four_step_power
from ser_export.frontend.reference import features_reference
from tests.strategies import waveforms


@given(st.sampled_from([(16, 4), (64, 8), (2048, 64), (2048, 32), (1024, 32)]), st.integers(0, 2**31 - 1))
def test_four_step_power_matches_rfft_in_float64(sizes, seed):
    n_fft, n1 = sizes
    x = np.random.default_rng(seed).standard_normal(n_fft)
    expected = np.abs(np.fft.rfft(x)) ** 2
    got = four_step_power(x, four_step_constants(n_fft, n1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * expected.max())


def test_every_bin_comes_from_exactly_one_column():
    c = four_step_constants(2048, 64)
    assert sorted(set(c["gather"])) == sorted(c["gather"]) and len(c["gather"]) == 1025
    assert c["w1"].shape == (66, 64) and c["tc"].shape == c["ts"].shape == (33, 32) and c["d"].shape == (64, 64)


def test_frames_equal_librosa_frames(rng):
    import librosa

    y = rng.standard_normal(46305).astype(np.float32)
    spec = FftSpectrogram()
    with torch.no_grad():
        frames = spec.frames(torch.from_numpy(y)[None])[0].numpy()
    padded = np.pad(y, 1024)
    ref = librosa.util.frame(padded, frame_length=2048, hop_length=512).T * spec.window.numpy()
    np.testing.assert_array_equal(frames, ref.astype(np.float32))


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@settings(max_examples=15)
@given(y=waveforms(normalised=False))
def test_fft_logmel_matches_librosa(pad_mode, y):
    params = FrontEnd(pad_mode=pad_mode, implementation="fft")
    tol = tolerances.for_stage("logmel_db", "pytorch")
    with torch.no_grad():
        ours = build_frontend(params)(torch.from_numpy(y)[None]).numpy()
    above, all_bins = judge_features("fft", "pytorch", "librosa", ours, features_reference(y, params), ["y"], tol,
                                     params.log.floor(), "logmel")
    assert all_bins.max_abs <= tol["all_bins"] and above.max_abs <= tol["above_floor"], all_bins.message()


def test_front_ends_hold_no_state_and_share_checkpoints():
    from ser_export.models import VoiceEmotionCnn

    torch.manual_seed(0)
    conv = VoiceEmotionCnn("alexnet", frontend=FrontEnd(implementation="conv2d")).eval()
    fft = VoiceEmotionCnn("alexnet", frontend=FrontEnd(implementation="fft")).eval()
    fft.load_state_dict(conv.state_dict())  # the same keys: trained weights fit either front-end
    x = torch.randn(2, 46305)
    with torch.no_grad():
        torch.testing.assert_close(fft(x), conv(x), atol=1e-3, rtol=1e-3)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="multiple of hop_length"):
        FftSpectrogram(n_fft=2048, hop_length=500)
    with pytest.raises(ValueError, match="must be even and divide"):
        four_step_constants(2048, 48)
