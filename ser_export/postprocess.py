"""What happens to a window after the model: voice activity, calibration and "uncertain".

The ONNX ``output`` stays raw logits (the gate's contract).  The shipped post-processing,
written into every model's metadata as ``postprocessing`` (JSON) and applied the same way
here and in ``js_harness/lib/postprocess.mjs``:

1. **voice activity** (:mod:`ser_export.vad`): a window without enough speech is
   ``"no_speech"`` and is not classified;
2. **calibration**: probabilities are ``softmax(logits / temperature)``, the temperature
   fitted on the validation speakers (Guo et al. 2017, "On calibration of modern neural
   networks");
3. **out-of-distribution**: a window whose log-mel is unlike the training speech is
   ``"uncertain"``.  The score is the Mahalanobis distance of the window's per-band
   log-mel mean and standard deviation (over frames) to the training speech, in the
   whitened space of their first principal components, divided by the number of
   components; the threshold is the ``quantile`` of the validation speakers' scores.
   (The build measures the alternatives too: the calibrated maximum probability and the
   energy score on the logits separate noise from speech worse than chance on our
   models, which are most confident on noise; see the manifest's ``ood.candidates``.)
"""
from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp, softmax

from .errors import SerExportError
from .io import UntrustedFileError, loads_json
from .vad import VadParams, is_speech, speech_fraction

#: Version of the ``postprocessing`` metadata layout.
POSTPROCESSING_VERSION = 1

#: Window verdicts, in the order they are decided.
SILENT, NO_SPEECH, UNCERTAIN, CLASSIFIED = "silent", "no_speech", "uncertain", "classified"

#: A calibrated top probability at least this is a "confident" emotion (the targets' definition).
CONFIDENT_PROBABILITY = 0.8

#: The OOD score's name in the metadata (the only one the runtimes implement).
OOD_SCORE = "logmel_band_mahalanobis"


@dataclasses.dataclass(frozen=True)
class OodParams:
    """The out-of-distribution score (see the module docstring).

    mean : (2 * n_mels,) mean of the training speech's band statistics.
    projection : (2 * n_mels, k) whitened principal directions.
    threshold : a score above this is "uncertain".
    """

    mean: tuple[float, ...]
    projection: tuple[tuple[float, ...], ...]
    threshold: float
    quantile: float
    score: str = OOD_SCORE

    def to_dict(self) -> dict:
        return {"score": self.score, "statistics": "per-band mean and standard deviation of the log-mel over frames",
                "quantile": self.quantile, "threshold": self.threshold, "mean": list(self.mean),
                "projection": [list(r) for r in self.projection]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "OodParams":
        if data.get("score") != OOD_SCORE:
            raise SerExportError(f"postprocessing.ood.score {data.get('score')!r} is not {OOD_SCORE!r}")
        return cls(mean=tuple(data["mean"]), projection=tuple(tuple(r) for r in data["projection"]),
                   threshold=float(data["threshold"]), quantile=float(data["quantile"]))


@dataclasses.dataclass(frozen=True)
class Confidence:
    """Low-confidence rejection: a calibrated top probability below ``min_probability`` is "uncertain"."""

    min_probability: float
    quantile: float

    def to_dict(self) -> dict:
        return {"min_probability": self.min_probability, "quantile": self.quantile}


@dataclasses.dataclass(frozen=True)
class PostProcessing:
    temperature: float
    vad: VadParams
    ood: OodParams
    confidence: Confidence

    def to_dict(self) -> dict:
        return {"version": POSTPROCESSING_VERSION, "temperature": self.temperature, "vad": self.vad.to_dict(),
                "ood": self.ood.to_dict(), "confidence": self.confidence.to_dict(),
                "confident_probability": CONFIDENT_PROBABILITY}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping) -> "PostProcessing":
        try:
            if data.get("version") != POSTPROCESSING_VERSION:
                raise SerExportError(f"postprocessing version {data.get('version')!r} is not "
                                     f"{POSTPROCESSING_VERSION}")
            t = float(data["temperature"])
            if not (np.isfinite(t) and t > 0):
                raise SerExportError(f"postprocessing.temperature must be a positive number, not {t}")
            conf = data["confidence"]
            return cls(temperature=t, vad=VadParams.from_dict(data["vad"]), ood=OodParams.from_dict(data["ood"]),
                       confidence=Confidence(float(conf["min_probability"]), float(conf["quantile"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise SerExportError(f"postprocessing metadata is malformed ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------ calibration ---
def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` over the last axis (float64)."""
    return softmax(np.asarray(logits, np.float64) / temperature, axis=-1)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising the negative log-likelihood of ``targets`` (Guo et al. 2017).

    Parameters
    ----------
    logits : np.ndarray [shape=(n, n_classes)]
    targets : np.ndarray [shape=(n,), dtype=int]
    """
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.int64)
    if logits.shape[0] == 0:
        raise SerExportError("cannot fit a temperature on 0 validation clips")

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=-1)[np.arange(targets.size), targets].mean())

    res = minimize_scalar(nll, bounds=tuple(np.log(bounds)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


# -------------------------------------------------------------------------- OOD ---
def band_statistics(logmel: np.ndarray) -> np.ndarray:
    """Per-band mean and standard deviation over frames.

    Parameters
    ----------
    logmel : np.ndarray [shape=(b, 1, n_mels, n_frames) or (b, n_mels, n_frames)]

    Returns
    -------
    np.ndarray [shape=(b, 2 * n_mels), dtype=float64]
    """
    x = np.asarray(logmel, np.float64)
    if x.ndim == 4:
        x = x[:, 0]
    mean = x.mean(axis=-1)
    std = np.sqrt(np.mean((x - mean[..., None]) ** 2, axis=-1))
    return np.concatenate([mean, std], axis=-1)


def fit_ood(train_logmel: np.ndarray, val_logmel: np.ndarray, k: int = 16, quantile: float = 0.95,
            digits: int = 7) -> OodParams:
    """Fit the OOD score on training speech; fix its threshold at ``quantile`` of the validation scores.

    The parameters are rounded to ``digits`` significant digits (what the metadata holds)
    before the threshold is computed, so the threshold belongs to the stored numbers.
    """
    f = band_statistics(train_logmel)
    mu = f.mean(axis=0)
    _, s, vt = np.linalg.svd(f - mu, full_matrices=False)
    k = min(k, vt.shape[0])
    scale = s[:k] / np.sqrt(max(f.shape[0] - 1, 1))
    proj = vt[:k].T / np.maximum(scale, 1e-12)

    def r(a):
        return np.vectorize(lambda v: float(f"{v:.{digits}g}"))(a)

    params = OodParams(mean=tuple(r(mu)), projection=tuple(map(tuple, r(proj))), threshold=0.0, quantile=quantile)
    val_scores = ood_scores(val_logmel, params)
    threshold = float(f"{np.quantile(val_scores, quantile):.{digits}g}")
    return dataclasses.replace(params, threshold=threshold)


def ood_scores(logmel: np.ndarray, params: OodParams) -> np.ndarray:
    """Out-of-distribution score per window (higher: less like the training speech): ``(b,)``."""
    z = (band_statistics(logmel) - np.asarray(params.mean)) @ np.asarray(params.projection)
    return np.sum(z * z, axis=-1) / z.shape[-1]


def energy_scores(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The energy score ``-T logsumexp(logits / T)`` (Liu et al. 2020; higher: less in-distribution)."""
    return -temperature * logsumexp(np.asarray(logits, np.float64) / temperature, axis=-1)


# ------------------------------------------------------------------ decisions ---
@dataclasses.dataclass
class WindowDecisions:
    """The post-processing of a batch of windows (arrays over windows)."""

    speech_fraction: np.ndarray     # (b,) fraction of VAD frames with speech
    speech: np.ndarray              # (b,) bool
    probabilities: np.ndarray       # (b, n_classes) calibrated
    ood_score: np.ndarray           # (b,)
    uncertain: np.ndarray           # (b,) bool: out of distribution or low confidence (meaningful where speech)

    @property
    def verdicts(self) -> list[str]:
        return [NO_SPEECH if not s else UNCERTAIN if u else CLASSIFIED
                for s, u in zip(self.speech, self.uncertain)]


def decide(frame_probs: np.ndarray, logits: np.ndarray, logmel: np.ndarray, pp: PostProcessing) -> WindowDecisions:
    """VAD decision, calibrated probabilities and the OOD flag of every window."""
    scores = ood_scores(logmel, pp.ood)
    probs = calibrated_probabilities(logits, pp.temperature)
    return WindowDecisions(speech_fraction=speech_fraction(frame_probs, pp.vad.threshold),
                           speech=is_speech(frame_probs, pp.vad), probabilities=probs, ood_score=scores,
                           uncertain=(scores > pp.ood.threshold) | (probs.max(axis=-1) < pp.confidence.min_probability))


def fit_confidence(val_probabilities: np.ndarray, quantile: float = 0.03, digits: int = 7) -> Confidence:
    """``min_probability`` at ``quantile`` of the validation windows' calibrated top probabilities."""
    top = np.asarray(val_probabilities, np.float64).max(axis=-1)
    return Confidence(min_probability=float(f"{np.quantile(top, quantile):.{digits}g}") if top.size else 0.0,
                      quantile=quantile)


def postprocessing_of(meta: Mapping) -> PostProcessing | None:
    """The model's post-processing from its decoded metadata (``None`` for a model without one)."""
    raw = meta.get("postprocessing")
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = loads_json(raw, "postprocessing metadata")
        except UntrustedFileError as exc:
            raise SerExportError(str(exc)) from None
    return PostProcessing.from_dict(raw)


def summary_probabilities(probabilities: np.ndarray, keep: Sequence[bool]) -> np.ndarray | None:
    """Mean calibrated probabilities over the kept windows (``None`` when none is kept)."""
    keep = np.asarray(keep, bool)
    return probabilities[keep].mean(axis=0) if keep.any() else None
