"""Small corpus trees in each real corpus's layout, audio format and naming, generated on the spot.

Nothing is downloaded: the speech is ser_export's synthetic voice (a different set of
speakers per corpus), written at each corpus's sample rate, sample format and channel
count, under its file-naming convention.  Each function returns the tree's root.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from ser_export.data import synthetic

#: Our label -> the corpus's emotion code or name (only the emotions each corpus has).
RAVDESS_CODES = {"neutral": "01", "calm": "02", "happy": "03", "sad": "04", "angry": "05", "fearful": "06",
                 "disgusted": "07", "surprised": "08"}
EMODB_LETTERS = {"angry": "W", "disgusted": "E", "fearful": "A", "happy": "F", "sad": "T", "neutral": "N"}
TESS_NAMES = {"angry": "angry", "disgusted": "disgust", "fearful": "fear", "happy": "happy", "neutral": "neutral",
              "surprised": "ps", "sad": "sad"}
JL_NAMES = {"angry": "angry", "sad": "sad", "neutral": "neutral", "happy": "happy", "surprised": "excited",
            "fearful": "anxious"}

SAMPLE_RATES = {"ravdess": 48000, "emodb": 16000, "tess": 24414, "jl": 44100}


def _voice(speaker: synthetic.Speaker, emotion: str, key: tuple[int, ...], sr: int) -> np.ndarray:
    """An utterance of ``speaker`` (``calm`` uses the synthetic calm profile), peak 0.5, at ``sr``."""
    y = synthetic.synthesize(speaker, emotion, synthetic.clip_rng(*key), sr=sr, duration=2.4)
    return 0.5 * y / np.max(np.abs(y))


def _write(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)


def ravdess(root: Path, actors: int = 4, repetitions: int = 1, seed: int = 101) -> Path:
    """``Actor_XX/03-01-EE-II-SS-RR-AA.wav``: 48 kHz, 16-bit, stereo; all 8 emotions per actor."""
    sr = SAMPLE_RATES["ravdess"]
    # RAVDESS: odd actors are male, even female; make_speakers alternates female, male from index 0
    for a, speaker in enumerate(synthetic.make_speakers(actors + 1, seed)[1:], start=1):
        for e, (emotion, code) in enumerate(RAVDESS_CODES.items()):
            for rep in range(1, repetitions + 1):
                y = _voice(speaker, emotion, (seed, a, e, rep), sr)
                stereo = np.stack([y, 0.8 * y], axis=1)
                _write(root / f"Actor_{a:02d}" / f"03-01-{code}-01-01-{rep:02d}-{a:02d}.wav", stereo, sr)
    return root


def emodb(root: Path, speakers: tuple[str, ...] = ("03", "08", "10", "13"), seed: int = 202) -> Path:
    """``wav/SSTTTEV.wav`` (e.g. ``03a01Fa.wav``): 16 kHz mono 16-bit; EMO-DB has no surprise,
    and its boredom (``L``) counts as neutral."""
    sr = SAMPLE_RATES["emodb"]
    letters = dict(EMODB_LETTERS, boredom="L")
    for s, (code, speaker) in enumerate(zip(speakers, synthetic.make_speakers(len(speakers), seed))):
        for e, (emotion, letter) in enumerate(letters.items()):
            voice = "neutral" if emotion == "boredom" else emotion
            _write(root / "wav" / f"{code}a0{e + 1}{letter}a.wav", _voice(speaker, voice, (seed, s, e, 0), sr), sr)
    return root


def tess(root: Path, words: tuple[str, ...] = ("back", "bar"), seed: int = 303) -> Path:
    """``<SPK>_<emotion>/<SPK>_<word>_<emotion>.wav``: 24.414 kHz mono 16-bit, speakers OAF and YAF
    (TESS's only two), a folder per speaker and emotion."""
    sr = SAMPLE_RATES["tess"]
    for s, (code, speaker) in enumerate(zip(("OAF", "YAF"), synthetic.make_speakers(2, seed))):
        for e, (emotion, name) in enumerate(TESS_NAMES.items()):
            folder = f"{code}_{'Pleasant_surprise' if name == 'ps' else name}"
            for w, word in enumerate(words):
                _write(root / folder / f"{code}_{word}_{name}.wav", _voice(speaker, emotion, (seed, s, e, w), sr), sr)
    return root


def jl(root: Path, speakers: tuple[str, ...] = ("female1", "female2", "male1", "male2"), seed: int = 404) -> Path:
    """``<speaker>_<emotion>_<sentence>_<take>.wav``: 44.1 kHz mono 16-bit; primary emotions, the
    secondary ``anxious`` (fearful) and ``excited`` (surprised), and an ``apologetic`` take that the
    loader skips; JL-corpus has no disgust."""
    sr = SAMPLE_RATES["jl"]
    for s, (code, speaker) in enumerate(zip(speakers, synthetic.make_speakers(len(speakers), seed))):
        for e, (emotion, name) in enumerate(JL_NAMES.items()):
            _write(root / f"{code}_{name}_1a_1.wav", _voice(speaker, emotion, (seed, s, e, 0), sr), sr)
        _write(root / f"{code}_apologetic_1a_1.wav", _voice(speaker, "sad", (seed, s, 99, 0), sr), sr)
    return root


MAKERS = {"ravdess": ravdess, "emodb": emodb, "tess": tess, "jl": jl}


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to ``keep`` of its bytes (a download or copy that stopped half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path
