"""Hypothesis strategies for waveforms that stress audio front-ends."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ser_export import contract

N = contract.N_SAMPLES
SR = contract.SAMPLE_RATE


def _t() -> np.ndarray:
    return np.arange(N) / SR


@st.composite
def waveforms(draw, normalised: bool = True) -> np.ndarray:
    """One float32 waveform of the input length: noise, tones, chirps, clicks, bursts, ..."""
    kind = draw(st.sampled_from(["noise", "tone", "chirp", "impulses", "burst", "square", "dc", "quiet"]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    t = _t()
    if kind == "noise":
        level = 10 ** draw(st.floats(-7, 0))
        y = level * rng.standard_normal(N)
    elif kind == "tone":
        f = draw(st.floats(2.0, SR / 2))
        y = draw(st.floats(1e-4, 1.0)) * np.sin(2 * np.pi * f * t + draw(st.floats(0, 6.28)))
    elif kind == "chirp":
        f0, f1 = draw(st.floats(5.0, SR / 2)), draw(st.floats(5.0, SR / 2))
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))
    elif kind == "impulses":
        y = np.zeros(N)
        y[rng.integers(0, N, draw(st.integers(1, 20)))] = rng.choice([-1.0, 1.0], 1)
    elif kind == "burst":
        y = np.zeros(N)
        start = draw(st.integers(0, N - 100))
        length = draw(st.integers(10, 4000))
        y[start:start + length] = rng.standard_normal(min(length, N - start))
    elif kind == "square":
        f = draw(st.floats(20.0, 4000.0))
        y = np.sign(np.sin(2 * np.pi * f * t)) + 1e-9
    elif kind == "dc":
        y = draw(st.floats(-1, 1).filter(lambda v: abs(v) > 1e-3)) + 0.01 * rng.standard_normal(N)
    else:  # "quiet": near the amin floor
        y = 1e-6 * rng.standard_normal(N)
    y = np.asarray(y, dtype=np.float64)
    if normalised:
        y = y * np.sqrt(N / np.sum(y * y))
    return y.astype(np.float32)
