"""Long recordings in bounded memory: a file read, mixed down, resampled and cut into model windows block by block.

:func:`ser_export.audio.load_audio` holds the whole file (its frames, then its mono samples at the
model's rate) and :func:`ser_export.audio.model_windows` every window at once: memory linear in the
file's length.  Here the file is read ``block_frames`` frames at a time, each block mixed down
(:func:`ser_export.audio.mix_down`, row by row), resampled by soxr's streaming resampler
(:class:`StreamResampler`) and cut by :class:`ser_export.audio.WindowCutter`; only a block, the
resampler's state and one window are held.

The samples are the whole-file path's, bit for bit: soxr's streaming resampler (``soxr.ResampleStream``)
runs the same filter as ``soxr.resample`` (which librosa calls), its output does not depend on how
the input is split, and the length is fixed to librosa's ``ceil(n * sr / file_sr)`` (zero-padded or
cut at the end) as ``librosa.resample(..., fix=True)`` does.  ``tests/test_longaudio.py`` checks
byte equality against ``load_audio`` + ``model_windows`` for several rates, channel counts and block sizes.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from . import contract
from .audio import (RES_TYPE, SOUNDFILE_ERRORS, WindowCutter, check_audio_path, check_not_truncated, mix_down,
                    no_samples, non_finite, normalized_window, unreadable)

#: Frames read at a time, at the file's rate (65536: 1.5 s of 44.1 kHz audio, 512 KiB of stereo float32).
BLOCK_FRAMES = 1 << 16


class StreamResampler:
    """Resample a mono stream from ``sr_from`` to ``sr_to`` Hz block by block, as :func:`ser_export.audio.to_mono` does.

    The output is ``librosa.resample(y, orig_sr=sr_from, target_sr=sr_to, res_type="soxr_hq")`` of the
    whole stream ``y``: soxr's output for the same filter, its length fixed to ``ceil(n * sr_to / sr_from)``
    (librosa's float computation) once the stream's length ``n`` is known: soxr gives that many or
    fewer (it rounds down), and the missing end is zeros, as librosa pads.

    Parameters
    ----------
    sr_from, sr_to : int
        Sample rates in Hz.
    """

    def __init__(self, sr_from: int, sr_to: int) -> None:
        self.sr_from, self.sr_to = int(sr_from), int(sr_to)
        self.n_in = 0
        self.n_out = 0
        self._soxr = None
        if self.sr_from != self.sr_to:
            import soxr

            self._soxr = soxr.ResampleStream(self.sr_from, self.sr_to, 1, dtype="float32", quality=RES_TYPE)

    def process(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        """The output samples that ``y`` (the next mono samples, float32) makes final.

        Parameters
        ----------
        y : np.ndarray [shape=(n,), dtype=float32]
        last : bool
            ``y`` ends the stream: the rest of the output is flushed and its length fixed.

        Returns
        -------
        np.ndarray [shape=(m,), dtype=float32]
        """
        y = np.ascontiguousarray(y, dtype=np.float32)
        self.n_in += y.size
        if self._soxr is None:
            out = y
        else:
            out = self._soxr.resample_chunk(y, last=last)
            if last:
                need = int(np.ceil(self.n_in * (float(self.sr_to) / self.sr_from))) - self.n_out
                if need < out.size:  # never seen: soxr rounds its length down, and what it gave is passed on
                    raise RuntimeError(f"soxr gave {out.size - need} samples more than librosa keeps")
                out = np.concatenate([out, np.zeros(need - out.size, np.float32)])
        self.n_out += out.size
        return out


class MonoBlocks:
    """A recording as float32 mono blocks at ``sr`` Hz: :func:`ser_export.audio.load_audio`'s samples, block by block.

    Iterating reads the file ``block_frames`` frames at a time; it refuses what
    :func:`ser_export.audio.read_audio` refuses, with the same one-line :class:`AudioError`: a missing,
    empty, unreadable or truncated file when iteration starts, one without samples at its end, and one
    holding NaN/Inf before any block of it is given (the rest of the file is read, without keeping it,
    to count them).  After iteration ``n_samples`` is the number of samples given (at ``sr``) and
    ``file_sr`` the file's rate.

    Parameters
    ----------
    path : path-like
        A WAV/FLAC/OGG file.
    sr : int
        The rate of the blocks, Hz.
    block_frames : int
        Frames read at a time (at the file's rate).
    """

    def __init__(self, path: str | os.PathLike, sr: int = contract.SAMPLE_RATE,
                 block_frames: int = BLOCK_FRAMES) -> None:
        if int(block_frames) < 1:
            raise ValueError(f"block_frames must be positive, not {block_frames}")
        self.path = os.fspath(path)
        self.sr = int(sr)
        self.block_frames = int(block_frames)
        self.n_samples = 0
        self.file_sr: int | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        import soundfile as sf

        path = self.path
        check_audio_path(path)
        errors = (sf.LibsndfileError, *SOUNDFILE_ERRORS)
        try:
            f = sf.SoundFile(path)
        except errors as exc:
            raise unreadable(path, exc) from None
        with f:
            check_not_truncated(path)
            self.file_sr = int(f.samplerate)
            resampler = StreamResampler(self.file_sr, self.sr)
            frames_read = 0
            while True:
                try:
                    block = f.read(self.block_frames, dtype="float32", always_2d=True)
                except errors as exc:
                    raise unreadable(path, exc) from None
                if block.shape[0] == 0:
                    break
                bad = ~np.isfinite(block)
                if bad.any():
                    first = frames_read + int(np.flatnonzero(bad.any(axis=1))[0])
                    raise non_finite(path, int(bad.sum()) + self._count_non_finite(f, errors), first)
                frames_read += block.shape[0]
                out = resampler.process(mix_down(block))
                self.n_samples = resampler.n_out
                if out.size:
                    yield out
            if frames_read == 0:
                raise no_samples(path)
            out = resampler.process(np.zeros(0, np.float32), last=True)
            self.n_samples = resampler.n_out
            if out.size:
                yield out

    def _count_non_finite(self, f, errors) -> int:
        """NaN/Inf samples in the rest of the open file ``f`` (read block by block, nothing kept)."""
        count = 0
        while True:
            try:
                block = f.read(self.block_frames, dtype="float32", always_2d=True)
            except errors as exc:
                raise unreadable(self.path, exc) from None
            if block.shape[0] == 0:
                return count
            count += int(np.count_nonzero(~np.isfinite(block)))


class BlockWindows:
    """The model inputs of a recording, block by block: :func:`ser_export.audio.model_windows` of ``load_audio``.

    Iterating yields ``(start_sample, window)`` with ``window`` RMS-normalised float32 of
    ``n_samples``, or ``None`` for a silent one; after iteration ``n_samples_total`` is the length of
    the recording at ``sr`` (what ``load_audio(path, sr).size`` is).

    Parameters
    ----------
    path : path-like
    sr : int
        The model's rate, Hz.
    n_samples : int
        The model's window length, samples.
    rms_level, min_rms : float
        The contract's normalisation (dB of amplitude) and silence floor.
    block_frames : int
        Frames read at a time (:class:`MonoBlocks`).
    """

    def __init__(self, path: str | os.PathLike, sr: int = contract.SAMPLE_RATE, n_samples: int = contract.N_SAMPLES,
                 rms_level: float = contract.RMS_LEVEL_DB, min_rms: float = contract.MIN_RMS,
                 block_frames: int = BLOCK_FRAMES) -> None:
        self.blocks = MonoBlocks(path, sr, block_frames)
        self.n_samples = int(n_samples)
        self.rms_level, self.min_rms = rms_level, min_rms

    @property
    def n_samples_total(self) -> int:
        return self.blocks.n_samples

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        cutter = WindowCutter(self.n_samples)
        for block in self.blocks:
            for start, window in cutter.feed(block):
                yield start, normalized_window(window, self.rms_level, self.min_rms)
        for start, window in cutter.finish():
            yield start, normalized_window(window, self.rms_level, self.min_rms)


class WholeFileWindows:
    """The same windows as :class:`BlockWindows`, from the whole file in memory (``load_audio`` + ``model_windows``).

    The reference the block path is checked against (``predict_file(..., block_frames=None)``): memory
    linear in the file's length.
    """

    def __init__(self, path: str | os.PathLike, sr: int = contract.SAMPLE_RATE, n_samples: int = contract.N_SAMPLES,
                 rms_level: float = contract.RMS_LEVEL_DB, min_rms: float = contract.MIN_RMS) -> None:
        self.path, self.sr, self.n_samples = path, int(sr), int(n_samples)
        self.rms_level, self.min_rms = rms_level, min_rms
        self.n_samples_total = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None]]:
        from .audio import load_audio, model_windows

        y = load_audio(self.path, sr=self.sr)
        self.n_samples_total = int(y.size)
        starts, windows = model_windows(y, self.n_samples, self.rms_level, self.min_rms)
        del y
        yield from zip(starts, windows)
