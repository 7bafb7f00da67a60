"""The build's release check: PyTorch vs onnxruntime-python on held-out clips, judged by :mod:`parity.judge`.

The held-out test clips are one more source of cases for the same rules the gate
applies (log-mel vs librosa float64, logits, probabilities, top-1 under the tie
rule); a failure refuses the release.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from ser_export import contract
from ser_export.errors import ReleaseCheckError
from ser_export.frontend.reference import features_reference
from ser_export.ortsession import cpu_session

from . import judge
from .record import ModelRun, Subject

TORCH, ORT = "pytorch", "onnxruntime-python"


def heldout_run(model: torch.nn.Module, onnx_bytes: bytes, waveforms: np.ndarray) -> ModelRun:
    """Both runtimes on ``waveforms`` (``(n, N)`` float32, RMS-normalised held-out clips), as a :class:`ModelRun`."""
    if waveforms.ndim != 2 or waveforms.shape[0] == 0:
        raise ReleaseCheckError("the release check needs at least one test clip")
    x = np.ascontiguousarray(waveforms, dtype=np.float32)
    model = model.eval()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
        torch_features = model.features(torch.from_numpy(x)).numpy()
    session = cpu_session(onnx_bytes, threads=1)
    output = session.get_outputs()[0].name
    ort_logits = session.run([output], {session.get_inputs()[0].name: x})[0]
    params = model.frontend_params
    subject = Subject(model.arch, "", output, contract.FEATURES_NAME, tuple(model.labels), floor=params.log.floor())
    return ModelRun(subject, [f"held-out clip {i}" for i in range(x.shape[0])], np.ones(x.shape[0], bool),
                    {TORCH: {output: torch_logits, contract.FEATURES_NAME: torch_features}, ORT: {output: ort_logits}},
                    reference=features_reference(x, params), baseline=TORCH)


def check_heldout(model: torch.nn.Module, onnx_bytes: bytes, waveforms: np.ndarray,
                  tolerances: Mapping | None = None) -> dict:
    """Judge :func:`heldout_run`; raise :class:`ReleaseCheckError` on any failure.

    Returns the manifest's ``release_check`` figures: max |logit| and |probability|
    differences, top-1 agreement, front-end error vs librosa, tolerances used.
    """
    from ser_export import tolerances as tolerances_mod

    tol = tolerances if tolerances is not None else tolerances_mod.load()
    run = heldout_run(model, onnx_bytes, waveforms)
    results = judge.judge_model(run, tol)
    failed = [r for r in results if not r.passed]
    if failed:
        raise ReleaseCheckError(f"{model.arch}: release refused: " + "; ".join(r.message() for r in failed[:3]))
    mel = tolerances_mod.for_stage("logmel_db", TORCH, tol)
    return {
        "cases": run.n_cases,
        "onnxruntime_vs_pytorch": {
            "max_abs_logit_diff": judge.metric(results, ORT, "logits"),
            "max_abs_probability_diff": judge.metric(results, ORT, "probabilities"),
            "top1_agreement": judge.metric(results, ORT, "top1", "agreement"),
        },
        "pytorch_logmel_vs_librosa_f64": {
            "max_abs_all_bins": judge.metric(results, TORCH, "logmel_vs_librosa[all_bins]"),
            "max_abs_above_floor": judge.metric(results, TORCH, "logmel_vs_librosa[above_floor]"),
            "floor_margin_db": mel["floor_margin_db"],
        },
        "tolerances": {"logits_max_abs": tolerances_mod.for_stage("logits", ORT, tol)["max_abs"],
                       "probabilities_max_abs": tolerances_mod.for_stage("probabilities", ORT, tol)["max_abs"],
                       "logmel_db": mel},
    }
