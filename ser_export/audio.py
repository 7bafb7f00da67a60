"""Audio loading and the input contract's preprocessing (shared by training and predict).

Every function takes and returns float32 mono waveforms at ``contract.SAMPLE_RATE``
unless it says otherwise.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from . import contract
from .errors import AudioError, SilentAudioError


def check_finite(y: np.ndarray, what: str = "waveform") -> np.ndarray:
    """Raise :class:`AudioError` if ``y`` is empty or holds NaN or Inf samples."""
    y = np.asarray(y)
    if y.size == 0:
        raise AudioError(f"{what} is empty (0 samples)")
    bad = ~np.isfinite(y)
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise AudioError(
            f"{what} has {int(bad.sum())} non-finite samples (NaN/Inf), the first at index {first}"
        )
    return y


def rms(y: np.ndarray) -> float:
    """Root mean square of ``y`` (computed in float64)."""
    y64 = np.asarray(y, dtype=np.float64)
    return float(np.sqrt(np.mean(y64 * y64))) if y64.size else 0.0


def rms_normalize(y: np.ndarray, rms_level: float = contract.RMS_LEVEL_DB,
                  min_rms: float = contract.MIN_RMS, what: str = "clip") -> np.ndarray:
    """Scale ``y`` so its RMS is ``10 ** (rms_level / 20)`` (the original's formula).

    ``a = sqrt(N * r**2 / sum(y**2))`` with ``r = 10 ** (rms_level / 10)`` as in the
    original notebooks (for the default ``rms_level=0`` the RMS becomes exactly 1).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Waveform.
    rms_level : float
        Target level in dB.
    min_rms : float
        Clips quieter than this are refused with :class:`SilentAudioError`
        instead of being divided by (almost) zero.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    y = check_finite(y, what)
    level = rms(y)
    if level < min_rms:
        raise SilentAudioError(
            f"{what} is silent (RMS {level:.3g} < {min_rms:g}); it cannot be RMS-normalised"
        )
    r = 10.0 ** (rms_level / 10.0)
    y64 = np.asarray(y, dtype=np.float64)
    gain = np.sqrt(y64.size * r * r / np.sum(y64 * y64))
    return (y64 * gain).astype(np.float32)


def trim_silence(y: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """Drop leading and trailing parts quieter than ``top_db`` below the peak (librosa.effects.trim)."""
    import librosa

    trimmed, _ = librosa.effects.trim(np.asarray(y, dtype=np.float32), top_db=top_db, ref=np.max)
    return trimmed if trimmed.size else np.asarray(y, dtype=np.float32)


def fit_length(y: np.ndarray, n_samples: int = contract.N_SAMPLES,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop (at a random offset) or zero-pad (at a random offset) ``y`` to ``n_samples``.

    With ``rng=None`` the crop or padding is centred (deterministic).
    """
    y = np.asarray(y, dtype=np.float32)
    n = y.size
    if n == n_samples:
        return y.copy()
    slack = abs(n - n_samples)
    offset = slack // 2 if rng is None else int(rng.integers(0, slack + 1))
    if n > n_samples:
        return y[offset:offset + n_samples].copy()
    out = np.zeros(n_samples, dtype=np.float32)
    out[offset:offset + n] = y
    return out


def prepare_clip(y: np.ndarray, rng: np.random.Generator | None = None, trim: bool = True,
                 what: str = "clip") -> np.ndarray:
    """The training preprocessing: RMS-normalise, trim silence at 40 dB, crop/pad, re-normalise.

    The final RMS normalisation makes the clip satisfy the model's input contract
    exactly (padding with zeros lowers the RMS).
    """
    y = rms_normalize(y, what=what)
    if trim:
        y = trim_silence(y, top_db=40.0)
    return rms_normalize(fit_length(y, rng=rng), what=what)


def load_audio(path: str | os.PathLike, sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Read a WAV/FLAC/OGG file as float32 mono at ``sr`` Hz.

    Stereo and multichannel files are averaged to mono; other sample rates are
    resampled with librosa (soxr).  Any problem raises :class:`AudioError`
    with a one-line message naming the file and the problem.
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:  # corrupt or not audio
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: not a readable audio file ({detail})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file holds no samples")
    return to_mono(check_finite(data, f"{path}"), file_sr, sr)


def to_mono(frames: np.ndarray, file_sr: int, sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Average ``(n_samples, n_channels)`` frames to mono and resample from ``file_sr`` to ``sr`` (soxr_hq)."""
    y = np.asarray(frames, dtype=np.float32).mean(axis=1)
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def model_windows(y: np.ndarray, n_samples: int = contract.N_SAMPLES, rms_level: float = contract.RMS_LEVEL_DB,
                  min_rms: float = contract.MIN_RMS) -> tuple[list[int], list[np.ndarray | None]]:
    """The model inputs of a mono recording: window starts and RMS-normalised windows
    (``None`` for a silent window), by the rule of :func:`windows`."""
    starts, out = [], []
    for start, window in windows(y, n_samples=n_samples):
        starts.append(start)
        try:
            out.append(rms_normalize(window, rms_level=rms_level, min_rms=min_rms))
        except SilentAudioError:
            out.append(None)
    return starts, out


def windows(y: np.ndarray, n_samples: int = contract.N_SAMPLES,
            min_fraction: float = 0.25) -> Iterator[tuple[int, np.ndarray]]:
    """Split a long waveform into consecutive ``n_samples`` windows.

    The last, partial window is zero-padded when it holds at least
    ``min_fraction`` of a window (or when it is the only one); shorter tails are
    dropped.  Yields ``(start_sample, window)``.
    """
    y = np.asarray(y, dtype=np.float32)
    starts = list(range(0, max(y.size, 1), n_samples))
    for i, start in enumerate(starts):
        chunk = y[start:start + n_samples]
        if chunk.size < n_samples:
            if i > 0 and chunk.size < min_fraction * n_samples:
                return
            chunk = np.pad(chunk, (0, n_samples - chunk.size))
        yield start, chunk
