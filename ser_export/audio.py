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
    """Scale ``y`` so its RMS is ``r = 10 ** (rms_level / 20)`` (:func:`ser_export.contract.rms_target`).

    The gain is ``a = sqrt(N * r**2 / sum(y**2))`` (the metadata's
    :data:`ser_export.contract.RMS_FORMULA`); for the default ``rms_level=0`` the RMS becomes
    exactly 1, at -20 dB it is 0.1.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Waveform.
    rms_level : float
        Target level in dB of amplitude (relative to an RMS of 1).
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
    r = contract.rms_target(rms_level)
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


def loudest_window(y: np.ndarray, n_samples: int = contract.N_SAMPLES) -> np.ndarray:
    """The ``n_samples`` window of ``y`` with the most energy (zero-padded if ``y`` is shorter).

    Ties go to the earliest window.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.size <= n_samples:
        return fit_length(y, n_samples)
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(y, dtype=np.float64) ** 2)])
    start = int(np.argmax(energy[n_samples:] - energy[:-n_samples]))
    return y[start:start + n_samples].copy()


def prepare_clip(y: np.ndarray, rng: np.random.Generator | None = None, trim: bool = True,
                 what: str = "clip") -> np.ndarray:
    """The training preprocessing: RMS-normalise, trim silence at 40 dB, crop/pad, re-normalise.

    The final RMS normalisation makes the clip satisfy the model's input contract
    exactly (padding with zeros lowers the RMS).  A crop that falls wholly in
    digital silence (a long recording with a silent stretch longer than a window)
    is replaced by the loudest window, so a clip that is not silent as a whole
    always gives a training example.
    """
    y = rms_normalize(y, what=what)
    if trim:
        y = trim_silence(y, top_db=40.0)
    clip = fit_length(y, rng=rng)
    if rms(clip) < contract.MIN_RMS:
        clip = loudest_window(y)
    return rms_normalize(clip, what=what)


def _wav_data_bytes(path: str) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of a RIFF/WAVE file's ``data`` chunk, or ``None``.

    ``None`` when the file is not RIFF/WAVE (RF64, W64, FLAC, ...), when it has no
    ``data`` chunk, or when the size is the 0 or 0xFFFFFFFF that streaming writers
    leave for "unknown".  libsndfile reads a truncated WAV without an error (it
    returns the frames that are there), so truncation is found here.
    """
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                return chunk_size, size - pos - 8
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _refuse(path: str, problem: str, reason: str) -> AudioError:
    return AudioError(f"{path}: {problem}", problem=problem, reason=reason)


def check_audio_path(path: str) -> None:
    """Refuse a path that cannot hold audio (missing, a directory, 0 bytes): :class:`AudioError`."""
    if not os.path.exists(path):
        raise _refuse(path, "no such file", "missing")
    if os.path.isdir(path):
        raise _refuse(path, "is a directory, not an audio file", "not audio")
    if os.path.getsize(path) == 0:
        raise _refuse(path, "file is empty (0 bytes)", "unreadable audio")


def unreadable(path: str, exc: BaseException) -> AudioError:
    """The one-line error for a file libsndfile cannot read (``exc``: what soundfile raised)."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _refuse(path, f"not a readable audio file ({detail})", "unreadable audio")


#: What soundfile raises for a corrupt file or one that is not audio.
SOUNDFILE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError, OSError)


def check_not_truncated(path: str) -> None:
    """Refuse a WAV whose ``data`` chunk is shorter than its header declares (libsndfile reads it silently)."""
    data_bytes = _wav_data_bytes(path)
    if data_bytes is not None and data_bytes[1] < data_bytes[0]:
        declared, present = data_bytes
        raise _refuse(path, f"truncated WAV: its header declares {declared} bytes of samples, the file holds "
                            f"{max(present, 0)}", "truncated")


def no_samples(path: str) -> AudioError:
    return _refuse(path, "audio file holds no samples", "unreadable audio")


def non_finite(path: str, count: int, first_frame: int) -> AudioError:
    """The one-line error for ``count`` NaN/Inf samples, the first at frame ``first_frame``."""
    return _refuse(path, f"has {count} non-finite samples (NaN/Inf), the first at frame {first_frame}",
                   "non-finite samples")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC/OGG file as it is stored, refusing anything unusable.

    Returns
    -------
    frames : np.ndarray [shape=(n_samples, n_channels), dtype=float32]
    sr : int
        The file's sample rate in Hz.

    Raises
    ------
    AudioError
        With a one-line message naming the file and the problem (missing, a
        directory, empty, not audio, truncated, no samples, NaN/Inf samples);
        ``problem`` and ``reason`` give the same without the file name.

    See Also
    --------
    ser_export.longaudio.MonoBlocks : the same file block by block, with the same refusals.
    """
    import soundfile as sf

    path = os.fspath(path)
    check_audio_path(path)
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, *SOUNDFILE_ERRORS) as exc:  # corrupt or not audio
        raise unreadable(path, exc) from None
    check_not_truncated(path)
    if data.shape[0] == 0:
        raise no_samples(path)
    bad = ~np.isfinite(data)
    if bad.any():
        raise non_finite(path, int(bad.sum()), int(np.flatnonzero(bad.any(axis=1))[0]))
    return data, int(file_sr)


def load_audio(path: str | os.PathLike, sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Read a WAV/FLAC/OGG file as float32 mono at ``sr`` Hz.

    Stereo and multichannel files are averaged to mono; other sample rates are
    resampled with librosa (soxr).  Any problem raises :class:`AudioError`
    with a one-line message naming the file and the problem (see :func:`read_audio`).
    """
    data, file_sr = read_audio(path)
    return to_mono(data, file_sr, sr)


#: The resampler of a recording to the model's rate (librosa's ``res_type``; soxr's quality).
RES_TYPE = "soxr_hq"


def mix_down(frames: np.ndarray) -> np.ndarray:
    """Average ``(n_samples, n_channels)`` frames to mono ``(n_samples,)`` float32 (row by row)."""
    return np.asarray(frames, dtype=np.float32).mean(axis=1)


def to_mono(frames: np.ndarray, file_sr: int, sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Average ``(n_samples, n_channels)`` frames to mono and resample from ``file_sr`` to ``sr`` (soxr_hq)."""
    y = mix_down(frames)
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type=RES_TYPE)
    return np.ascontiguousarray(y, dtype=np.float32)


def normalized_window(window: np.ndarray, rms_level: float = contract.RMS_LEVEL_DB,
                      min_rms: float = contract.MIN_RMS) -> np.ndarray | None:
    """A model input: ``window`` RMS-normalised (:func:`rms_normalize`), ``None`` when it is silent."""
    try:
        return rms_normalize(window, rms_level=rms_level, min_rms=min_rms)
    except SilentAudioError:
        return None


def model_windows(y: np.ndarray, n_samples: int = contract.N_SAMPLES, rms_level: float = contract.RMS_LEVEL_DB,
                  min_rms: float = contract.MIN_RMS) -> tuple[list[int], list[np.ndarray | None]]:
    """The model inputs of a mono recording: window starts and RMS-normalised windows
    (``None`` for a silent window), by the rule of :func:`windows`."""
    starts, out = [], []
    for start, window in windows(y, n_samples=n_samples):
        starts.append(start)
        out.append(normalized_window(window, rms_level, min_rms))
    return starts, out


class WindowCutter:
    """The rule of :func:`windows`, fed block by block: consecutive ``n_samples`` windows.

    :meth:`feed` takes the next samples of a mono recording and returns the windows they complete;
    :meth:`finish` returns the last, partial window (zero-padded) when it holds at least
    ``min_fraction`` of a window or is the only one, else nothing.  Only one window's samples are
    held, however long the recording.

    Parameters
    ----------
    n_samples : int
        Window length in samples.
    min_fraction : float
        The shortest tail kept, as a fraction of ``n_samples``.
    """

    def __init__(self, n_samples: int = contract.N_SAMPLES, min_fraction: float = 0.25) -> None:
        self.n_samples = int(n_samples)
        self.min_fraction = min_fraction
        self.total = 0        # samples fed so far
        self._count = 0       # windows returned so far
        self._buf = np.zeros(self.n_samples, dtype=np.float32)
        self._fill = 0

    def feed(self, y: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """The windows ``y`` completes, as ``(start_sample, window)`` (each window a new float32 array)."""
        y = np.asarray(y, dtype=np.float32).ravel()
        self.total += y.size
        out, pos = [], 0
        while pos < y.size:
            take = min(self.n_samples - self._fill, y.size - pos)
            self._buf[self._fill:self._fill + take] = y[pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == self.n_samples:
                out.append((self._count * self.n_samples, self._buf.copy()))
                self._count += 1
                self._fill = 0
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """The zero-padded tail window, if the rule keeps it (an empty recording gives one window of zeros)."""
        if self._fill == 0 and self._count > 0:
            return []
        if self._count > 0 and self._fill < self.min_fraction * self.n_samples:
            return []
        window = np.zeros(self.n_samples, dtype=np.float32)
        window[:self._fill] = self._buf[:self._fill]
        self._fill = 0
        self._count += 1
        return [((self._count - 1) * self.n_samples, window)]


def windows(y: np.ndarray, n_samples: int = contract.N_SAMPLES,
            min_fraction: float = 0.25) -> Iterator[tuple[int, np.ndarray]]:
    """Split a long waveform into consecutive ``n_samples`` windows.

    The last, partial window is zero-padded when it holds at least
    ``min_fraction`` of a window (or when it is the only one); shorter tails are
    dropped.  Yields ``(start_sample, window)``.  The rule is :class:`WindowCutter`'s,
    fed the whole waveform at once.
    """
    y = np.asarray(y, dtype=np.float32)
    cutter = WindowCutter(n_samples, min_fraction)
    for pos in range(0, y.size, n_samples):  # a window at a time: one copy held, not the recording's
        yield from cutter.feed(y[pos:pos + n_samples])
    yield from cutter.finish()
