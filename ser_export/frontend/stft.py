"""Short-time Fourier transform as ONNX-friendly torch modules.

This is the one place where the STFT lives.  :class:`STFT` computes it as two
``Conv2d`` layers whose kernels are the periodic-Hann-windowed DFT basis, so the
whole transform exports to plain ``Pad`` + ``Conv`` ONNX nodes that every
onnxruntime-web backend runs.

The basis is derived from ``n_fft`` alone, so it is kept in non-persistent
buffers: it never enters a training checkpoint, is never trained, and is
rebuilt identically whenever a model is constructed.
"""
from __future__ import annotations

import numpy as np
import scipy.signal
import torch
from torch import nn
from torch.nn import functional as F


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window, as ``librosa.filters.get_window("hann", n_fft)``.

    Returns
    -------
    np.ndarray [shape=(n_fft,), dtype=float64]
    """
    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float64)


def dft_basis(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed one-sided DFT basis (real and imaginary parts), in float64.

    ``real[k, n] = w[n] cos(2 pi k n / n_fft)`` and
    ``imag[k, n] = -w[n] sin(2 pi k n / n_fft)``, so that
    ``real @ frame + 1j * (imag @ frame)`` equals ``np.fft.rfft(w * frame)``.

    Parameters
    ----------
    n_fft : int
        FFT size in samples.

    Returns
    -------
    real, imag : np.ndarray [shape=(1 + n_fft // 2, n_fft), dtype=float64]
    """
    k = np.arange(1 + n_fft // 2, dtype=np.int64)[:, None]
    n = np.arange(n_fft, dtype=np.int64)[None, :]
    # Reduce k*n modulo n_fft in integers so the angle is exact before cos/sin.
    angle = (2.0 * np.pi / n_fft) * ((k * n) % n_fft).astype(np.float64)
    window = hann_window(n_fft)[None, :]
    return window * np.cos(angle), -window * np.sin(angle)


def _frozen_conv(basis: np.ndarray, n_fft: int, hop_length: int) -> nn.Conv2d:
    """A bias-free ``Conv2d(1, n_freqs, (1, n_fft))`` whose kernel is ``basis``.

    The kernel replaces the layer's parameter by a non-persistent buffer: it is
    not trained, not in ``state_dict()``, and still exported as a constant.
    """
    conv = nn.Conv2d(
        1, basis.shape[0], kernel_size=(1, n_fft), stride=(hop_length, hop_length), bias=False
    )
    del conv.weight
    weight = torch.from_numpy(basis.astype(np.float32)).reshape(basis.shape[0], 1, 1, n_fft)
    conv.register_buffer("weight", weight, persistent=False)
    return conv


class STFT(nn.Module):
    """STFT of a batch of waveforms by convolution with the windowed DFT basis.

    Parameters
    ----------
    n_fft : int
        FFT size and window length in samples.
    hop_length : int
        Hop between frames in samples.
    center : bool
        Pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred at
        ``t * hop_length``.
    pad_mode : {"constant", "reflect"}
        How the centre padding is filled.

    Notes
    -----
    Input: waveform ``(batch, n_samples)`` float32.
    Output: ``(real, imag)``, each ``(batch, 1 + n_fft // 2, n_frames)``.
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, center: bool = True,
                 pad_mode: str = "constant"):
        super().__init__()
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {pad_mode!r}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.center = center
        self.pad_mode = pad_mode
        real, imag = dft_basis(n_fft)
        self.conv_real = _frozen_conv(real, n_fft, hop_length)
        self.conv_imag = _frozen_conv(imag, n_fft, hop_length)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = waveform.unsqueeze(1)  # (batch, 1, n_samples)
        if self.center:
            pad = self.n_fft // 2
            x = F.pad(x, (pad, pad), mode=self.pad_mode)
        x = x.unsqueeze(1)  # (batch, 1, 1, n_samples + 2 * pad)
        real = self.conv_real(x).squeeze(2)
        imag = self.conv_imag(x).squeeze(2)
        return real, imag


class Spectrogram(nn.Module):
    """Power spectrogram ``re**2 + im**2`` of a batch of waveforms.

    Input ``(batch, n_samples)``; output ``(batch, 1 + n_fft // 2, n_frames)``.
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, center: bool = True,
                 pad_mode: str = "constant"):
        super().__init__()
        self.stft = STFT(n_fft=n_fft, hop_length=hop_length, center=center, pad_mode=pad_mode)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveform)
        return real * real + imag * imag
