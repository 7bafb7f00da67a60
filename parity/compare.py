"""Comparisons: outputs in, :class:`StageResult` data out (no running, no reporting here).

Every result says how large the error is (max and 99th percentile of |error|), where
the maximum occurred (case, and mel band and frame or logit), the tolerance it was
judged against and the smallest tolerance that would have passed.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ser_export.export.check import softmax


@dataclasses.dataclass
class StageResult:
    model: str
    stage: str
    runner: str
    against: str
    passed: bool
    tolerance: float
    max_abs: float
    p99: float
    n_cases: int
    where: dict
    detail: str = ""

    @property
    def min_passing_tolerance(self) -> float:
        return self.max_abs

    @property
    def name(self) -> str:
        return f"{self.model}/{self.stage}/{self.runner}"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["min_passing_tolerance"] = self.min_passing_tolerance
        return d

    def message(self) -> str:
        w = ", ".join(f"{k} {v}" for k, v in self.where.items())
        verdict = "ok" if self.passed else "FAILED"
        return (f"{verdict}: {self.name} vs {self.against}: max |error| {self.max_abs:.3g} "
                f"(p99 {self.p99:.3g}, tolerance {self.tolerance:.3g}) at {w or 'n/a'}"
                + (f"; {self.detail}" if self.detail else ""))


def _stats(err: np.ndarray) -> tuple[float, float, tuple[int, ...]]:
    if err.size == 0:
        return 0.0, 0.0, ()
    flat = int(np.nanargmax(err)) if np.isfinite(err).all() else int(np.flatnonzero(~np.isfinite(err))[0])
    idx = np.unravel_index(flat, err.shape)
    worst = float(err[idx]) if np.isfinite(err[idx]) else float("inf")
    finite = np.where(np.isfinite(err), err, np.finfo(np.float64).max)
    return worst, float(np.percentile(finite, 99)), tuple(int(i) for i in idx)


def _errors(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    if ours.shape != ref.shape:
        raise ValueError(f"shape {ours.shape} vs {ref.shape}")
    err = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    err[~np.isfinite(ours)] = np.inf  # a NaN/Inf output is the largest error there is
    return err


def compare_logmel(model: str, runner: str, against: str, ours: np.ndarray, ref: np.ndarray,
                   labels: Sequence[str], tol: dict, top_db: float, stage: str) -> list[StageResult]:
    """Two results: bins at least ``floor_margin_db`` above the floor, and all bins.

    ``ours``/``ref``: ``(cases, 1, n_mels, n_frames)`` dB; ``labels``: one per case.
    """
    err = _errors(ours, ref)
    above = ref > (-top_db + tol["floor_margin_db"])
    out = []
    for region, mask, limit in (("above_floor", above, tol["above_floor"]),
                                ("all_bins", np.ones_like(above), tol["all_bins"])):
        masked = np.where(mask, err, 0.0)
        worst, _, idx = _stats(masked)
        p99 = float(np.percentile(err[mask], 99)) if mask.any() else 0.0
        where = {"case": idx[0], "input": labels[idx[0]], "mel_band": idx[2], "frame": idx[3],
                 "reference_db": round(float(ref[idx]), 4)} if idx else {}
        out.append(StageResult(model, f"{stage}[{region}]", runner, against, bool(worst <= limit), limit, worst,
                               p99, int(ours.shape[0]), where,
                               detail=f"bins more than {tol['floor_margin_db']:g} dB above the -{top_db:g} dB floor"
                               if region == "above_floor" else ""))
    return out


def compare_logits(model: str, runner: str, against: str, ours: np.ndarray, ref: np.ndarray,
                   labels: Sequence[str], classes: Sequence[str], tol: float, stage: str = "logits") -> StageResult:
    err = _errors(ours, ref)
    worst, p99, idx = _stats(err)
    where = {"case": idx[0], "input": labels[idx[0]], "logit": classes[idx[1]]} if idx else {}
    return StageResult(model, stage, runner, against, bool(worst <= tol), tol, worst, p99, int(ours.shape[0]), where)


def compare_probabilities(model: str, runner: str, against: str, ours_logits: np.ndarray, ref_logits: np.ndarray,
                          labels: Sequence[str], classes: Sequence[str], tol: float) -> StageResult:
    ours, ref = softmax(ours_logits.astype(np.float64)), softmax(ref_logits.astype(np.float64))
    return compare_logits(model, runner, against, ours, ref, labels, classes, tol, stage="probabilities")


def compare_top1(model: str, runner: str, against: str, ours_logits: np.ndarray, ref_logits: np.ndarray,
                 labels: Sequence[str], classes: Sequence[str], logit_tol: float) -> StageResult:
    """Top-1 must agree except where the reference's two best logits are within ``logit_tol``."""
    ours_top, ref_top = ours_logits.argmax(1), ref_logits.argmax(1)
    top2 = np.sort(ref_logits, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    differ = ours_top != ref_top
    exempt = differ & (gap < logit_tol)
    bad = np.flatnonzero(differ & ~exempt)
    agreement = 1.0 - differ.mean() if differ.size else 1.0
    where = {}
    if bad.size:
        i = int(bad[0])
        where = {"case": i, "input": labels[i], "got": classes[int(ours_top[i])], "expected": classes[int(ref_top[i])],
                 "top2_gap": round(float(gap[i]), 6)}
    return StageResult(model, "top1", runner, against, bool(bad.size == 0), 0.0, float(bad.size), float(bad.size),
                       int(ours_logits.shape[0]), where,
                       detail=f"agreement {agreement:.4f}; {int(exempt.sum())} ties within the logit tolerance exempt")


def compare_exact(model: str, runner: str, stage: str, first: np.ndarray, second: np.ndarray,
                  labels: Sequence[str], tol: float, detail: str = "") -> StageResult:
    """Two runs that should agree (to ``tol``; 0 means bitwise)."""
    err = _errors(first, second)
    worst, p99, idx = _stats(err)
    where = {"case": idx[0], "input": labels[idx[0]], "index": list(idx[1:])} if idx else {}
    return StageResult(model, stage, runner, runner, bool(worst <= tol), tol, worst, p99, int(first.shape[0]),
                       where, detail)
