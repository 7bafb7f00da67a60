"""An out-of-distribution evaluation set, made offline and never trained on.

Two parts, each a list of :class:`OodClip` (one model window each, at the contract's rate,
at a natural level, not normalised):

- **non-speech**: white, pink and brown noise at several levels, pure tones, chords with
  tremolo, music-like signals (a melody of harmonic notes over a beat), mains hum with
  harmonics, click trains, door-slam bursts and fan noise;
- **speech-like**: our synthetic voice pushed outside its range (f0 far above or below
  any training speaker, a vocal tract far longer or shorter), whispered (no voicing),
  time-reversed and babble (four voices at once).

The build reports what the VAD and the models say about them (``postprocessing`` in the
manifest); the targets are about the non-speech part.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal

from .. import contract
from . import synthetic

#: Bump when the set changes (the figures in the manifest name it).
OOD_VERSION = 1

NON_SPEECH = ("white_noise", "pink_noise", "brown_noise", "tone", "chord", "music", "hum", "clicks",
              "door_slam", "fan")
SPEECH_LIKE = ("high_voice", "low_voice", "whisper", "reversed_speech", "babble")


@dataclasses.dataclass(frozen=True)
class OodClip:
    family: str
    speech_like: bool
    waveform: np.ndarray  # (contract.N_SAMPLES,) float32

    @property
    def part(self) -> str:
        return "speech_like" if self.speech_like else "non_speech"


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    return y / np.sqrt(np.mean(y * y))


def _harmonic(f0: float, t: np.ndarray, n_harm: int = 6, decay: float = 0.6) -> np.ndarray:
    return sum(decay ** k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(n_harm) if f0 * (k + 1) < 10000)


def _non_speech(family: str, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    if family in ("white_noise", "pink_noise", "brown_noise"):
        y = _colored(rng, n, {"white_noise": 0.0, "pink_noise": 1.0, "brown_noise": 2.0}[family])
    elif family == "tone":
        y = np.sin(2 * np.pi * rng.uniform(80, 4000) * t + rng.uniform(0, 2 * np.pi))
    elif family == "chord":
        root = rng.uniform(110, 440)
        ratios = (1.0, 1.26, 1.5) if rng.random() < 0.5 else (1.0, 1.19, 1.5, 1.78)
        y = sum(_harmonic(root * r, t, 4) for r in ratios) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 5) * t))
    elif family == "music":
        bpm = rng.uniform(80, 160)
        beat = int(sr * 60 / bpm)
        y = np.zeros(n)
        scale = 220 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
        for start in range(0, n, beat // 2):
            seg = np.arange(min(beat // 2, n - start)) / sr
            y[start:start + seg.size] += _harmonic(rng.choice(scale) * rng.choice([1, 2]), seg, 5) * np.exp(-seg * 4)
        for start in range(0, n, beat):  # a kick drum: a falling tone
            seg = np.arange(min(int(0.15 * sr), n - start)) / sr
            y[start:start + seg.size] += 1.5 * np.sin(2 * np.pi * (60 + 100 * np.exp(-seg * 30)) * seg) * np.exp(-seg * 20)
    elif family == "hum":
        mains = 50.0 if rng.random() < 0.5 else 60.0
        y = sum(rng.uniform(0.1, 1) * np.sin(2 * np.pi * mains * k * t) for k in range(1, 6))
        y = y + 0.02 * _colored(rng, n, 1.0)
    elif family == "clicks":
        period = int(sr * rng.uniform(0.05, 0.5))
        y = np.zeros(n)
        y[rng.integers(0, period)::period] = 1.0
        y = scipy.signal.lfilter([1.0], [1.0, -0.6], y) + 1e-3 * rng.standard_normal(n)
    elif family == "door_slam":
        y = 1e-3 * rng.standard_normal(n)
        for _ in range(rng.integers(1, 4)):
            start = int(rng.integers(0, n - sr // 4))
            seg = np.arange(n - start) / sr
            burst = _colored(rng, seg.size, 1.5) * np.exp(-seg * rng.uniform(8, 25))
            y[start:] += rng.uniform(0.5, 1.0) * burst
    elif family == "fan":
        blade = rng.uniform(80, 300)
        y = _colored(rng, n, 1.0)
        b, a = scipy.signal.butter(2, rng.uniform(600, 2000) / (sr / 2))
        y = scipy.signal.lfilter(b, a, y) + 0.3 * np.sin(2 * np.pi * blade * t)
    else:
        raise ValueError(f"unknown non-speech family {family!r}")
    y = np.asarray(y, np.float64)
    return y / max(np.sqrt(np.mean(y * y)), 1e-12)


def _speech_like(family: str, rng: np.random.Generator, sr: int, n: int, index: int) -> np.ndarray:
    speakers = synthetic.make_speakers(4, seed=9000 + index)
    emotion = list(synthetic.PROFILES)[int(rng.integers(0, len(synthetic.PROFILES)))]
    base = speakers[int(rng.integers(0, 4))]

    def voice(spk: synthetic.Speaker, r: np.random.Generator) -> np.ndarray:
        y = synthetic.synthesize(spk, emotion, r, sr=sr)
        start = int(r.integers(0, max(y.size - n, 0) + 1))
        return np.pad(y, (0, max(n - y.size, 0)))[start:start + n].astype(np.float64)

    if family == "high_voice":
        y = voice(dataclasses.replace(base, f0=float(rng.uniform(420, 600)), vtl_scale=1.45), rng)
    elif family == "low_voice":
        y = voice(dataclasses.replace(base, f0=float(rng.uniform(45, 65)), vtl_scale=0.75), rng)
    elif family == "whisper":  # breath only: the voiced source switched off
        y = voice(dataclasses.replace(base, breath=4.0, jitter=0.0), rng)
        b, a = scipy.signal.butter(2, 300 / (sr / 2), "high")
        y = scipy.signal.lfilter(b, a, y)
    elif family == "reversed_speech":
        y = voice(base, rng)[::-1]
    elif family == "babble":
        y = sum(voice(s, rng) for s in speakers)
    else:
        raise ValueError(f"unknown speech-like family {family!r}")
    return y / max(np.sqrt(np.mean(y * y)), 1e-12)


def ood_clips(per_family: int = 8, seed: int = 0, sr: int = contract.SAMPLE_RATE,
              n_samples: int = contract.N_SAMPLES) -> list[OodClip]:
    """``per_family`` clips of every family, deterministic in ``seed``.

    Each clip's RMS is drawn log-uniformly between -50 and -10 dBFS (a natural range of
    levels; the model and the VAD both see it RMS-normalised).
    """
    out = []
    for fi, family in enumerate(NON_SPEECH + SPEECH_LIKE):
        for i in range(per_family):
            rng = np.random.default_rng(np.random.SeedSequence([seed, OOD_VERSION, fi, i]))
            level = 10 ** (rng.uniform(-50, -10) / 20)
            speech_like = family in SPEECH_LIKE
            y = (_speech_like(family, rng, sr, n_samples, fi * 1000 + i) if speech_like
                 else _non_speech(family, rng, sr, n_samples))
            out.append(OodClip(family, speech_like, (y * level).astype(np.float32)))
    return out
