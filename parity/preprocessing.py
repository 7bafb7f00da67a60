"""The shipped JS preprocessing (``js_harness/lib/preprocess.mjs``) against Python's.

The original web app re-implemented RMS normalisation in JavaScript and nobody
checked it.  Here generated recordings (several sample rates, stereo, a silent
window, a clip shorter than a window) go through both implementations: the
windows must match in number, position and silence, their samples must agree
(to float32 rounding at the model's rate; within the resamplers' difference
otherwise: librosa's soxr in Python, a Kaiser-windowed sinc in JS), and the
model's probabilities on both must agree.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ser_export import contract
from ser_export.audio import model_windows, to_mono
from ser_export.data import synthetic
from ser_export.export.check import softmax

from .compare import StageResult


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


def check_js_preprocessing(node_runner, session, arch: str, meta: dict, tol: dict) -> list[StageResult]:
    """One result per recording; ``node_runner`` is a started Node harness runner."""
    norm = meta["normalization"]
    n = int(meta["input_length"])
    js_contract = {"sampleRate": int(meta["sample_rate"]), "inputLength": n, "normalization": norm}
    results = []
    with tempfile.TemporaryDirectory(prefix="ser_export_pre_") as tmp:
        for rec in RECORDINGS:
            planar = rec.render()
            inp = Path(tmp) / f"{rec.name}.f32"
            planar.astype("<f4").tofile(inp)
            out_dir = Path(tmp) / rec.name
            out_dir.mkdir()
            reply = node_runner._request({"cmd": "preprocess", "input": str(inp), "channels": rec.channels,
                                          "sampleRate": rec.sample_rate, "contract": js_contract,
                                          "outDir": str(out_dir)})
            js = [None if w["silent"] else np.fromfile(w["file"], dtype="<f4") for w in reply["windows"]]
            js_starts = [w["start"] for w in reply["windows"]]
            py_starts, py = model_windows(to_mono(planar.T, rec.sample_rate, int(meta["sample_rate"])), n,
                                          norm["rms_level_db"], norm["min_rms"])
            same_rate = rec.sample_rate == int(meta["sample_rate"])
            limit = tol["same_rate_samples"] if same_rate else tol["resampled_samples"]
            where: dict = {"input": rec.name}
            problems = []
            if js_starts != py_starts:
                problems.append(f"window starts differ: js {js_starts} vs python {py_starts}")
            if [w is None for w in js] != [w is None for w in py]:
                problems.append(f"silent windows differ: js {[w is None for w in js]} vs python {[w is None for w in py]}")
            sample_err, prob_err = 0.0, 0.0
            if not problems:
                pairs = [(a, b) for a, b in zip(js, py) if a is not None]
                for i, (a, b) in enumerate(pairs):
                    e = float(np.abs(a - b).max())
                    if e > sample_err:
                        sample_err, where = e, {"input": rec.name, "window": i, "sample": int(np.abs(a - b).argmax())}
                if pairs:
                    name = session.get_inputs()[0].name
                    pa = softmax(session.run(["output"], {name: np.stack([a for a, _ in pairs])})[0].astype(np.float64))
                    pb = softmax(session.run(["output"], {name: np.stack([b for _, b in pairs])})[0].astype(np.float64))
                    prob_err = float(np.abs(pa - pb).max())
            passed = not problems and sample_err <= limit and prob_err <= tol["probabilities"]
            results.append(StageResult(
                arch, f"js_preprocessing[{rec.name}]", "onnxruntime-web-wasm", "python-preprocessing", passed, limit,
                sample_err, sample_err, len(js), where,
                detail="; ".join(problems) or f"probabilities max |diff| {prob_err:.3g} "
                                               f"(tolerance {tol['probabilities']:g}); JS took {reply['ms']:.0f} ms"))
    return results
