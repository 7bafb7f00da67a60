"""The judge: every pass/fail rule of the gate, and nothing else.

Runners produce outputs (:mod:`parity.record` holds them as data); this module
turns those outputs into :class:`StageResult` records; reporters render them.
No running and no printing here, so a saved run can be judged again under other
tolerances (``verify --rejudge``) and the build's release check uses the very same
rules.

Each result carries its per-case errors (``case_errors``, aligned with
``cases``, the indices into the gate's case list) and whether each case failed;
failing cases for shrinking, counterexamples, localisation and the manifest's
figures (``metrics``) are all derived from these records.

Rules, in one place:

- front-end features vs the reference (librosa float64) and between runtimes, judged in dB
  whatever the features' log unit (``ln`` and ``log10`` features are converted to dB of power
  first, :data:`DB_PER_UNIT`, and so is their floor): two regions, bins at least
  ``floor_margin_db`` dB above the floor (``-top_db`` for ``power_to_db``; ``above_floor``) and
  all bins (``all_bins``);
- logits, probabilities (softmax of the logits): max absolute difference;
- top-1: the labels must agree, except where the reference's two best logits are
  closer than the logit tolerance (:func:`top1_failures`, the tie rule);
- determinism (same batch twice) and batch invariance (a clip alone vs in a batch);
- golden logits and their top-1 labels vs the build-time record;
- JS preprocessing vs Python's: windows, silence, samples and probabilities;
- JS post-processing vs Python's: the VAD's frames as streams (the stream stages' rules), the windows'
  speech verdicts, calibrated probabilities, OOD scores and flags (:func:`judge_postprocessing`);
- one operator-table case's outputs vs onnxruntime-python (``atol + rtol * |ref|``);
- a reduced-precision variant vs its float parent (:func:`judge_vs_parent`), under its
  tolerance class: a logit bound, top-1 agreement under the tie rule at that bound, and
  on held-out clips the change in accuracy.

A NaN or infinite output is the largest error there is.

A streaming model's stages (per-chunk outputs, drift, decisions and segments, the state after the
last chunk, the whole-sequence form, a variant vs its parent) are the stage family
:mod:`parity.stream_judge`, built on this module's results and error rules.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
from scipy.special import softmax

from ser_export import tolerances as tolerances_mod

#: Scopes of a result: which list its ``cases`` index (``parent``: the gate's cases, judged against
#: the float parent, never shrunk alone; ``heldout``: the held-out clips).
CASES, BATCH, GOLDEN, RECORDINGS, PARENT, HELDOUT = "cases", "batch", "golden", "recordings", "parent", "heldout"


@dataclasses.dataclass
class StageResult:
    """One stage of one model on one runner, judged against one reference.

    ``max_abs`` is the largest error (in the stage's unit; for ``top1`` the number
    of disagreeing cases), ``p99`` its 99th percentile over cases, ``where`` the
    case (and bin or logit) of the largest error.  ``case_errors[i]`` is the error
    of case ``cases[i]`` of the stage's ``scope`` and ``case_failed[i]`` its verdict.
    ``applicable`` is False for a stage the model's contract gives nothing to check.
    """

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
    metrics: dict = dataclasses.field(default_factory=dict)
    scope: str = CASES
    cases: list[int] = dataclasses.field(default_factory=list)
    case_errors: list[float] = dataclasses.field(default_factory=list)
    case_failed: list[bool] = dataclasses.field(default_factory=list)
    applicable: bool = True

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

    @classmethod
    def from_dict(cls, d: Mapping) -> "StageResult":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def message(self) -> str:
        if not self.applicable:
            return f"n/a: {self.name}: {self.detail}"
        w = ", ".join(f"{k} {v}" for k, v in self.where.items())
        verdict = "ok" if self.passed else "FAILED"
        return (f"{verdict}: {self.name} vs {self.against}: max |error| {self.max_abs:.3g} "
                f"(p99 {self.p99:.3g}, tolerance {self.tolerance:.3g}) at {w or 'n/a'}"
                + (f"; {self.detail}" if self.detail else ""))


def not_applicable(model: str, stage: str, runner: str, why: str) -> StageResult:
    """A stage the contract gives nothing to check: reported, never failed."""
    return StageResult(model, stage, runner, "-", True, 0.0, 0.0, 0.0, 0, {}, detail=why, applicable=False)


# ------------------------------------------------------------------ errors ---
def abs_errors(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|ours - ref|`` in float64; a non-finite output (or reference) counts as an infinite error."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        raise ValueError(f"shape {ours.shape} vs {ref.shape}")
    err = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    err[~np.isfinite(ours) | ~np.isfinite(ref)] = np.inf
    return err


def _per_case_max(err: np.ndarray) -> np.ndarray:
    if err.shape[0] == 0:
        return np.zeros(0)
    return err.reshape(err.shape[0], -1).max(axis=1) if err[0].size else np.zeros(err.shape[0])


def _worst_index(err: np.ndarray) -> tuple[int, ...]:
    if err.size == 0:
        return ()
    bad = np.flatnonzero(~np.isfinite(err))
    flat = int(bad[0]) if bad.size else int(np.argmax(err))
    return tuple(int(i) for i in np.unravel_index(flat, err.shape))


def _p99(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    finite = np.where(np.isfinite(values), values, np.finfo(np.float64).max)
    p = float(np.percentile(finite, 99))
    return float("inf") if p >= np.finfo(np.float64).max else p


def _result(model, stage, runner, against, err, limit, labels, cases, where_of, scope=CASES, detail="",
            metrics=None) -> StageResult:
    """A result from an error array whose first axis is the case."""
    per_case = _per_case_max(err)
    idx = _worst_index(err)
    worst = float(err[idx]) if idx else 0.0
    failed = per_case > limit
    return StageResult(model, stage, runner, against, bool(not failed.any()), float(limit), worst, _p99(per_case),
                       int(err.shape[0]), where_of(idx) if idx else {}, detail=detail,
                       metrics=dict(metrics or {}, max_abs=worst), scope=scope, cases=[int(c) for c in cases],
                       case_errors=[float(v) for v in per_case], case_failed=[bool(v) for v in failed])


def _case_where(labels, cases, idx):
    return {"case": int(cases[idx[0]]), "input": labels[int(cases[idx[0]])]}


# ------------------------------------------------------------------- rules ---
#: dB (of power) per unit of a log-mel feature (:attr:`ser_export.contract.LogTransform.unit`):
#: ``10 * log10(S) = ln(S) * 10 / ln(10) = log10(S) * 10``.  Feature bounds are stated and judged in dB.
DB_PER_UNIT = {"dB": 1.0, "ln": 10.0 / math.log(10.0), "log10": 10.0}


def features_in_db(values: np.ndarray, unit: str) -> np.ndarray:
    """Features in ``unit`` (``"dB"``, ``"ln"`` or ``"log10"`` of power) as dB; dB features unchanged."""
    if unit not in DB_PER_UNIT:
        raise ValueError(f"features in unknown unit {unit!r} (one of {', '.join(DB_PER_UNIT)})")
    scale = DB_PER_UNIT[unit]
    return values if scale == 1.0 else np.asarray(values, np.float64) * scale


def judge_features(model: str, runner: str, against: str, ours: np.ndarray, ref: np.ndarray, labels: Sequence[str],
                   tol: Mapping, floor: float, stage: str, cases: Sequence[int] | None = None,
                   unit: str = "dB") -> list[StageResult]:
    """Front-end features (``(cases, ..., n_mels, n_frames)``) in two regions, judged in dB.

    ``ours``, ``ref`` and ``floor`` (the log transform's floor, ``-top_db`` for ``power_to_db``)
    are in ``unit``; features in ``ln`` or ``log10`` are converted to dB first
    (:func:`features_in_db`), so the bounds (``tol``) and the floor margin mean the same
    change in power whatever the unit.  ``above_floor``: bins whose reference is more than
    ``tol["floor_margin_db"]`` dB above the floor; ``all_bins``: every bin.  Errors, the
    reference in ``where`` and the ``unit`` in ``metrics`` are dB (``features_unit`` names
    the features' own unit when it is not dB).
    """
    cases = list(range(ours.shape[0])) if cases is None else list(cases)
    converted = unit != "dB"
    ours, ref = features_in_db(ours, unit), features_in_db(ref, unit)
    floor_db = float(features_in_db(np.float64(floor), unit))
    err = abs_errors(ours, ref)
    above = np.asarray(ref) > floor_db + tol["floor_margin_db"]
    out = []
    for region, mask, limit in (("above_floor", above, tol["above_floor"]),
                                ("all_bins", np.ones_like(above), tol["all_bins"])):
        masked = np.where(mask, err, 0.0)

        def where(idx, masked=masked):
            w = _case_where(labels, cases, idx)
            if len(idx) >= 3:
                w |= {"mel_band": idx[-2], "frame": idx[-1]}
            w["reference"] = round(float(np.asarray(ref)[idx]), 4)
            return w

        detail = (f"bins more than {tol['floor_margin_db']:g} dB above the {floor_db:g} dB floor"
                  if region == "above_floor" else "")
        metrics = {"unit": "dB", "bins": int(mask.sum())}
        if converted:
            note = f"{unit} features as dB (x{DB_PER_UNIT[unit]:.4g})"
            detail = f"{detail}; {note}" if detail else note
            metrics["features_unit"] = unit
        r = _result(model, f"{stage}[{region}]", runner, against, masked, limit, labels, cases, where,
                    detail=detail, metrics=metrics)
        r.p99 = _p99(err[mask]) if mask.any() else 0.0
        out.append(r)
    return out


def judge_logits(model: str, runner: str, against: str, ours: np.ndarray, ref: np.ndarray, labels: Sequence[str],
                 classes: Sequence[str], tol: float, stage: str = "logits",
                 cases: Sequence[int] | None = None) -> StageResult:
    """Max |logit difference| per case; ``ours``/``ref``: ``(cases, n_classes)``."""
    cases = list(range(ours.shape[0])) if cases is None else list(cases)
    err = abs_errors(ours, ref)
    return _result(model, stage, runner, against, err, tol, labels, cases,
                   lambda idx: _case_where(labels, cases, idx) | {"logit": _class(classes, idx[1])})


def judge_probabilities(model: str, runner: str, against: str, ours_logits: np.ndarray, ref_logits: np.ndarray,
                        labels: Sequence[str], classes: Sequence[str], tol: float,
                        cases: Sequence[int] | None = None) -> StageResult:
    """Softmax of both sides (float64), then as :func:`judge_logits`."""
    ours = softmax(np.asarray(ours_logits, np.float64), axis=-1)
    ref = softmax(np.asarray(ref_logits, np.float64), axis=-1)
    return judge_logits(model, runner, against, ours, ref, labels, classes, tol, stage="probabilities", cases=cases)


def top1_failures(ours_logits: np.ndarray, ref_logits: np.ndarray, logit_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The tie rule: ``(differ, failed)`` per case.

    The top-1 classes differ; that is a failure unless the reference's two best logits
    are closer than ``logit_tol`` (then either answer is within tolerance).  A non-finite
    output always fails.
    """
    ours, ref = np.asarray(ours_logits, np.float64), np.asarray(ref_logits, np.float64)
    if ours.shape[0] == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    differ = ours.argmax(1) != ref.argmax(1)
    broken = ~np.isfinite(ours).all(1)
    top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.concatenate([ref, ref], 1)
    gap = top2[:, 1] - top2[:, 0]
    return differ | broken, (differ & ~(gap < logit_tol)) | broken


def judge_top1(model: str, runner: str, against: str, ours_logits: np.ndarray, ref_logits: np.ndarray,
               labels: Sequence[str], classes: Sequence[str], logit_tol: float, stage: str = "top1",
               cases: Sequence[int] | None = None) -> StageResult:
    """Top-1 agreement under the tie rule (:func:`top1_failures`)."""
    cases = list(range(ours_logits.shape[0])) if cases is None else list(cases)
    differ, failed = top1_failures(ours_logits, ref_logits, logit_tol)
    n = len(differ)
    agreement = float(1.0 - differ.mean()) if n else 1.0
    bad = np.flatnonzero(failed)
    where = {}
    if bad.size:
        i = int(bad[0])
        ref = np.asarray(ref_logits, np.float64)
        top2 = np.sort(ref[i])[-2:]
        where = {"case": int(cases[i]), "input": labels[int(cases[i])],
                 "got": _class(classes, int(np.nanargmax(np.where(np.isfinite(ours_logits[i]), ours_logits[i], -np.inf)))
                               if np.isfinite(ours_logits[i]).any() else 0),
                 "expected": _class(classes, int(ref[i].argmax())),
                 "top2_gap": round(float(top2[-1] - top2[0]), 6) if top2.size > 1 else None}
    exempt = int((differ & ~failed).sum())
    return StageResult(model, stage, runner, against, bool(bad.size == 0), 0.0, float(bad.size), float(bad.size), n,
                       where, detail=f"agreement {agreement:.4f}; {exempt} ties within the logit tolerance exempt",
                       metrics={"agreement": agreement, "disagreements": int(differ.sum()), "ties_exempt": exempt,
                                "failed": int(bad.size)},
                       cases=[int(c) for c in cases], case_errors=[float(v) for v in differ],
                       case_failed=[bool(v) for v in failed])


def judge_exact(model: str, runner: str, stage: str, first: np.ndarray, second: np.ndarray, labels: Sequence[str],
                tol: float, detail: str = "", cases: Sequence[int] | None = None) -> StageResult:
    """Two runs that should agree (to ``tol``; 0 means bitwise)."""
    cases = list(range(first.shape[0])) if cases is None else list(cases)
    err = abs_errors(first, second)
    return _result(model, stage, runner, runner, err, tol, labels, cases,
                   lambda idx: _case_where(labels, cases, idx) | {"index": list(idx[1:])}, scope=BATCH, detail=detail)


def judge_golden(model: str, runner: str, got_logits: np.ndarray, expected: Mapping, labels: Sequence[str],
                 classes: Sequence[str], tol: float) -> list[StageResult]:
    """Logits of the golden cases vs the build-time record, and the label names of their top class."""
    ref = np.asarray(expected["logits"], dtype=np.float64)
    logits = judge_logits(model, runner, "build-time pytorch", got_logits, ref, labels, classes, tol,
                          stage="golden_logits")
    logits.scope = GOLDEN
    _, failed = top1_failures(got_logits, ref, tol)
    top = [_class(classes, int(i)) for i in np.asarray(got_logits).argmax(1)]
    wrong = [i for i, (a, b) in enumerate(zip(top, expected["top1"])) if a != b]
    hard = [i for i in wrong if failed[i] or _class(classes, int(ref[i].argmax())) != expected["top1"][i]]
    label = StageResult(
        model, "golden_top1_label", runner, "build-time pytorch", not hard, 0.0, float(len(wrong)), float(len(wrong)),
        len(top), {"case": hard[0], "input": labels[hard[0]], "got": top[hard[0]], "expected": expected["top1"][hard[0]]}
        if hard else {}, detail="label names of the top class, as the manifest recorded them", scope=GOLDEN,
        metrics={"wrong": len(wrong), "failed": len(hard)}, cases=list(range(len(top))),
        case_errors=[float(i in wrong) for i in range(len(top))], case_failed=[i in hard for i in range(len(top))])
    return [logits, label]


def judge_preprocessing(model: str, runner: str, recordings: Sequence, tol: Mapping) -> list[StageResult]:
    """JS windows vs Python's, one result per recording (:class:`parity.record.PreprocessRecord`)."""
    out = []
    for rec in recordings:
        limit = tol["same_rate_samples"] if rec.same_rate else tol["resampled_samples"]
        problems = []
        if list(rec.js_starts) != list(rec.py_starts):
            problems.append(f"window starts differ: js {list(rec.js_starts)} vs python {list(rec.py_starts)}")
        if list(rec.js_silent) != list(rec.py_silent):
            problems.append(f"silent windows differ: js {list(rec.js_silent)} vs python {list(rec.py_silent)}")
        sample_err, prob_err, where = 0.0, 0.0, {"input": rec.name}
        errors: list[float] = []
        if not problems:
            for i in range(rec.js_windows.shape[0]):
                e = abs_errors(rec.js_windows[i], rec.py_windows[i])
                errors.append(float(e.max()) if e.size else 0.0)
                if errors[-1] > sample_err:
                    sample_err, where = errors[-1], {"input": rec.name, "window": i, "sample": int(e.argmax())}
            if rec.js_windows.shape[0]:
                prob = abs_errors(softmax(rec.js_logits.astype(np.float64), axis=-1),
                                  softmax(rec.py_logits.astype(np.float64), axis=-1))
                prob_err = float(prob.max())
        passed = not problems and sample_err <= limit and prob_err <= tol["probabilities"]
        out.append(StageResult(
            model, f"js_preprocessing[{rec.name}]", runner, "python-preprocessing", bool(passed), float(limit),
            sample_err, sample_err, len(rec.js_starts), where,
            detail="; ".join(problems) or f"probabilities max |diff| {prob_err:.3g} "
                                           f"(tolerance {tol['probabilities']:g}); JS took {rec.js_ms:.0f} ms",
            metrics={"probabilities_max_abs": prob_err, "windows": len(rec.js_starts)}, scope=RECORDINGS,
            cases=list(range(len(errors))), case_errors=errors, case_failed=[e > limit for e in errors]))
    return out


def judge_postprocessing(model: str, runner: str, rec, labels: Sequence[str], tol: Mapping,
                         stream_tol: Mapping) -> list[StageResult]:
    """JS post-processing vs Python's on the gate's cases (:class:`parity.record.PostprocessRecord`).

    The VAD's frames are judged as streams (each case's 16 kHz VAD input is one stream, Python's frames the
    baseline) by the stream stages of :mod:`parity.stream_judge`, their rules unchanged:
    ``postprocessing[vad:stream[output]]`` (every frame's probability within ``speech_probability``, the bound
    of the whole path: the JS gain and resampler and Silero), ``postprocessing[vad:decisions[output]]`` and
    ``postprocessing[vad:segments[output]]`` (at the VAD's threshold, with ``stream_tol``'s
    ``decision_margin`` and ``segment_slack_chunks``).  Beyond the VAD: ``postprocessing[speech]`` (a window's
    verdict may differ only where its frames' decisions differ in a way the decision rule excuses),
    ``postprocessing[calibrated]`` (calibrated probabilities within ``calibrated_probabilities``) and
    ``postprocessing[ood]`` (OOD scores within ``ood_score_relative`` of ``max(1, |score|)``; the uncertain
    flag may differ only where the score lies that close to its threshold, or the top calibrated probability
    within ``calibrated_probabilities`` of ``min_probability``).
    """
    from .stream_judge import decision_failures, judge_decisions, judge_stream_outputs

    n = int(rec.py_frames.shape[0])

    def stage(what: str, errors: np.ndarray, tol_: float, flips: np.ndarray, detail: str, **metrics) -> StageResult:
        """One post-processing stage from per-case errors and decisions that flipped away from a threshold."""
        failed = (errors > tol_) | flips
        worst = int(errors.argmax()) if n else 0
        note = (f"decisions differ on {int(flips.sum())} case(s) away from the threshold; " if flips.any() else "")
        return StageResult(
            model, f"postprocessing[{what}]", runner, "python-postprocessing", not failed.any(), tol_,
            float(errors.max()) if n else 0.0, _p99(errors), n, {"input": labels[worst] if n else None, "case": worst},
            detail=note + detail, metrics={"decisions_differ": int(flips.sum()), **metrics}, cases=list(range(n)),
            case_errors=[float(e) for e in errors], case_failed=[bool(f) for f in failed])

    def flipped(js, py, near) -> np.ndarray:
        return (np.asarray(js, bool) != np.asarray(py, bool)) & ~near

    ours = [{"output": np.asarray(f, np.float32)[:, None]} for f in rec.js_frames]
    ref = [{"output": np.asarray(f, np.float32)[:, None]} for f in rec.py_frames]
    against = "python-postprocessing"
    out = [judge_stream_outputs(model, runner, against, ours, ref, "output", labels, tol["speech_probability"])]
    out += judge_decisions(model, runner, against, ours, ref, "output", rec.vad_threshold, 0.0, labels, stream_tol)
    for r in out:
        r.stage = f"postprocessing[vad:{r.stage}]"
    margin, slack = float(stream_tol["decision_margin"]), int(stream_tol["segment_slack_chunks"])
    excused = np.zeros(n, bool)  # frame decisions differ, every difference excused by the decision rule
    for i in range(n):
        differ, failed = decision_failures(rec.js_frames[i], rec.py_frames[i], rec.vad_threshold, 0.0, margin, slack)
        excused[i] = differ.any() and not failed.any()
    out.append(stage("speech", np.zeros(n), 0.0, flipped(rec.js_speech, rec.py_speech, excused),
                     f"{int(np.sum(rec.py_speech))} of {n} cases hold speech; JS took {rec.js_ms:.0f} ms",
                     speech_cases=int(np.sum(rec.py_speech))))
    perr = np.abs(np.asarray(rec.js_probabilities, np.float64) - np.asarray(rec.py_probabilities, np.float64))
    out.append(stage("calibrated", perr.max(axis=1) if perr.size else np.zeros(n), tol["calibrated_probabilities"],
                     np.zeros(n, bool), "softmax(logits / temperature) from the same logits"))
    tol_o = tol["ood_score_relative"]
    py_o, js_o = np.asarray(rec.py_ood, np.float64), np.asarray(rec.js_ood, np.float64)
    near = np.abs(py_o - rec.ood_threshold) <= tol_o * max(1.0, abs(rec.ood_threshold))
    top = np.asarray(rec.py_probabilities, np.float64).max(axis=1) if perr.size else np.zeros(n)
    near |= np.abs(top - rec.min_probability) <= tol["calibrated_probabilities"]
    out.append(stage("ood", np.abs(js_o - py_o) / np.maximum(1.0, np.abs(py_o)), tol_o,
                     flipped(rec.js_uncertain, rec.py_uncertain, near),
                     "relative error of the OOD score; the uncertain flag (OOD or low confidence)"))
    return out


def judge_vs_parent(model: str, runner: str, parent: str, ours_logits: np.ndarray, parent_logits: np.ndarray,
                    labels: Sequence[str], classes: Sequence[str] | None, tol: Mapping, scope: str = PARENT,
                    targets: np.ndarray | None = None, class_name: str = "") -> list[StageResult]:
    """A variant's logits vs its float parent's on the same inputs, under tolerance class ``tol``
    (``tolerances.json``'s ``classes``: ``logits_max_abs``, ``top1_agreement_min``,
    ``accuracy_drop_max``).

    - ``vs_parent[logits]``: max |logit difference| per case within ``logits_max_abs``;
    - ``vs_parent[top1]``: the share of cases whose top-1 agrees, a disagreement excused
      when the parent's two best logits are within ``logits_max_abs`` (the tie rule of
      :func:`top1_failures` at the class's bound), at least ``top1_agreement_min``;
    - ``vs_parent[accuracy]`` (with ``targets``, the true label indices): the parent's
      accuracy minus the variant's, at most ``accuracy_drop_max``.

    ``scope`` names the inputs (the gate's cases, ``parent``; or ``heldout`` clips).
    """
    where = f" on {'held-out clips' if scope == HELDOUT else 'the gate cases'}"
    cases = list(range(ours_logits.shape[0]))
    bound = float(tol["logits_max_abs"])
    stage = f"vs_parent[logits{'' if scope == PARENT else ',' + scope}]"
    out = [_result(model, stage, runner, parent, abs_errors(ours_logits, parent_logits), bound, labels, cases,
                   lambda idx: _case_where(labels, cases, idx) | {"logit": _class(classes, idx[1])}, scope=scope,
                   detail=f"class {class_name}{where}")]
    differ, failed = top1_failures(ours_logits, parent_logits, bound)
    n = len(differ)
    plain = float(1.0 - differ.mean()) if n else 1.0
    agreement = float(1.0 - failed.mean()) if n else 1.0
    need = float(tol["top1_agreement_min"])
    bad = np.flatnonzero(failed)
    w = {"case": int(bad[0]), "input": labels[int(bad[0])]} if bad.size else {}
    out.append(StageResult(
        model, f"vs_parent[top1{'' if scope == PARENT else ',' + scope}]", runner, parent, agreement >= need,
        1.0 - need, 1.0 - agreement, 1.0 - agreement, n, w,
        detail=(f"class {class_name}{where}: agreement {agreement:.4f} (ties within {bound:g} excused; plain "
                f"{plain:.4f}), at least {need:g}"),
        metrics={"agreement": agreement, "agreement_plain": plain, "disagreements": int(differ.sum()),
                 "ties_exempt": int((differ & ~failed).sum())},
        scope=scope, cases=cases, case_errors=[float(v) for v in failed], case_failed=[False] * n))
    if targets is not None and n:
        targets = np.asarray(targets)
        right_parent = int((np.asarray(parent_logits).argmax(1) == targets).sum())
        right_ours = int((np.asarray(ours_logits).argmax(1) == targets).sum())
        acc_parent, acc_ours = right_parent / n, right_ours / n
        # counted in clips: the bound's share of the n clips, and never less than one clip when the bound is not
        # zero (below one clip the share cannot be resolved: a quick build's 21 held-out clips)
        bound = float(tol["accuracy_drop_max"])
        allowed = 0 if bound <= 0 else max(1, int(np.floor(bound * n + 1e-9)))
        drop, limit = acc_parent - acc_ours, allowed / n
        out.append(StageResult(
            model, f"vs_parent[accuracy,{scope}]", runner, parent, right_parent - right_ours <= allowed, limit,
            drop, drop, n, {},
            detail=f"class {class_name}{where}: accuracy {acc_ours:.4f} vs the parent's {acc_parent:.4f}",
            metrics={"accuracy": acc_ours, "parent_accuracy": acc_parent, "drop": drop}, scope=scope))
    return out


def _class(classes: Sequence[str] | None, i: int) -> str | int:
    return classes[i] if classes and 0 <= i < len(classes) else i


# ------------------------------------------------------------ whole models ---
def judge_model(run, tolerances: Mapping | None = None) -> list[StageResult]:
    """Every stage of one model's run (:class:`parity.record.ModelRun`), judged under ``tolerances``
    (the layout of ``tolerances.json``; default: the shipped file)."""
    tol = tolerances if tolerances is not None else tolerances_mod.load()
    if run.parent is not None:  # a variant: its class's cross-runtime bounds (a saved run judged again too)
        tol = tolerances_mod.with_class_stage_bounds(tol, run.parent.tolerance_class)

    def t(stage, runner=None):
        return tolerances_mod.for_stage(stage, runner, tol)

    s = run.subject
    labels, norm = run.case_labels, np.asarray(run.normalised, bool)
    base = run.baseline if run.baseline in run.outputs else None
    results: list[StageResult] = []
    for name, out in run.outputs.items():
        if s.features_name and s.features_name in out:
            feats = out[s.features_name]
            if run.reference is not None:
                results += judge_features(s.arch, name, run.reference_name, feats, run.reference, labels,
                                          t("logmel_db", name), s.floor, "logmel_vs_librosa", unit=s.unit)
            if base and name != base and s.features_name in run.outputs[base]:
                results += judge_features(s.arch, name, base, feats, run.outputs[base][s.features_name], labels,
                                          t("logmel_between_runtimes", name), s.floor, f"logmel_vs_{base}",
                                          unit=s.unit)
        if base and name != base:
            sel = np.flatnonzero(norm)  # end-to-end stages: inputs that satisfy the input contract
            ours, ref = out[s.logits_name][sel], run.outputs[base][s.logits_name][sel]
            tol_logits = t("logits", name)["max_abs"]
            results.append(judge_logits(s.arch, name, base, ours, ref, labels, s.classes, tol_logits, cases=sel))
            results.append(judge_probabilities(s.arch, name, base, ours, ref, labels, s.classes,
                                               t("probabilities", name)["max_abs"], cases=sel))
            results.append(judge_top1(s.arch, name, base, ours, ref, labels, s.classes, tol_logits, cases=sel))
    for name, again in run.repeat.items():
        n = next(iter(again.values())).shape[0] if again else 0
        for what, key in (("logits", s.logits_name), ("logmel", s.features_name)):
            if key and key in again:
                results.append(judge_exact(s.arch, name, f"determinism[{what}]", again[key],
                                           run.outputs[name][key][:n], labels, t("determinism", name)["max_abs"],
                                           detail="the same batch run twice"))
    for name, alone in run.alone.items():
        k = next(iter(alone.values())).shape[0] if alone else 0
        for what, key in (("logits", s.logits_name), ("logmel", s.features_name)):
            if key and key in alone:
                results.append(judge_exact(s.arch, name, f"batch_invariance[{what}]", alone[key],
                                           run.outputs[name][key][:k], labels, t("batch_invariance", name)[what],
                                           detail=f"each of the first {k} cases alone vs inside a batch of "
                                                  f"{run.batch_n}"))
    if run.golden is not None:
        for name, got in run.golden.outputs.items():
            results += judge_golden(s.arch, name, got, run.golden.expected, run.golden.labels, s.classes,
                                    t("logits", name)["max_abs"])
    for name, recordings in run.preprocessing.items():
        results += judge_preprocessing(s.arch, name, recordings, t("js_preprocessing", name))
    for name, rec in run.postprocessing.items():
        results += judge_postprocessing(s.arch, name, rec, labels, t("postprocessing", name), t("stream", name))
    for name, why in run.skipped_runtimes.items():
        results.append(not_applicable(s.arch, "runtime", name, why))
    cmp = run.parent
    if cmp is not None:
        results.append(not_applicable(s.arch, "golden_logits", "-", "the golden logits are the parent's; the "
                                      "variant is judged against the parent instead"))
    if cmp is not None and base:
        cls = tolerances_mod.for_class(cmp.tolerance_class, tol)
        results += judge_vs_parent(s.arch, base, cmp.parent, run.outputs[base][s.logits_name], cmp.logits, labels,
                                   s.classes, cls, PARENT, class_name=cmp.tolerance_class)
        if cmp.heldout_logits is None:
            results.append(not_applicable(s.arch, "vs_parent[heldout]", "-",
                                          f"not judged: {cmp.heldout_why_not or 'no held-out clips'}"))
        else:
            results += judge_vs_parent(s.arch, "onnxruntime-python", cmp.parent, cmp.heldout_logits,
                                       cmp.heldout_parent_logits, [f"held-out clip {i}" for i in
                                                                   range(len(cmp.heldout_targets))],
                                       s.classes, cls, HELDOUT, targets=cmp.heldout_targets,
                                       class_name=cmp.tolerance_class)
    return results


def judge_operator_outputs(reference: dict[str, np.ndarray], got: dict[str, np.ndarray],
                    tol: dict) -> tuple[bool, float | None, str | None]:
    """``(correct, max |error|, what was wrong)`` of a backend's outputs against the reference.

    Values are compared as float64 (a backend may return int32 where the model says
    int64); floats within ``atol + rtol * |reference|``, integers and booleans within
    ``integer_atol`` (quantized rounding may differ by one step).
    """
    worst = 0.0
    problems = []
    for name, ref in reference.items():
        if name not in got:
            return False, None, f"output {name} missing"
        out = np.asarray(got[name])
        if tuple(out.shape) != tuple(ref.shape):
            return False, None, f"output {name} has shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
        a, b = out.astype(np.float64), ref.astype(np.float64)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            problems.append(f"output {name}: NaN where the reference has none (or the reverse)")
            continue
        err = np.abs(np.nan_to_num(a - b, nan=0.0))
        worst = max(worst, float(err.max()) if err.size else 0.0)
        if np.issubdtype(ref.dtype, np.floating):
            bad = err > tol["atol"] + tol["rtol"] * np.abs(np.nan_to_num(b))
        else:
            bad = err > tol["integer_atol"]
        if bad.any():
            problems.append(f"output {name}: {int(bad.sum())} of {bad.size} values off, max |error| "
                            f"{float(err.max()):.3g}")
    return not problems, worst, "; ".join(problems) or None


def failing_cases(results: Sequence[StageResult], n_cases: int) -> np.ndarray:
    """Per case of the gate's case list: does any per-case stage fail on any runner?"""
    bad = np.zeros(n_cases, dtype=bool)
    for r in results:
        if r.scope == CASES and r.applicable:
            for case, failed in zip(r.cases, r.case_failed):
                if failed and 0 <= case < n_cases:
                    bad[case] = True
    return bad


def metric(results: Sequence[StageResult], runner: str, stage: str, key: str = "max_abs"):
    """One figure of one runner's stage (``None`` when that stage did not run)."""
    r = next((r for r in results if r.runner == runner and r.stage == stage and r.applicable), None)
    if r is None:
        return None
    return r.max_abs if key == "max_abs" else r.metrics.get(key)
