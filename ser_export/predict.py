"""``python -m ser_export predict``: emotions with probabilities for an audio file.

The contract (sample rate, input length, normalisation, labels) is read from the
model's metadata, not from this package's constants, so any ser_export release
model works.  A file of any length is read block by block (:mod:`ser_export.longaudio`) and its
windows classified in batches of :data:`BATCH_WINDOWS`: memory does not grow with its length.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from scipy.special import softmax

from . import contract
from .errors import AudioError, SerExportError, SilentAudioError
from .longaudio import BLOCK_FRAMES, BlockWindows, WholeFileWindows
from .postprocess import (CLASSIFIED, NO_SPEECH, SILENT, UNCERTAIN, decide, postprocessing_of,
                          summary_probabilities)


def default_model_path() -> Path:
    """``saved_models/voice_emotion_cnn.onnx`` under the current directory, else the checkout's."""
    name = contract.MODEL_FILES["alexnet"]
    local = Path("saved_models") / name
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "saved_models" / name


@dataclasses.dataclass
class Prediction:
    """What ``predict`` says about a file.

    Every window gets a verdict: ``silent`` (RMS below the contract's floor),
    ``no_speech`` (the VAD heard too little speech), ``uncertain`` (unlike the training
    speech, or a calibrated top probability below the model's ``min_probability``) or
    ``classified``.  ``probabilities`` is the mean calibrated probability over the classified
    windows, ``None`` when there is none; ``to_dict`` gives probabilities only for classified
    windows (no emotion is named for the others).  A model without post-processing
    metadata (built before it existed) classifies every non-silent window with a plain softmax.
    """

    labels: tuple[str, ...]
    probabilities: np.ndarray | None   # (n_labels,) mean over classified windows
    window_probabilities: np.ndarray   # (n_windows, n_labels), calibrated; rows of silent windows are NaN
    window_starts_s: list[float]       # every window, silent ones included
    verdicts: list[str]                # per window
    speech_fractions: list[float | None]
    ood_scores: list[float | None]
    duration_s: float
    window_s: float                    # the model's window length, seconds
    postprocessing: bool = True

    @property
    def speech(self) -> bool:
        return any(v in (CLASSIFIED, UNCERTAIN) for v in self.verdicts)

    @property
    def verdict(self) -> str:
        """``classified`` when some window is, else ``uncertain`` when some window holds speech, else ``no_speech``."""
        return CLASSIFIED if CLASSIFIED in self.verdicts else UNCERTAIN if self.speech else NO_SPEECH

    @property
    def top(self) -> str | None:
        return None if self.probabilities is None else self.labels[int(np.argmax(self.probabilities))]

    def starts(self, verdict: str) -> list[float]:
        return [s for s, v in zip(self.window_starts_s, self.verdicts) if v == verdict]

    def to_dict(self) -> dict:
        def probs(p):
            return None if p is None or not np.all(np.isfinite(p)) else {
                l: round(float(x), 6) for l, x in zip(self.labels, p)}

        return {
            "speech": self.speech, "verdict": self.verdict, "top": self.top,
            "probabilities": probs(self.probabilities),
            "calibrated": self.postprocessing,
            "windows": [{"start_s": s, "verdict": v, "top": self.labels[int(np.argmax(p))] if v == CLASSIFIED else None,
                         "speech_fraction": None if f is None else round(float(f), 4),
                         "ood_score": None if o is None else round(float(o), 4),
                         "probabilities": probs(p) if v == CLASSIFIED else None}
                        for s, v, p, f, o in zip(self.window_starts_s, self.verdicts, self.window_probabilities,
                                                 self.speech_fractions, self.ood_scores)],
            "silent_windows_start_s": self.starts(SILENT),
            "no_speech_windows_start_s": self.starts(NO_SPEECH),
            "uncertain_windows_start_s": self.starts(UNCERTAIN),
            "duration_s": round(self.duration_s, 3),
        }


def variant_path(model_path: str | os.PathLike, variant: str | None) -> Path:
    """The file of ``model_path``'s ``variant`` (``fp16``, ``int8``) beside it; ``model_path`` itself for none."""
    from .export.variants import VARIANTS, variant_file

    model_path = Path(model_path)
    if variant is None:
        return model_path
    if variant not in VARIANTS:
        raise SerExportError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    path = model_path.with_name(variant_file(model_path.name, variant))
    if not path.exists() and not path.is_symlink():
        raise SerExportError(f"{path}: no {variant} variant beside {model_path.name} (a release built before "
                             f"variants? rebuild with `python -m ser_export build`)")
    return path


def load_session(model_path: str | os.PathLike):
    """An onnxruntime session and the model's decoded metadata."""
    from .export.metadata import read_metadata
    from .export.model_file import open_model
    from .ortsession import cpu_session

    model_path = Path(model_path)
    if not model_path.exists() and not model_path.is_symlink():
        raise SerExportError(f"{model_path}: model file not found (build one with `python -m ser_export build`)")
    model = open_model(model_path)  # one-line ReleaseFileError for anything that is not a sound model file
    meta = read_metadata(model)  # JSON values strictly parsed: a one-line ReleaseFileError naming the key
    try:
        session = cpu_session(model.proto.SerializeToString(), threads=1)  # logs errors only: stdout is the result
    except Exception as exc:  # onnxruntime raises assorted types for models it cannot run
        raise SerExportError(f"{model_path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
    for key in ("labels", "sample_rate", "input_length", "normalization"):
        if key not in meta:
            raise SerExportError(f"{model_path}: metadata has no {key!r} (not a ser_export model)")
    return session, meta


#: Non-silent windows classified per onnxruntime run (the model and the VAD): with the audio read in
#: blocks (:mod:`ser_export.longaudio`), what bounds predict's memory whatever the file's length.
BATCH_WINDOWS = 16


def predict_file(audio_path: str | os.PathLike, model_path: str | os.PathLike | None = None,
                 variant: str | None = None, *, block_frames: int | None = BLOCK_FRAMES,
                 batch_windows: int | None = BATCH_WINDOWS) -> Prediction:
    """Classify ``audio_path`` in consecutive windows of the model's input length.

    The model's ``postprocessing`` metadata decides which windows are classified
    (:mod:`ser_export.postprocess`): silence and windows without speech are skipped,
    windows unlike the training speech or classified with low confidence are "uncertain",
    probabilities are calibrated.  ``variant`` (``fp16``, ``int8``) runs that variant of the model,
    the file beside it.

    The file is read, resampled and cut ``block_frames`` frames at a time
    (:class:`ser_export.longaudio.BlockWindows`) and its non-silent windows classified
    ``batch_windows`` at a time, so memory does not grow with the file's length; the windows and
    numbers are those of the whole file in memory, which ``block_frames=None`` reads
    (:class:`ser_export.longaudio.WholeFileWindows`) and ``batch_windows=None`` classifies in one run.
    """
    if not Path(audio_path).exists():  # check the cheap things before loading a model
        raise AudioError(f"{audio_path}: no such file")
    if batch_windows is not None and int(batch_windows) < 1:
        raise SerExportError(f"batch_windows must be a positive number of windows, not {batch_windows}")
    model_path = variant_path(model_path or default_model_path(), variant)
    session, meta = load_session(model_path)
    info = meta.get("variant")
    if variant is not None and (info.get("name") if isinstance(info, dict) else None) != variant:
        raise SerExportError(f"{model_path}: its metadata does not name it the {variant} variant")
    pp = postprocessing_of(meta)
    sr, n = int(meta["sample_rate"]), int(meta["input_length"])
    norm = meta["normalization"]
    names = [o.name for o in session.get_outputs()]
    want = [names[0]] + ([meta["features_output"]] if pp and meta.get("features_output") in names else [])
    if pp and len(want) < 2:
        raise SerExportError(f"{model_path}: has post-processing metadata but no log-mel output")
    vad = None
    if pp is not None:
        from .vad import VoiceActivity

        vad = VoiceActivity(pp.vad, near=model_path)
    source = (WholeFileWindows(audio_path, sr, n, norm["rms_level_db"], norm["min_rms"]) if block_frames is None
              else BlockWindows(audio_path, sr, n, norm["rms_level_db"], norm["min_rms"], block_frames=block_frames))
    labels = tuple(meta["labels"])
    input_name = session.get_inputs()[0].name
    starts: list[int] = []
    probs: list[np.ndarray] = []
    verdicts: list[str] = []
    fractions: list[float | None] = []
    scores: list[float | None] = []
    pending: list[tuple[int, np.ndarray]] = []   # (window index, model input) not yet classified
    n_kept = 0

    def classify_pending() -> None:  # the windows in ``pending``, in one run of the model and one of the VAD
        batch = np.stack([w for _, w in pending])
        outs = session.run(want, {input_name: batch})
        logits = outs[0]
        if not np.all(np.isfinite(logits)):
            raise AudioError(f"{audio_path}: the model produced non-finite scores")
        if pp is None:
            p = softmax(logits.astype(np.float64), axis=-1)
            for j, (i, _) in enumerate(pending):
                probs[i], verdicts[i] = p[j], CLASSIFIED
        else:
            frames = vad.frame_probabilities(batch, sr)
            for j, (i, _) in enumerate(pending):
                # one window at a time: the OOD score's matrix product takes another BLAS kernel for one
                # row than for several, so a window's last bits would depend on the batch it fell in
                d = decide(frames[j:j + 1], logits[j:j + 1], outs[1][j:j + 1], pp)
                probs[i], verdicts[i] = d.probabilities[0], d.verdicts[0]
                fractions[i], scores[i] = float(d.speech_fraction[0]), float(d.ood_score[0])
        pending.clear()

    nan_row = np.full(len(labels), np.nan)
    for start, window in source:
        starts.append(start)
        probs.append(nan_row)
        verdicts.append(SILENT)
        fractions.append(None)
        scores.append(None)
        if window is not None:
            n_kept += 1
            pending.append((len(starts) - 1, window))
            if batch_windows is not None and len(pending) >= batch_windows:
                classify_pending()
    if n_kept == 0:
        raise SilentAudioError(
            f"{audio_path}: silent: every {n / sr:.1f} s window has RMS below {norm['min_rms']:g} "
            f"({len(starts)} window{'s' if len(starts) != 1 else ''})")
    if pending:
        classify_pending()
    window_probabilities = np.stack(probs)
    classified = [v == CLASSIFIED for v in verdicts]
    return Prediction(labels=labels, probabilities=summary_probabilities(window_probabilities, classified),
                      window_probabilities=window_probabilities, window_starts_s=[round(s / sr, 3) for s in starts],
                      verdicts=verdicts, speech_fractions=fractions, ood_scores=scores,
                      duration_s=source.n_samples_total / sr, postprocessing=pp is not None, window_s=n / sr)


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of consecutive windows with the same label: the emotion of classified windows, else the verdict.

    ``start_s`` is the first window's start, ``end_s`` the last window's end (at most the recording's
    end: the last window may be zero-padded), in seconds.
    """

    start_s: float
    end_s: float
    label: str
    windows: int


def segments(pred: Prediction) -> list[Segment]:
    """The runs of :class:`Segment` over ``pred``'s windows, in order."""
    out: list[Segment] = []
    for s, v, p in zip(pred.window_starts_s, pred.verdicts, pred.window_probabilities):
        label = pred.labels[int(np.argmax(p))] if v == CLASSIFIED else v
        end = round(min(s + pred.window_s, pred.duration_s), 3)
        if out and out[-1].label == label:
            out[-1] = dataclasses.replace(out[-1], end_s=end, windows=out[-1].windows + 1)
        else:
            out.append(Segment(start_s=s, end_s=end, label=label, windows=1))
    return out


def format_prediction(path: str, pred: Prediction) -> str:
    """The text ``predict`` prints: the file, its windows, what was skipped, the mean probabilities, the segments."""
    counts = {v: pred.verdicts.count(v) for v in (SILENT, NO_SPEECH, UNCERTAIN)}
    skipped = [f"{counts[SILENT]} silent", f"{counts[NO_SPEECH]} without speech", f"{counts[UNCERTAIN]} uncertain"]
    skipped = [s for s, k in zip(skipped, counts.values()) if k]
    lines = [f"{path}: {pred.duration_s:.2f} s, {len(pred.verdicts)} window(s)"
             + (f"; skipped: {', '.join(skipped)}" if skipped else "")]
    if pred.verdict == NO_SPEECH:
        lines.append("  no speech detected")
    elif pred.verdict == UNCERTAIN:
        lines.append("  uncertain: the speech is unlike the training speech, or the model is unsure; no emotion "
                     "is reported")
    else:
        order = np.argsort(-pred.probabilities)
        width = max(len(l) for l in pred.labels)
        for i in order:
            p = float(pred.probabilities[i])
            lines.append(f"  {pred.labels[i]:<{width}}  {p:6.1%}  {'#' * int(round(p * 40))}")
    if len(pred.verdicts) > 1:
        lines.append("  segments:")
        for seg in segments(pred):
            lines.append(f"    {seg.start_s:8.1f} - {seg.end_s:8.1f} s  {seg.label.replace('_', ' ')}"
                         + (f"  ({seg.windows} windows)" if seg.windows > 1 else ""))
    return "\n".join(lines)
