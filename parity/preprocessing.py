"""The shipped JS preprocessing (``js_harness/lib/preprocess.mjs``) against Python's.

The original web app re-implemented RMS normalisation in JavaScript and nobody
checked it.  Here generated recordings (several sample rates, stereo, a silent
window, a clip shorter than a window) go through both implementations: the
windows must match in number, position and silence, their samples must agree
(to float32 rounding at the model's rate; within the resamplers' difference
otherwise: librosa's soxr in Python, a Kaiser-windowed sinc in JS), and the
model's probabilities on both must agree (the rules: :func:`parity.judge.judge_preprocessing`).
Every runner with the ``"preprocess"`` capability runs it in its own JS engine: Node's,
or Chromium's for the browser runners.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ser_export import contract
from ser_export.audio import model_windows, to_mono
from ser_export.data import synthetic

from .record import PreprocessRecord


@dataclasses.dataclass(frozen=True)
class Recording:
    name: str
    sample_rate: int
    channels: int
    seconds: float
    silent_window: int | None = None  # index of a window made silent

    def render(self) -> np.ndarray:
        """Planar ``(channels, n)`` float32 synthetic speech at ``sample_rate``."""
        import librosa

        speakers = synthetic.make_speakers(4, seed=11)
        pieces = []
        for i in range(int(np.ceil(self.seconds / synthetic.UTTERANCE_S)) + 1):
            emotion = list(synthetic.PROFILES)[i % len(synthetic.PROFILES)]
            pieces.append(synthetic.synthesize(speakers[i % 4], emotion, np.random.default_rng(i)))
        y = np.concatenate(pieces)[: int(self.seconds * contract.SAMPLE_RATE)] * 0.1
        if self.silent_window is not None:
            n = contract.N_SAMPLES
            y[self.silent_window * n:(self.silent_window + 1) * n] = 0.0
        if self.sample_rate != contract.SAMPLE_RATE:
            y = librosa.resample(y, orig_sr=contract.SAMPLE_RATE, target_sr=self.sample_rate, res_type="soxr_hq")
        chans = [y * (1.0 if c == 0 else 0.6) for c in range(self.channels)]
        return np.stack(chans).astype(np.float32)


RECORDINGS = (
    Recording("22050Hz-mono-5s", 22050, 1, 5.0),
    Recording("22050Hz-stereo-silent-window", 22050, 2, 7.0, silent_window=1),
    Recording("22050Hz-mono-0.5s", 22050, 1, 0.5),
    Recording("44100Hz-stereo-3.3s", 44100, 2, 3.3),
    Recording("48000Hz-mono-2.1s", 48000, 1, 2.1),
    Recording("16000Hz-mono-6s", 16000, 1, 6.0),
)


def collect_preprocessing(runners: dict, session, meta: dict, recordings=RECORDINGS) -> dict[str, list]:
    """Each recording through every runner's JS preprocessing and once through Python's
    (:func:`ser_export.audio.model_windows`); all windows through ``session`` (onnxruntime-python
    on the probe model) for their logits.  Returns ``{runner: [PreprocessRecord]}``."""
    norm = meta["normalization"]
    n = int(meta["input_length"])
    sr = int(meta["sample_rate"])
    js_contract = {"sampleRate": sr, "inputLength": n, "normalization": norm}
    name = session.get_inputs()[0].name
    logits_name = session.get_outputs()[0].name

    def logits(x):
        if not x.shape[0]:
            return np.zeros((0, 0), np.float32)
        return session.run([logits_name], {name: np.ascontiguousarray(x, np.float32)})[0]

    def stack(windows):
        kept = [w for w in windows if w is not None]
        return np.stack(kept).astype(np.float32) if kept else np.zeros((0, n), np.float32)

    out: dict[str, list] = {r: [] for r in runners}
    for rec in recordings:
        planar = _rendered(rec)
        py_starts, py = model_windows(to_mono(planar.T, rec.sample_rate, sr), n, norm["rms_level_db"],
                                      norm["min_rms"])
        py_win = stack(py)
        py_logits = logits(py_win)
        for runner_name, runner in runners.items():
            reply = runner.preprocess(planar, rec.sample_rate, js_contract)
            js_win = stack([w["samples"] for w in reply["windows"]])
            comparable = js_win.shape == py_win.shape
            out[runner_name].append(PreprocessRecord(
                rec.name, rec.sample_rate == sr, [w["start"] for w in reply["windows"]], list(py_starts),
                [w["samples"] is None for w in reply["windows"]], [w is None for w in py], js_win, py_win,
                logits(js_win) if comparable else np.zeros((0, 0), np.float32),
                py_logits if comparable else np.zeros((0, 0), np.float32), float(reply["ms"])))
    return out


_RENDERED: dict = {}


def _rendered(rec: Recording) -> np.ndarray:
    """Recordings are rendered once per process (librosa's resampler is the slow part)."""
    if rec not in _RENDERED:
        _RENDERED[rec] = rec.render()
    return _RENDERED[rec]
