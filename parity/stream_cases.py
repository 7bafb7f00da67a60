"""Test streams for streaming models, as small replayable specs.

A :class:`StreamSpec` (kind, length in samples, level, seed) renders to a float32 stream
deterministically (:func:`render_stream`), so a failing stream can be printed, shrunk,
saved and replayed exactly.  :func:`draw_streams` makes the gate's list from a seed: every
kind in turn, lengths that are not a multiple of the chunk, and, when asked, one long
stream (60 s by default) on which the error's growth along the stream is measured.

Kinds: ``speech`` (utterances of the embedded synthetic corpus with pauses between them),
``silence`` (digital zeros, then a noise floor 50 dB below the drawn level), ``noise`` (white and low-passed),
``music`` (chords of harmonic tones with note changes and a beat), ``jumps`` (speech and
noise with abrupt level changes from -60 to 0 dBFS), ``long`` (speech, noise and quieter
speech in turn: the drift stream).
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

KINDS = ("speech", "silence", "noise", "music", "jumps")
#: How far below the drawn level the noise floor of a ``silence`` stream lies, dB.
SILENCE_BELOW_DB = 50.0
#: Seconds of the long stream on which drift is measured.
LONG_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """One test stream: ``n_samples`` of ``kind`` at ``sample_rate`` Hz, peak level ``level_db`` dBFS."""

    kind: str
    n_samples: int
    sample_rate: int
    level_db: float
    seed: int

    def label(self) -> str:
        return (f"{self.kind}({self.n_samples / self.sample_rate:.3f} s = {self.n_samples} samples, "
                f"{self.level_db:g} dBFS, seed={self.seed})")

    def prefix(self, n_samples: int) -> "StreamSpec":
        """The same stream cut to its first ``n_samples`` (what shrinking tries)."""
        return dataclasses.replace(self, n_samples=max(1, min(int(n_samples), self.n_samples)))


def _speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Utterances of the synthetic corpus (resampled to ``sr``) with 0.2-1 s pauses, cut to ``n`` samples."""
    from scipy.signal import resample_poly

    from ser_export import contract
    from ser_export.data import synthetic

    speakers = synthetic.make_speakers(4, seed=int(rng.integers(0, 1 << 16)))
    emotions = list(synthetic.PROFILES)
    frac = Fraction(sr, contract.SAMPLE_RATE).limit_denominator(1000)
    parts, total = [np.zeros(int(rng.uniform(0.1, 0.6) * sr))], 0
    while total < n:
        y = synthetic.synthesize(speakers[int(rng.integers(len(speakers)))], emotions[int(rng.integers(len(emotions)))],
                                 rng, duration=float(rng.uniform(0.8, 2.0)))
        y = resample_poly(y.astype(np.float64), frac.numerator, frac.denominator)
        parts += [y / (np.abs(y).max() + 1e-12), np.zeros(int(rng.uniform(0.2, 1.0) * sr))]
        total = sum(p.size for p in parts)
    return np.concatenate(parts)[:n]


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    white = rng.standard_normal(n)
    low = np.cumsum(rng.standard_normal(n))
    low -= np.convolve(low, np.ones(64) / 64, mode="same")
    half = n // 2
    y = np.concatenate([white[:half] / 4, low[half:] / (np.abs(low[half:]).max() + 1e-12)])
    return y / (np.abs(y).max() + 1e-12)


def _music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Three-note chords of harmonic tones, a new chord every 0.25-0.8 s, and a kick-like beat."""
    y = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.25, 0.8) * sr)
        t = np.arange(min(length, n - pos)) / sr
        root = 110.0 * 2 ** (int(rng.integers(0, 24)) / 12)
        for step in (0, 4, 7):
            f0 = root * 2 ** (step / 12)
            for h in range(1, 6):
                if f0 * h < sr / 2:
                    y[pos:pos + t.size] += np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi)) / h
        y[pos:pos + t.size] *= np.exp(-t * rng.uniform(0.5, 4.0))
        beat = np.arange(min(int(0.08 * sr), t.size)) / sr
        y[pos:pos + beat.size] += 2.0 * np.sin(2 * np.pi * 60 * beat) * np.exp(-beat * 40)
        pos += length
    return y / (np.abs(y).max() + 1e-12)


def _jumps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Speech and noise whose level jumps every 0.3-1.5 s between -60 and 0 dBFS."""
    y = _speech(rng, n, sr) + 0.05 * rng.standard_normal(n)
    gain = np.ones(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.3, 1.5) * sr)
        gain[pos:pos + length] = 10 ** (rng.uniform(-60, 0) / 20)
        pos += length
    y *= gain
    return y / (np.abs(y).max() + 1e-12)


def render_stream(spec: StreamSpec) -> np.ndarray:
    """The samples of ``spec``: float32, ``spec.n_samples`` long, peak at ``spec.level_db`` dBFS (silence: zero
    for its first half, then a noise floor :data:`SILENCE_BELOW_DB` below that level)."""
    rng = np.random.default_rng(spec.seed)
    n, sr = spec.n_samples, spec.sample_rate
    if spec.kind == "speech":
        y = _speech(rng, n, sr)
    elif spec.kind == "silence":
        y = np.concatenate([np.zeros(n // 2), rng.standard_normal(n - n // 2) / 4])
    elif spec.kind == "noise":
        y = _noise(rng, n)
    elif spec.kind == "music":
        y = _music(rng, n, sr)
    elif spec.kind == "jumps":
        y = _jumps(rng, n, sr)
    elif spec.kind == "long":
        third = n // 3
        y = np.concatenate([_speech(rng, third, sr), 0.3 * _noise(rng, third), 0.2 * _speech(rng, n - 2 * third, sr)])
    else:
        raise ValueError(f"unknown stream kind {spec.kind!r} (one of {', '.join(KINDS + ('long',))})")
    y = np.asarray(y, np.float64)[:n]
    peak = np.abs(y).max() if y.size else 0.0
    level_db = spec.level_db - (SILENCE_BELOW_DB if spec.kind == "silence" else 0.0)
    return (y / (peak if peak > 0 else 1.0) * 10 ** (level_db / 20)).astype(np.float32)


def draw_streams(n_streams: int, seed: int, sample_rate: int, chunk: int, seconds: tuple[float, float] = (1.0, 4.0),
                 long_seconds: float | None = LONG_SECONDS) -> list[StreamSpec]:
    """The gate's streams: ``n_streams`` short ones (every kind in turn, ``seconds`` long, never a whole number of
    chunks, peaks from -30 to -1 dBFS) and, unless ``long_seconds`` is None, one long stream last.

    Deterministic: the same arguments give the same specs (and :func:`render_stream` the same samples).
    """
    rng = np.random.default_rng([seed, 27])
    specs = []
    for i in range(n_streams):
        n = int(rng.uniform(*seconds) * sample_rate)
        n += (1 + int(rng.integers(0, max(chunk - 1, 1)))) if n % chunk == 0 else 0  # never a whole number of chunks
        specs.append(StreamSpec(KINDS[i % len(KINDS)], n, sample_rate, round(float(rng.uniform(-30, -1)), 2),
                                int(rng.integers(0, 1 << 31))))
    if long_seconds:
        specs.append(StreamSpec("long", int(long_seconds * sample_rate) + chunk // 3, sample_rate, -3.0,
                                int(rng.integers(0, 1 << 31))))
    return specs
