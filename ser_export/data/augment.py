"""The original project's training augmentations, each driven by an explicit RNG.

Every function takes a float32 waveform at ``contract.SAMPLE_RATE`` and returns a
new one (lengths may change; :func:`ser_export.audio.prepare_clip` fits them
back to the input length afterwards).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .. import contract


def add_noise(y: np.ndarray, rng: np.random.Generator, max_fraction: float = 0.01) -> np.ndarray:
    """Add white noise with amplitude up to ``max_fraction`` of the clip's peak."""
    amplitude = rng.uniform(0.0, max_fraction) * float(np.max(np.abs(y)))
    return (y + amplitude * rng.standard_normal(y.size)).astype(np.float32)


def pitch_shift(y: np.ndarray, rng: np.random.Generator, max_steps: float = 4.0,
                sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Shift the pitch up by 0..``max_steps`` semitones (duration kept)."""
    import librosa

    steps = float(rng.uniform(0.0, max_steps))
    return librosa.effects.pitch_shift(y, sr=sr, n_steps=steps).astype(np.float32)


def circular_shift(y: np.ndarray, rng: np.random.Generator, step_s: float = 0.2,
                   max_s: float = 1.0, sr: int = contract.SAMPLE_RATE) -> np.ndarray:
    """Roll the clip by a random multiple of ``step_s`` seconds, at most ``max_s`` either way."""
    k = int(round(max_s / step_s))
    shift = int(rng.integers(-k, k + 1)) * int(round(step_s * sr))
    return np.roll(y, shift).astype(np.float32)


def time_stretch(y: np.ndarray, rng: np.random.Generator, min_rate: float = 0.8,
                 max_rate: float = 1.25) -> np.ndarray:
    """Change speed by a random rate in ``[min_rate, max_rate]`` (pitch kept)."""
    import librosa

    rate = float(rng.uniform(min_rate, max_rate))
    return librosa.effects.time_stretch(y, rate=rate).astype(np.float32)


def trim_edges(y: np.ndarray, rng: np.random.Generator, max_fraction: float = 0.1) -> np.ndarray:
    """Cut up to ``max_fraction`` of the clip from the left and from the right."""
    n = y.size
    left = int(rng.uniform(0.0, max_fraction) * n)
    right = int(rng.uniform(0.0, max_fraction) * n)
    return y[left:n - right].copy() if n - right > left else y.copy()


#: Augmentations by name, in the order they are applied when chosen together.
AUGMENTATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "time_stretch": time_stretch,
    "pitch_shift": pitch_shift,
    "trim_edges": trim_edges,
    "circular_shift": circular_shift,
    "noise": add_noise,
}


def random_augmentation(y: np.ndarray, rng: np.random.Generator,
                        names: Sequence[str] = tuple(AUGMENTATIONS),
                        probability: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Apply each augmentation in ``names`` with ``probability`` (at least one).

    Returns the augmented clip and the names applied, in order.
    """
    unknown = set(names) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentations {sorted(unknown)}; choose from {list(AUGMENTATIONS)}")
    chosen = [n for n in AUGMENTATIONS if n in names and rng.random() < probability]
    if not chosen and names:
        chosen = [list(n for n in AUGMENTATIONS if n in names)[int(rng.integers(len(names)))]]
    for name in chosen:
        y = AUGMENTATIONS[name](y, rng)
    return y, chosen
