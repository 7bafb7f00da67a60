"""Log-mel front-ends that export to ONNX: waveform -> (batch, 1, n_mels, n_frames) dB.

- :mod:`.stft`: the reference STFT (Conv2d with the windowed DFT basis) and power spectrogram.
- :mod:`.fft`: the fast STFT (four-step FFT from MatMul/Mul/Add), same log-mel.
- :mod:`.mel`: the mel filterbank and per-example power-to-dB.
- :mod:`.reference`: the librosa float64 reference the front-ends are tested against.
"""
from __future__ import annotations

from torch import nn

from ..contract import IMPLEMENTATIONS, FrontEnd
from .fft import FftSpectrogram
from .mel import LogmelFilterBank, mel_filterbank, power_to_db
from .stft import STFT, Spectrogram, dft_basis, hann_window


def build_frontend(params: FrontEnd | None = None) -> nn.Sequential:
    """The model's ``melspec_extractor``: ``Sequential(Spectrogram, LogmelFilterBank)``.

    Input ``(batch, n_samples)`` float32 waveform; output
    ``(batch, 1, n_mels, n_frames)`` log-mel in dB relative to each example's maximum.
    A front-end the graph cannot build (:meth:`FrontEnd.check_buildable`) is a ``ValueError``.
    """
    params = params or FrontEnd()
    params.check_buildable()
    mel = dict(sr=params.sr, n_fft=params.n_fft, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax_hz,
               amin=params.log.amin, top_db=params.log.top_db)
    if params.implementation == "fft":
        spec = FftSpectrogram(n_fft=params.n_fft, hop_length=params.hop_length, center=params.center,
                              pad_mode=params.pad_mode, n1=params.fft_n1)
        return nn.Sequential(spec, LogmelFilterBank(**mel, column_bins=spec.column_bins, mel_groups=params.mel_groups))
    return nn.Sequential(
        Spectrogram(n_fft=params.n_fft, hop_length=params.hop_length, center=params.center,
                    pad_mode=params.pad_mode),
        LogmelFilterBank(**mel),
    )


__all__ = [
    "IMPLEMENTATIONS", "STFT", "Spectrogram", "FftSpectrogram", "LogmelFilterBank", "build_frontend", "dft_basis",
    "hann_window", "mel_filterbank", "power_to_db",
]
