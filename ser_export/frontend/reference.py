"""The librosa float64 reference of a log-mel front-end (ser_export's own and any declared one)."""
from __future__ import annotations

import librosa
import numpy as np

from ..contract import FrontEnd


def features_reference(waveforms: np.ndarray, frontend: FrontEnd | None = None) -> np.ndarray:
    """Features of each waveform as ``frontend`` makes them, by librosa in float64.

    ``librosa.feature.melspectrogram(y, ...)`` with every parameter taken from ``frontend``,
    then its log transform: ``librosa.power_to_db(S, ref=..., amin=amin, top_db=top_db)``
    (``ref`` each example's max or a constant), or ``log(S + eps)`` / ``log10(S + eps)``.

    Parameters
    ----------
    waveforms : np.ndarray [shape=(batch, n_samples) or (n_samples,)]
        Waveforms at ``frontend.sr``.
    frontend : FrontEnd
        Default: ser_export's models' front-end (``FrontEnd()``).

    Returns
    -------
    np.ndarray [shape=(batch, 1, n_mels, n_frames), dtype=float64]
    """
    fe = frontend or FrontEnd()
    log = fe.log
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
