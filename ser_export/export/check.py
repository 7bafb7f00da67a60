"""Pre-release check: PyTorch vs onnxruntime-python on real clips, and front-end vs librosa.

The build refuses to write a release when the exported file disagrees with the
PyTorch model beyond the tolerances of ``tolerances.json`` (the full
multi-runtime parity suite lives in ``parity/``).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from .. import tolerances
from ..errors import ReleaseCheckError
from ..frontend.reference import logmel_reference
from ..models import VoiceEmotionCnn


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top1_disagreements(ref_logits: np.ndarray, other_logits: np.ndarray, logit_tol: float) -> list[int]:
    """Cases whose argmax differs, except where the reference's top two logits are
    closer than ``logit_tol`` (a tie within tolerance may go either way)."""
    out = []
    ref_top = ref_logits.argmax(1)
    other_top = other_logits.argmax(1)
    for i in np.flatnonzero(ref_top != other_top):
        top2 = np.sort(ref_logits[i])[-2:]
        if top2[1] - top2[0] >= logit_tol:
            out.append(int(i))
    return out


def logmel_errors(features: np.ndarray, reference: np.ndarray, floor_margin_db: float,
                  top_db: float) -> dict:
    """Max |error| in dB over all bins and over bins ``floor_margin_db`` above the floor."""
    err = np.abs(features.astype(np.float64) - reference)
    above = reference > (-top_db + floor_margin_db)
    return {"max_abs_all_bins": float(err.max()),
            "max_abs_above_floor": float(err[above].max()) if above.any() else 0.0,
            "floor_margin_db": floor_margin_db}


def check_release(model: VoiceEmotionCnn, onnx_bytes: bytes, waveforms: np.ndarray) -> dict:
    """Compare PyTorch and onnxruntime-python on ``waveforms``; raise if they disagree.

    Parameters
    ----------
    model : VoiceEmotionCnn
        The model in eval mode.
    onnx_bytes : bytes
        The serialised release model.
    waveforms : np.ndarray [shape=(n, 46305), dtype=float32]
        RMS-normalised clips (held-out test clips).

    Returns
    -------
    dict
        Figures for the manifest: max |logit| and |probability| differences,
        top-1 agreement, front-end error vs librosa, tolerances used.
    """
    if waveforms.ndim != 2 or waveforms.shape[0] == 0:
        raise ReleaseCheckError("the release check needs at least one test clip")
    x = np.ascontiguousarray(waveforms, dtype=np.float32)
    model = model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
        torch_features = model.features(torch.from_numpy(x)).numpy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    ort_logits = session.run(None, {session.get_inputs()[0].name: x})[0]

    tol_logits = tolerances.for_stage("logits", "onnxruntime-python")["max_abs"]
    tol_probs = tolerances.for_stage("probabilities", "onnxruntime-python")["max_abs"]
    tol_mel = tolerances.for_stage("logmel_db", "pytorch")
    logit_diff = np.abs(torch_logits - ort_logits)
    prob_diff = np.abs(softmax(torch_logits) - softmax(ort_logits))
    disagree = top1_disagreements(torch_logits, ort_logits, tol_logits)
    params = model.frontend_params
    mel = logmel_errors(torch_features, logmel_reference(x, params), tol_mel["floor_margin_db"], params.top_db)
    result = {
        "cases": int(x.shape[0]),
        "onnxruntime_vs_pytorch": {
            "max_abs_logit_diff": float(logit_diff.max()),
            "max_abs_probability_diff": float(prob_diff.max()),
            "top1_agreement": float(1.0 - len(disagree) / x.shape[0]),
        },
        "pytorch_logmel_vs_librosa_f64": mel,
        "tolerances": {"logits_max_abs": tol_logits, "probabilities_max_abs": tol_probs,
                       "logmel_db": tol_mel},
    }
    problems = []
    if logit_diff.max() > tol_logits:
        i, j = np.unravel_index(int(logit_diff.argmax()), logit_diff.shape)
        problems.append(f"logits differ by {logit_diff.max():.3g} > {tol_logits:g} (case {i}, logit {j})")
    if prob_diff.max() > tol_probs:
        problems.append(f"probabilities differ by {prob_diff.max():.3g} > {tol_probs:g}")
    if disagree:
        problems.append(f"top-1 differs on cases {disagree}")
    if mel["max_abs_all_bins"] > tol_mel["all_bins"]:
        problems.append(f"front-end vs librosa {mel['max_abs_all_bins']:.3g} dB > {tol_mel['all_bins']:g} dB")
    if mel["max_abs_above_floor"] > tol_mel["above_floor"]:
        problems.append(f"front-end vs librosa above the floor {mel['max_abs_above_floor']:.3g} dB "
                        f"> {tol_mel['above_floor']:g} dB")
    if problems:
        raise ReleaseCheckError(f"{model.arch}: release refused: " + "; ".join(problems))
    return result
