"""A deterministic synthetic emotional-speech corpus (the default, offline training data).

Nothing may be downloaded at build time, so the default build trains on speech the
package synthesises itself.  Each clip is a source-filter voice:

- **source**: Rosenberg glottal pulses on a per-sample f0 contour, with cycle-level
  jitter and shimmer, an open quotient (breathy vs. pressed phonation), optional
  creak (alternating periods), a spectral-tilt filter and breath noise gated by
  the glottal flow;
- **filter**: four vowel formants (cascaded two-pole resonators) per syllable,
  scaled by the speaker's vocal-tract length, with fricative and plosive onsets;
- **prosody**: syllable rhythm (rate, stress, pauses), declination, pitch accents,
  a final rise or fall and tremolo, drawn from per-emotion profiles.

The profiles follow the direction of the acoustic correlates reported in the
literature (Scherer 2003, "Vocal communication of emotion"; Juslin & Laukka 2003,
"Communication of emotions in vocal expression and music performance"):
anger is high and wide in f0, fast, with a flat spectral tilt (pressed voice) and
strong stress; sadness is low and narrow in f0, slow, soft, breathy, with a
steep tilt; fear is high with irregular (jittery) f0 and tremor, fast; happiness
is high and lively with wide f0 and fast rate; disgust is low with a falling
contour and creak; surprise has a wide range and a large final rise; calm and
neutral are moderate, calm slower and softer.  Values are illustrative choices of
ours in those directions, not measurements.

Clips are RMS-normalised by the training preprocessing, so overall loudness carries
no information: a model must use pitch, rhythm and voice quality.  Because every
clip is synthetic, models trained on it recognise these synthetic cues; they are
not validated on human speech.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Sequence

import numpy as np
import scipy.signal

from .. import contract

#: Bump when the synthesis changes, so cached features are not reused.
SYNTH_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: base pitch, vocal-tract scale and personal habits."""

    speaker_id: str
    sex: str
    f0: float            # habitual f0 in Hz
    vtl_scale: float     # formant frequency scale (shorter tract: larger)
    rate_scale: float    # personal speaking-rate factor
    range_scale: float   # personal pitch-range factor
    breath: float        # personal breathiness added to every emotion
    jitter: float        # personal jitter added to every emotion


@dataclasses.dataclass(frozen=True)
class Prosody:
    """Per-emotion voice and prosody parameters (relative to the speaker)."""

    f0_scale: float        # mean f0 relative to the speaker's habitual f0
    range_st: float        # pitch-accent excursion in semitones
    rate: float            # syllables per second
    open_quotient: float   # glottal open quotient: high = breathy/lax, low = pressed
    tilt: float            # -1 steep (soft) ... +1 flat (loud, strong harmonics)
    breath: float          # breath-noise level relative to the voiced source
    jitter: float          # cycle-to-cycle f0 perturbation (fraction)
    shimmer: float         # cycle-to-cycle amplitude perturbation (fraction)
    final_st: float        # final contour over the last syllables (+ rise, - fall)
    declination_st: float  # f0 drift over the utterance
    tremolo_hz: float      # f0 tremor rate (0: none)
    tremolo_st: float      # f0 tremor depth in semitones
    formant_scale: float   # articulation: >1 spread/smiling, <1 centralised
    stress_db: float       # loudness contrast of stressed syllables
    attack_ms: float       # syllable onset time
    pause_prob: float      # probability of a pause after a word
    creak: float           # share of creaky (alternating-period) voicing


PROFILES: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 2.5, 4.2, 0.60, 0.0, 0.04, 0.008, 0.03, -2.0, -2.0, 0, 0, 1.00, 4, 25, 0.15, 0.0),
    "calm": Prosody(0.93, 1.6, 3.4, 0.68, -0.35, 0.09, 0.006, 0.025, -2.5, -2.0, 0, 0, 0.98, 3, 45, 0.22, 0.0),
    "happy": Prosody(1.25, 6.5, 4.9, 0.50, 0.35, 0.03, 0.010, 0.03, 1.5, -1.0, 0, 0, 1.06, 6, 18, 0.10, 0.0),
    "sad": Prosody(0.86, 1.1, 2.8, 0.78, -0.75, 0.24, 0.018, 0.06, -4.0, -3.0, 0, 0, 0.95, 2, 55, 0.30, 0.0),
    "angry": Prosody(1.35, 5.5, 5.5, 0.38, 0.80, 0.02, 0.020, 0.05, -3.0, -1.0, 0, 0, 1.03, 9, 8, 0.08, 0.0),
    "fearful": Prosody(1.45, 3.5, 5.9, 0.60, 0.10, 0.16, 0.035, 0.07, 2.0, 0.0, 7.0, 0.8, 1.04, 4, 15, 0.25, 0.0),
    "disgusted": Prosody(0.90, 3.0, 3.1, 0.55, -0.20, 0.08, 0.020, 0.05, -5.0, -2.0, 0, 0, 0.97, 5, 30, 0.20, 0.45),
    "surprised": Prosody(1.30, 8.0, 4.3, 0.52, 0.20, 0.06, 0.012, 0.03, 7.0, 1.0, 0, 0, 1.05, 6, 15, 0.12, 0.0),
}

#: Vowel formants (F1..F4, Hz) of an adult male reference tract; bandwidths in Hz.
VOWELS = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0),
    "o": (570.0, 840.0, 2410.0, 3300.0),
    "u": (300.0, 870.0, 2240.0, 3300.0),
}
BANDWIDTHS = (80.0, 100.0, 140.0, 180.0)

#: Length of each synthesised utterance before trimming and cropping, in seconds.
UTTERANCE_S = 2.8


def make_speakers(n_speakers: int, seed: int) -> list[Speaker]:
    """``n_speakers`` speakers, alternating female and male, with seeded habits."""
    if n_speakers < 1:
        raise ValueError("n_speakers must be at least 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    speakers = []
    for i in range(n_speakers):
        female = i % 2 == 0
        speakers.append(Speaker(
            speaker_id=f"{'f' if female else 'm'}{i:02d}",
            sex="female" if female else "male",
            f0=float(rng.uniform(180, 240) if female else rng.uniform(95, 135)),
            vtl_scale=float(rng.uniform(1.10, 1.22) if female else rng.uniform(0.92, 1.02)),
            rate_scale=float(rng.uniform(0.88, 1.12)),
            range_scale=float(rng.uniform(0.8, 1.2)),
            breath=float(rng.uniform(0.0, 0.05)),
            jitter=float(rng.uniform(0.0, 0.006)),
        ))
    return speakers


def _vary(rng: np.random.Generator, value: float, rel: float = 0.12) -> float:
    """``value`` times a log-normal factor: per-clip variation around a profile."""
    return float(value * np.exp(rel * rng.standard_normal()))


def _resonator_sos(freqs: Sequence[float], bandwidths: Sequence[float], sr: int) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators as second-order sections."""
    sos = []
    nyquist_guard = 0.45 * sr
    for f, bw in zip(freqs, bandwidths):
        f = min(f, nyquist_guard)
        r = np.exp(-np.pi * bw / sr)
        c = 2.0 * r * np.cos(2.0 * np.pi * f / sr)
        gain = 1.0 - c + r * r
        sos.append([gain, 0.0, 0.0, 1.0, -c, r * r])
    return np.asarray(sos)


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    """Raised-cosine attack, flat sustain, raised-cosine release, length ``n``."""
    env = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n // 2)
    if attack > 0:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release > 0:
        env[n - release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    return env


def _smooth_noise(rng: np.random.Generator, n: int, corr: int) -> np.ndarray:
    """Unit-variance noise low-passed over about ``corr`` samples."""
    corr = max(int(corr), 1)
    coarse = rng.standard_normal(n // corr + 3)
    x = np.interp(np.arange(n) / corr, np.arange(coarse.size), coarse)
    return x / (np.std(x) + 1e-12)


def synthesize(speaker: Speaker, emotion: str, rng: np.random.Generator,
               sr: int = contract.SAMPLE_RATE, duration: float = UTTERANCE_S) -> np.ndarray:
    """One utterance of ``speaker`` in ``emotion``.

    Returns
    -------
    np.ndarray [shape=(round(duration * sr),), dtype=float32]
        Waveform at ``sr`` Hz (not normalised).
    """
    if emotion not in PROFILES:
        raise ValueError(f"no synthetic profile for emotion {emotion!r}")
    p = PROFILES[emotion]
    n = int(round(duration * sr))
    t = np.arange(n) / sr

    rate = _vary(rng, p.rate * speaker.rate_scale, 0.10)
    range_st = _vary(rng, p.range_st * speaker.range_scale, 0.20)
    open_q = float(np.clip(_vary(rng, p.open_quotient, 0.08), 0.3, 0.9))
    tilt = float(np.clip(p.tilt + 0.15 * rng.standard_normal(), -1.0, 1.0))
    breath = _vary(rng, p.breath + speaker.breath, 0.25)
    jitter = _vary(rng, p.jitter + speaker.jitter, 0.25)
    shimmer = _vary(rng, p.shimmer, 0.25)
    formant_scale = speaker.vtl_scale * _vary(rng, p.formant_scale, 0.015)

    # ---- syllable plan: (start, end, stressed, vowel, onset kind) in samples ----
    syllables = []
    pos = int(rng.uniform(0.03, 0.2) * sr)
    while pos < n - int(0.15 * sr):
        n_syll = int(rng.integers(1, 4))
        stress_at = int(rng.integers(0, n_syll))
        for k in range(n_syll):
            stressed = k == stress_at
            dur = (1.0 / rate) * rng.uniform(0.75, 1.25) * (1.2 if stressed else 0.9)
            length = int(dur * sr)
            vowel = str(rng.choice(list(VOWELS)))
            onset = str(rng.choice(["none", "fricative", "plosive"], p=[0.3, 0.4, 0.3]))
            syllables.append((pos, min(pos + length, n), stressed, vowel, onset))
            pos += length
        gap = rng.uniform(0.12, 0.35) if rng.random() < p.pause_prob else rng.uniform(0.01, 0.05)
        pos += int(gap * sr)
    if not syllables:
        raise RuntimeError("synthesis produced no syllables")
    speech_end = syllables[-1][1]

    # ---- f0 contour in semitones around the emotion's mean pitch ----
    f0_st = p.declination_st * (t / duration - 0.5)
    for start, end, stressed, _, _ in syllables:
        if stressed or rng.random() < 0.25:
            centre, width = 0.5 * (start + end) / sr, max((end - start) / sr, 0.05)
            height = range_st * rng.uniform(0.5, 1.0) * (1.0 if rng.random() < 0.85 else -0.6)
            f0_st += height * np.exp(-0.5 * ((t - centre) / (0.35 * width)) ** 2)
    final_len = int(0.45 * sr)
    final_start = max(speech_end - final_len, 0)
    ramp = np.clip((np.arange(n) - final_start) / max(final_len, 1), 0.0, 1.0)
    f0_st += _vary(rng, abs(p.final_st), 0.2) * np.sign(p.final_st) * ramp ** 1.5
    if p.tremolo_hz > 0:
        f0_st += p.tremolo_st * np.sin(2 * np.pi * _vary(rng, p.tremolo_hz, 0.1) * t + rng.uniform(0, 6.3))
    f0_st += 0.4 * _smooth_noise(rng, n, int(0.15 * sr))
    f0 = speaker.f0 * _vary(rng, p.f0_scale, 0.05) * 2.0 ** (f0_st / 12.0)

    # ---- glottal source with cycle-level jitter, shimmer and creak ----
    cycle = np.floor(np.cumsum(f0) / sr).astype(np.int64)
    n_cycles = int(cycle[-1]) + 2
    cycle_jitter = 1.0 + jitter * rng.standard_normal(n_cycles)
    creaky = rng.random(n_cycles) < p.creak
    cycle_jitter *= np.where(creaky & (np.arange(n_cycles) % 2 == 0), 0.7, 1.0)
    phase = np.cumsum(f0 * cycle_jitter[cycle]) / sr
    frac = phase - np.floor(phase)
    idx = np.floor(phase).astype(np.int64)
    amp = 1.0 + shimmer * rng.standard_normal(int(idx[-1]) + 2)
    amp *= np.where(rng.random(amp.size) < p.creak, 0.55, 1.0)
    t_open, t_close = 0.6 * open_q, 0.4 * open_q
    flow = np.where(
        frac < t_open, 0.5 - 0.5 * np.cos(np.pi * frac / t_open),
        np.where(frac < t_open + t_close, np.cos(0.5 * np.pi * (frac - t_open) / t_close), 0.0),
    )
    flow *= amp[idx]
    source = np.diff(flow, prepend=flow[0])
    if tilt >= 0:  # flatten: first-difference pre-emphasis
        source = scipy.signal.lfilter([1.0, -0.6 * tilt], [1.0], source)
    else:  # steepen: one-pole low-pass
        source = scipy.signal.lfilter([1.0 + 0.75 * tilt], [1.0, 0.75 * tilt], source)
    noise = np.diff(rng.standard_normal(n + 1))
    source_rms = np.sqrt(np.mean(source ** 2)) + 1e-12
    source = source + breath * source_rms * noise * (0.35 + 0.65 * flow / (flow.max() + 1e-12))

    # ---- syllables through the vocal tract ----
    out = np.zeros(n)
    release = int(0.04 * sr)
    for start, end, stressed, vowel, onset in syllables:
        gain = 10.0 ** ((p.stress_db if stressed else 0.0) / 20.0) * _vary(rng, 1.0, 0.1)
        voice_start = start
        if onset != "none":
            cons_len = int((0.05 if onset == "fricative" else 0.015) * sr * rng.uniform(0.7, 1.4))
            cons_len = min(cons_len, max((end - start) // 3, 1))
            seg = rng.standard_normal(cons_len) * _envelope(cons_len, cons_len // 4, cons_len // 3)
            centre = min(rng.uniform(3000, 6000) * speaker.vtl_scale, 0.4 * sr)
            sos = scipy.signal.butter(2, [0.6 * centre, min(1.4 * centre, 0.48 * sr)],
                                      btype="bandpass", fs=sr, output="sos")
            level = (0.3 if onset == "fricative" else 0.5) * gain * source_rms * 1.5
            out[start:start + cons_len] += level * scipy.signal.sosfilt(sos, seg)
            voice_start = start + cons_len + (int(0.01 * sr) if onset == "plosive" else 0)
        stop = min(end + release, n)
        if stop - voice_start < 8:
            continue
        attack = int(_vary(rng, p.attack_ms, 0.2) * 1e-3 * sr)
        env = _envelope(stop - voice_start, attack, release)
        freqs = [f * formant_scale for f in VOWELS[vowel]]
        sos = _resonator_sos(freqs, BANDWIDTHS, sr)
        out[voice_start:stop] += gain * scipy.signal.sosfilt(sos, source[voice_start:stop] * env)

    # a faint room-noise floor (about -55 dB re the speech RMS)
    speech_rms = np.sqrt(np.mean(out ** 2)) + 1e-12
    out += speech_rms * 10 ** (-55 / 20) * rng.standard_normal(n)
    return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SyntheticCorpusSpec:
    """What to synthesise: speakers x emotions x takes, all from one seed."""

    n_speakers: int = 12
    takes: int = 16
    labels: tuple[str, ...] = contract.LABEL_SETS[contract.DEFAULT_LABEL_SET]
    seed: int = 0

    def __post_init__(self) -> None:
        missing = [label for label in self.labels if label not in PROFILES]
        if missing:
            raise ValueError(f"no synthetic profile for labels {missing}")
        if self.takes < 1:
            raise ValueError("takes must be at least 1")

    def fingerprint(self) -> str:
        data = dataclasses.asdict(self) | {"synth_version": SYNTH_VERSION}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def clip_rng(seed: int, speaker_index: int, label_index: int, take: int) -> np.random.Generator:
    """The generator of one clip: independent of the order clips are made in."""
    return np.random.default_rng(np.random.SeedSequence([seed, speaker_index, label_index, take]))
