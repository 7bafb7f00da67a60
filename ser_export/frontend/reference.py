"""The librosa float64 reference for the log-mel front-end."""
from __future__ import annotations

import librosa
import numpy as np

from ..contract import FrontendParams


def logmel_reference(waveforms: np.ndarray, params: FrontendParams | None = None) -> np.ndarray:
    """Log-mel features of each waveform computed by librosa in float64.

    ``librosa.power_to_db(librosa.feature.melspectrogram(y, ...), ref=np.max,
    amin=amin, top_db=top_db)`` per example, with every parameter taken from
    ``params`` (same pad mode and window as the model's front-end).

    Parameters
    ----------
    waveforms : np.ndarray [shape=(batch, n_samples) or (n_samples,)]
        Waveforms at ``params.sr``.
    params : FrontendParams

    Returns
    -------
    np.ndarray [shape=(batch, 1, n_mels, n_frames), dtype=float64]
    """
    params = params or FrontendParams()
    y = np.atleast_2d(np.asarray(waveforms, dtype=np.float64))
    out = []
    for clip in y:
        mel = librosa.feature.melspectrogram(
            y=clip, sr=params.sr, n_fft=params.n_fft, hop_length=params.hop_length,
            win_length=params.n_fft, window=params.window, center=params.center,
            pad_mode=params.pad_mode, power=params.power, n_mels=params.n_mels,
            fmin=params.fmin, fmax=params.fmax_hz, htk=False, norm="slaney", dtype=np.float64,
        )
        out.append(librosa.power_to_db(mel, ref=np.max, amin=params.amin, top_db=params.top_db))
    return np.stack(out)[:, None, :, :]
