"""``python -m ser_export predict``: emotions with probabilities for an audio file.

The contract (sample rate, input length, normalisation, labels) is read from the
model's metadata, not from this package's constants, so any ser_export release
model works.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from scipy.special import softmax

from . import contract
from .audio import load_audio, model_windows
from .errors import AudioError, SerExportError, SilentAudioError


def default_model_path() -> Path:
    """``saved_models/voice_emotion_cnn.onnx`` under the current directory, else the checkout's."""
    name = contract.MODEL_FILES["alexnet"]
    local = Path("saved_models") / name
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "saved_models" / name


@dataclasses.dataclass
class Prediction:
    labels: tuple[str, ...]
    probabilities: np.ndarray          # (n_labels,) mean over non-silent windows
    window_probabilities: np.ndarray   # (n_windows, n_labels)
    window_starts_s: list[float]
    silent_windows: list[float]        # starts (s) of windows skipped as silent
    duration_s: float

    @property
    def top(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "probabilities": {l: round(float(p), 6) for l, p in zip(self.labels, self.probabilities)},
            "windows": [{"start_s": s, "top": self.labels[int(np.argmax(p))],
                         "probabilities": {l: round(float(x), 6) for l, x in zip(self.labels, p)}}
                        for s, p in zip(self.window_starts_s, self.window_probabilities)],
            "silent_windows_start_s": self.silent_windows,
            "duration_s": round(self.duration_s, 3),
        }


def load_session(model_path: str | os.PathLike):
    """An onnxruntime session and the model's decoded metadata."""
    import onnxruntime as ort

    from .export.metadata import read_metadata

    from .export.model_file import open_model

    model_path = Path(model_path)
    if not model_path.exists() and not model_path.is_symlink():
        raise SerExportError(f"{model_path}: model file not found (build one with `python -m ser_export build`)")
    model = open_model(model_path)  # one-line ReleaseFileError for anything that is not a sound model file
    meta = read_metadata(model.proto)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: stdout/stderr stay for the result and one-line errors
        session = ort.InferenceSession(model.proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises assorted types for models it cannot run
        raise SerExportError(f"{model_path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
    for key in ("labels", "sample_rate", "input_length", "normalization"):
        if key not in meta:
            raise SerExportError(f"{model_path}: metadata has no {key!r} (not a ser_export model)")
    return session, meta


def predict_file(audio_path: str | os.PathLike, model_path: str | os.PathLike | None = None) -> Prediction:
    """Classify ``audio_path`` in consecutive windows of the model's input length."""
    if not Path(audio_path).exists():  # check the cheap things before loading a model
        raise AudioError(f"{audio_path}: no such file")
    session, meta = load_session(model_path or default_model_path())
    sr, n = int(meta["sample_rate"]), int(meta["input_length"])
    norm = meta["normalization"]
    y = load_audio(audio_path, sr=sr)
    batch, starts, silent = [], [], []
    for start, window in zip(*model_windows(y, n, norm["rms_level_db"], norm["min_rms"])):
        if window is None:
            silent.append(round(start / sr, 3))
        else:
            batch.append(window)
            starts.append(round(start / sr, 3))
    if not batch:
        raise SilentAudioError(
            f"{audio_path}: silent: every {n / sr:.1f} s window has RMS below {norm['min_rms']:g} "
            f"({len(silent)} window{'s' if len(silent) != 1 else ''})")
    logits = session.run(None, {session.get_inputs()[0].name: np.stack(batch)})[0]
    if not np.all(np.isfinite(logits)):
        raise AudioError(f"{audio_path}: the model produced non-finite scores")
    probs = softmax(logits.astype(np.float64), axis=-1)
    return Prediction(labels=tuple(meta["labels"]), probabilities=probs.mean(axis=0), window_probabilities=probs,
                      window_starts_s=starts, silent_windows=silent, duration_s=y.size / sr)


def format_prediction(path: str, pred: Prediction) -> str:
    lines = [f"{path}: {pred.duration_s:.2f} s, {len(pred.window_starts_s)} window(s)"
             + (f", {len(pred.silent_windows)} silent window(s) skipped" if pred.silent_windows else "")]
    order = np.argsort(-pred.probabilities)
    width = max(len(l) for l in pred.labels)
    for i in order:
        p = float(pred.probabilities[i])
        lines.append(f"  {pred.labels[i]:<{width}}  {p:6.1%}  {'#' * int(round(p * 40))}")
    if len(pred.window_starts_s) > 1:
        lines.append("  per window: " + ", ".join(
            f"{s:.1f}s {pred.labels[int(np.argmax(p))]}" for s, p in zip(pred.window_starts_s, pred.window_probabilities)))
    return "\n".join(lines)
