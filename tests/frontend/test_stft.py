import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from ser_export.frontend import STFT, Spectrogram, dft_basis, hann_window


def test_hann_is_periodic_like_librosa():
    import librosa

    np.testing.assert_allclose(hann_window(2048), librosa.filters.get_window("hann", 2048), atol=0)


@given(n_fft=st.sampled_from([8, 16, 64, 512, 2048]), seed=st.integers(0, 2**31 - 1))
def test_dft_basis_matches_rfft_of_windowed_frame(n_fft, seed):
    frame = np.random.default_rng(seed).standard_normal(n_fft)
    real, imag = dft_basis(n_fft)
    expected = np.fft.rfft(hann_window(n_fft) * frame)
    np.testing.assert_allclose(real @ frame, expected.real, atol=1e-9 * n_fft)
    np.testing.assert_allclose(imag @ frame, expected.imag, atol=1e-9 * n_fft)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_stft_matches_librosa_stft(pad_mode, rng):
    import librosa

    y = rng.standard_normal(5000).astype(np.float32)
    real, imag = STFT(n_fft=512, hop_length=128, pad_mode=pad_mode)(torch.from_numpy(y)[None])
    ref = librosa.stft(y.astype(np.float64), n_fft=512, hop_length=128, pad_mode=pad_mode)
    np.testing.assert_allclose(real[0].double().numpy(), ref.real, atol=2e-4)
    np.testing.assert_allclose(imag[0].double().numpy(), ref.imag, atol=2e-4)


def test_basis_is_frozen_and_not_in_state_dict():
    spec = Spectrogram()
    assert spec.state_dict() == {}
    assert list(spec.parameters()) == []
    assert spec.stft.conv_real.weight.shape == (1025, 1, 1, 2048)


def test_unknown_pad_mode_is_refused():
    with pytest.raises(ValueError, match="pad_mode"):
        STFT(pad_mode="wrap")
