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


def features_reference(waveforms: np.ndarray, frontend) -> np.ndarray:
    """Features of each waveform as a declared front-end makes them, by librosa in float64.

    Parameters
    ----------
    waveforms : np.ndarray [shape=(batch, n_samples) or (n_samples,)]
        Waveforms at ``frontend.sr``.
    frontend : ser_export.model_contract.FrontEnd
        librosa's ``melspectrogram`` parameters and the log transform: ``power_to_db``
        (``ref`` each example's max or a constant, ``amin``, ``top_db``), or
        ``log(S + eps)`` / ``log10(S + eps)``.

    Returns
    -------
    np.ndarray [shape=(batch, 1, n_mels, n_frames), dtype=float64]
    """
    fe, log = frontend, frontend.log
    y = np.atleast_2d(np.asarray(waveforms, dtype=np.float64))
    out = []
    for clip in y:
        mel = librosa.feature.melspectrogram(
            y=clip, sr=fe.sr, n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length,
            window=fe.window, center=fe.center, pad_mode=fe.pad_mode, power=fe.power, n_mels=fe.n_mels,
            fmin=fe.fmin, fmax=fe.fmax, htk=fe.htk, norm=fe.norm, dtype=np.float64)
        if log.kind == "power_to_db":
            ref = np.max if log.ref == "max" else float(log.ref)
            out.append(librosa.power_to_db(mel, ref=ref, amin=log.amin, top_db=log.top_db))
        elif log.kind == "log":
            out.append(np.log(mel + log.eps))
        else:
            out.append(np.log10(mel + log.eps))
    return np.stack(out)[:, None, :, :]
