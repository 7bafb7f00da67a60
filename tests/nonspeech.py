"""The three non-speech files of issue 10's table (3 s at 22050 Hz): white noise at RMS 0.1, a C-major
chord with a slow tremolo, and clicks every 0.2 s."""
from pathlib import Path

import numpy as np

from tests.conftest import write_wav

SR = 22050


def nonspeech_waves() -> dict[str, np.ndarray]:
    n = 3 * SR
    t = np.arange(n) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t))
    clicks = np.zeros(n)
    clicks[:: int(0.2 * SR)] = 0.8
    return {"white_noise": 0.1 * np.random.default_rng(0).standard_normal(n), "chord": 0.1 * chord, "clicks": clicks}


def write_nonspeech(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: write_wav(folder / f"{name}.wav", y, sr=SR, subtype="FLOAT") for name, y in nonspeech_waves().items()}
