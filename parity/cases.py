"""Test waveforms for audio front-ends, drawn by hypothesis as small, replayable specs.

A :class:`CaseSpec` (kind, parameters, seed, normalised) is what hypothesis draws and
shrinks; :func:`render` turns it into a float32 waveform deterministically, so a
failing case can be printed, saved and replayed exactly.

Kinds: noise at many levels (down to 1e-7), tones from a few Hz to Nyquist, chirps,
impulses and clicks, silence with a short burst, full-scale square waves (clipping),
DC offset, very quiet signals near the ``amin`` floor, and the synthetic speech of
the embedded corpus.  Normalised cases satisfy the input contract (RMS 1) and are
checked end to end; unnormalised ones exercise the front-end alone.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed as hyp_seed, settings, strategies as st

from ser_export import contract

N = contract.N_SAMPLES
SR = contract.SAMPLE_RATE
KINDS = ("noise", "tone", "chirp", "impulses", "burst", "square", "dc", "quiet", "speech")


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """One test waveform, as drawn by hypothesis."""

    kind: str
    a: float          # kind-specific: level, frequency, ...
    b: float          # kind-specific: second frequency, phase, ...
    count: int        # kind-specific: number of clicks, burst length, speaker, ...
    seed: int
    normalised: bool

    def label(self) -> str:
        norm = "rms1" if self.normalised else "raw"
        return f"{self.kind}(a={self.a:.4g}, b={self.b:.4g}, count={self.count}, seed={self.seed}, {norm})"


def render(spec: CaseSpec, sample_rate: int = SR, n_samples: int = N, rms: float = 1.0) -> np.ndarray:
    """The waveform of ``spec``: float32, ``n_samples`` long at ``sample_rate`` (default: our models' contract).

    Frequencies are drawn as fractions of our models' Nyquist frequency and scaled to
    ``sample_rate``'s; a normalised case has RMS ``rms``.  With the defaults the
    waveforms are bit-identical to those the releases were built and checked with.
    """
    rng = np.random.default_rng(spec.seed)
    if (sample_rate, n_samples) != (SR, N):
        return _render_at(spec, sample_rate, n_samples, rms)
    t = np.arange(N) / SR
    if spec.kind == "noise":
        y = spec.a * rng.standard_normal(N)
    elif spec.kind == "tone":
        y = 0.5 * np.sin(2 * np.pi * spec.a * t + spec.b)
    elif spec.kind == "chirp":
        y = 0.5 * np.sin(2 * np.pi * (spec.a * t + (spec.b - spec.a) * t ** 2 / (2 * t[-1])))
    elif spec.kind == "impulses":
        y = np.zeros(N)
        y[rng.integers(0, N, max(spec.count, 1))] = rng.choice([-1.0, 1.0], max(spec.count, 1))
    elif spec.kind == "burst":
        y = np.zeros(N)
        start = int(spec.a * (N - 1))
        length = max(1, spec.count)
        seg = rng.standard_normal(length)[: N - start]
        y[start:start + seg.size] = seg
    elif spec.kind == "square":
        y = np.where(np.sin(2 * np.pi * spec.a * t + spec.b) >= 0, 1.0, -1.0)
    elif spec.kind == "dc":
        y = spec.a + spec.b * rng.standard_normal(N)
    elif spec.kind == "quiet":
        y = spec.a * rng.standard_normal(N)
    elif spec.kind == "speech":
        from ser_export.audio import fit_length
        from ser_export.data import synthetic

        speakers = synthetic.make_speakers(8, seed=spec.seed % 97)
        emotions = list(synthetic.PROFILES)
        speaker = speakers[spec.count % len(speakers)]
        emotion = emotions[int(spec.a * len(emotions)) % len(emotions)]
        y = fit_length(synthetic.synthesize(speaker, emotion, np.random.default_rng(spec.seed)))
    else:
        raise ValueError(f"unknown case kind {spec.kind!r}")
    y = np.asarray(y, dtype=np.float64)
    if spec.normalised:
        energy = np.sum(y * y)
        if energy <= 0:
            raise ValueError(f"{spec.label()} is silent and cannot be normalised")
        y = y * np.sqrt(N / energy) * rms
    return y.astype(np.float32)


def _render_at(spec: CaseSpec, sample_rate: int, n_samples: int, rms: float) -> np.ndarray:
    """:func:`render` at another rate and length: frequencies scaled by the Nyquist ratio, the
    speech resampled (polyphase), positions and lengths scaled by the length ratio."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = (sample_rate / 2) / (SR / 2)
    scaled = dataclasses.replace(spec, normalised=False)
    if spec.kind in ("tone", "chirp", "square"):
        scaled = dataclasses.replace(scaled, a=spec.a * ratio, b=spec.b * ratio if spec.kind == "chirp" else spec.b)
    if spec.kind == "burst":
        scaled = dataclasses.replace(scaled, count=max(1, int(spec.count * n_samples / N)))
    if spec.kind == "speech":
        base = render(scaled)
        frac = Fraction(sample_rate, SR).limit_denominator(1000)
        y = resample_poly(base.astype(np.float64), frac.numerator, frac.denominator)
    else:
        # the same recipe on a time axis of the new rate and length
        rng = np.random.default_rng(spec.seed)
        t = np.arange(n_samples) / sample_rate
        a, b = scaled.a, scaled.b
        if spec.kind in ("noise", "quiet"):
            y = a * rng.standard_normal(n_samples)
        elif spec.kind == "tone":
            y = 0.5 * np.sin(2 * np.pi * a * t + b)
        elif spec.kind == "chirp":
            y = 0.5 * np.sin(2 * np.pi * (a * t + (b - a) * t ** 2 / (2 * t[-1])))
        elif spec.kind == "impulses":
            y = np.zeros(n_samples)
            y[rng.integers(0, n_samples, max(spec.count, 1))] = rng.choice([-1.0, 1.0], max(spec.count, 1))
        elif spec.kind == "burst":
            y = np.zeros(n_samples)
            start = int(a * (n_samples - 1))
            seg = rng.standard_normal(scaled.count)[: n_samples - start]
            y[start:start + seg.size] = seg
        elif spec.kind == "square":
            y = np.where(np.sin(2 * np.pi * a * t + b) >= 0, 1.0, -1.0)
        elif spec.kind == "dc":
            y = a + b * rng.standard_normal(n_samples)
        else:
            raise ValueError(f"unknown case kind {spec.kind!r}")
    y = np.resize(np.asarray(y, np.float64), n_samples) if len(y) < n_samples else np.asarray(y[:n_samples],
                                                                                               np.float64)
    if spec.normalised:
        energy = np.sum(y * y)
        if energy <= 0:
            raise ValueError(f"{spec.label()} is silent and cannot be normalised")
        y = y * np.sqrt(n_samples / energy) * rms
    return y.astype(np.float32)


def _spec(kind: str, a, b, count, normalised) -> st.SearchStrategy[CaseSpec]:
    return st.builds(CaseSpec, kind=st.just(kind), a=a, b=b, count=count,
                     seed=st.integers(0, 2**31 - 1), normalised=normalised)


def case_specs(normalised: st.SearchStrategy[bool] | None = None) -> st.SearchStrategy[CaseSpec]:
    """Strategy over every kind; ``normalised`` defaults to mostly True."""
    norm = normalised if normalised is not None else st.sampled_from([True, True, True, False])
    zero = st.just(0.0)
    one = st.just(1)
    return st.one_of(
        _spec("noise", st.floats(1e-7, 1.0), zero, one, norm),
        _spec("tone", st.floats(2.0, SR / 2), st.floats(0.0, 6.28), one, norm),
        _spec("chirp", st.floats(2.0, SR / 2), st.floats(2.0, SR / 2), one, norm),
        _spec("impulses", zero, zero, st.integers(1, 40), norm),
        _spec("burst", st.floats(0.0, 1.0), zero, st.integers(1, 8000), norm),
        _spec("square", st.floats(1.0, 5000.0), st.floats(0.0, 6.28), one, norm),
        _spec("dc", st.floats(0.001, 1.0) | st.floats(-1.0, -0.001), st.floats(0.0, 0.05), one, norm),
        _spec("quiet", st.floats(1e-7, 1e-5), zero, one, norm),
        _spec("speech", st.floats(0.0, 0.999), zero, st.integers(0, 7), st.just(True)),
    )


def hypothesis_settings(max_examples: int, phases=(Phase.generate,)) -> settings:
    return settings(max_examples=max_examples, database=None, deadline=None, phases=phases,
                    suppress_health_check=list(HealthCheck), print_blob=False)


def draw_cases(n: int, seed: int = 0) -> list[CaseSpec]:
    """``n`` distinct specs from :func:`case_specs`, deterministic for ``seed``.

    Hypothesis generates them (its generator favours edge cases: extreme levels,
    frequencies at the bounds, single clicks), seeded so the same ``seed`` gives
    the same cases, and the shrink phase of :func:`shrink_failure` starts from the
    same sequence.
    """
    collected: list[CaseSpec] = []
    seen: set[CaseSpec] = set()

    @hyp_seed(seed)
    @hypothesis_settings(max(n * 3, n + 10))
    @given(case_specs())
    def collect(spec: CaseSpec) -> None:
        if len(collected) < n and spec not in seen:
            seen.add(spec)
            collected.append(spec)

    collect()
    return collected


def shrink_failure(n: int, seed: int, fails: Callable[[CaseSpec], bool], budget_s: float = 60.0) -> CaseSpec | None:
    """Replay :func:`draw_cases`' sequence and let hypothesis shrink the first failure.

    ``fails(spec)`` evaluates one spec (cached results make the replayed,
    already-judged cases free).  Returns the minimal failing spec found (None if
    nothing fails when run alone, e.g. a batch-composition bug).  New candidates
    stop being evaluated after ``budget_s`` seconds (they count as passing).
    """
    import time

    deadline = time.monotonic() + budget_s
    minimal: list[CaseSpec] = []

    @hyp_seed(seed)
    @hypothesis_settings(max(n * 3, n + 10), phases=(Phase.generate, Phase.shrink))
    @given(case_specs())
    def check(spec: CaseSpec) -> None:
        if time.monotonic() > deadline:
            return
        if fails(spec):
            minimal.append(spec)
            raise AssertionError(spec.label())

    try:
        check()
    except AssertionError:
        pass
    return minimal[-1] if minimal else None


def golden_specs(n: int = 8, seed: int = 20241) -> list[CaseSpec]:
    """Fixed end-to-end cases (no hypothesis: stable across library versions).

    Mostly synthetic speech, plus a tone, a chirp and noise; all normalised.
    """
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        kind = ("speech", "speech", "tone", "speech", "chirp", "speech", "noise", "speech")[i % 8]
        specs.append(CaseSpec(kind=kind, a=float(rng.uniform(0.0, 0.999)) if kind == "speech" else
                              float(rng.uniform(80, 4000)) if kind in ("tone", "chirp") else 0.1,
                              b=float(rng.uniform(80, 4000)) if kind == "chirp" else 0.0,
                              count=int(rng.integers(0, 8)), seed=int(rng.integers(0, 2**31 - 1)),
                              normalised=True))
    return specs


def batch_digest(x: np.ndarray) -> str:
    """sha256 of a float32 batch (to notice regenerated inputs that differ)."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()
