"""The judge's stream stages: every pass/fail rule for a streaming model, and nothing else.

A stage family of :mod:`parity.judge` (its :class:`~parity.judge.StageResult`, error and
percentile rules are used as they are): the runners' whole-stream outputs
(:class:`parity.stream_record.StreamRun`) become stage results; reporters render them.  A result's
``cases`` are stream indices, ``where`` names the stream, the first failing chunk and the worst one.

Rules, in one place:

- ``stream[<output>]``: every chunk's output vs the baseline runner's (the reference when given),
  max absolute error within ``stream.scores_max_abs`` (scores) or ``features_max_abs``;
- ``stream_drift[<output>]``: on the long stream, the error in its first and last 10 % of chunks
  (reported: a state that drifts shows as growth); the last 10 % must stay within the same bound;
- ``decisions[<score>]``: per chunk, the decision (:func:`decide`: on at ``>= threshold``, off
  below ``threshold - hysteresis``) must agree, except at a chunk where the baseline's score lies
  within ``decision_margin`` of a threshold or within ``segment_slack_chunks`` of one of its
  segments' boundaries; ``segments[<score>]``: the same number of speech segments, each start and
  end within ``segment_slack_chunks`` chunks;
- ``stream_state[<state>]``: the state after the last chunk vs the first runner that reports it
  (a reference that keeps its own state reports none), within ``state_max_abs``;
- ``sequence[<output>]``: the whole-sequence form vs the same runtime's streamed output, within
  ``sequence_max_abs``;
- ``vs_parent[stream,<score>]`` and ``vs_parent[decisions,<score>]``: a variant vs its float parent
  on the same streams under a stream tolerance class (``scores_max_abs``, ``decision_agreement_min``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .judge import CASES, StageResult, _p99, abs_errors, not_applicable

#: Share of the long stream's chunks at its start and end whose errors are compared (drift).
DRIFT_SHARE = 0.1


def decide(scores: np.ndarray, threshold: float, hysteresis: float = 0.0) -> np.ndarray:
    """Per-chunk decisions of a score: on once ``score >= threshold``, off once ``score < threshold - hysteresis``.

    Parameters
    ----------
    scores : np.ndarray [shape=(n_chunks,)]
    threshold, hysteresis : float

    Returns
    -------
    np.ndarray [shape=(n_chunks,), dtype=bool]
    """
    out = np.zeros(len(scores), bool)
    on = False
    for i, p in enumerate(np.asarray(scores, np.float64)):
        on = p >= threshold if not on else not p < threshold - hysteresis
        out[i] = on
    return out


def segments(decisions: np.ndarray) -> list[tuple[int, int]]:
    """Runs of ``True``: ``(first chunk, last chunk + 1)`` each."""
    d = np.concatenate([[False], np.asarray(decisions, bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(d))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _per_chunk(value: np.ndarray) -> np.ndarray:
    """``(n_chunks, *dims)`` -> ``(n_chunks,)`` of the chunk's largest value."""
    value = np.asarray(value, np.float64)
    return value.reshape(value.shape[0], -1).max(axis=1) if value.size else np.zeros(value.shape[0])


def chunk_errors(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-chunk max |ours - ref| (``inf`` for non-finite values, or every chunk when the chunk counts or the
    values per chunk differ; ``(k, 1)`` and ``(k, 1, 1)`` are the same values)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape and ours.ndim and ref.ndim and ours.shape[0] == ref.shape[0] \
            and ours.size == ref.size:
        ours = ours.reshape(ref.shape)
    if ours.shape != ref.shape:
        return np.full(max(ours.shape[0] if ours.ndim else 1, ref.shape[0] if ref.ndim else 1), np.inf)
    return _per_chunk(abs_errors(ours, ref))


def _pairs(ours: Sequence[Mapping], ref: Sequence[Mapping], name: str, n: int) -> list[tuple]:
    """``(ours, ref)`` values of output ``name`` for each of ``n`` streams; ``None`` where a side did not give
    that stream or that output (the stages make it an infinite error, never a stream dropped)."""
    get = lambda side, s: side[s].get(name) if s < len(side) and side[s] is not None else None  # noqa: E731
    return [(get(ours, s), get(ref, s)) for s in range(n)]


def _n_chunks(*values) -> int:
    """Chunks of a stream from whichever side gave it (at least 1, so a missing stream still fails)."""
    return max([len(v) for v in values if v is not None] + [1])


def _streams_result(model, stage, runner, against, per_stream: Sequence[np.ndarray], limit, labels, detail="",
                    metrics=None, streams: Sequence[int] | None = None, unit: str = "chunk") -> StageResult:
    """A result from each stream's per-chunk errors: a stream fails when any chunk is beyond ``limit``; ``where``
    names the first failing stream, its first failing chunk and its worst chunk (else the worst overall);
    ``unit``: what the errors' positions are (``"segment"`` for segment errors)."""
    streams = list(range(len(per_stream))) if streams is None else list(streams)
    worst_per = np.array([float(e.max()) if e.size else 0.0 for e in per_stream])
    failed = worst_per > limit
    where = {}
    if len(per_stream):
        i = int(np.flatnonzero(failed)[0]) if failed.any() else int(np.argmax(worst_per))
        e = per_stream[i]
        where = {"stream": streams[i], "input": labels[streams[i]], f"worst_{unit}": int(np.argmax(e)) if e.size else 0}
        if failed[i]:
            where[f"first_failing_{unit}"] = int(np.flatnonzero(e > limit)[0])
    worst = float(worst_per.max()) if worst_per.size else 0.0
    return StageResult(model, stage, runner, against, bool(not failed.any()), float(limit), worst, _p99(worst_per),
                       len(per_stream), where, detail=detail, metrics=dict(metrics or {}, max_abs=worst), scope=CASES,
                       cases=streams, case_errors=[float(v) for v in worst_per],
                       case_failed=[bool(v) for v in failed])


def judge_stream_outputs(model: str, runner: str, against: str, ours: Sequence[Mapping], ref: Sequence[Mapping],
                         name: str, labels: Sequence[str], limit: float, stage: str = "stream",
                         stage_name: str | None = None) -> StageResult:
    """Output ``name`` of every chunk of every stream vs the reference's (``ours[s][name]``: ``(n_chunks, *dims)``);
    the stage is ``stage[name]`` unless ``stage_name`` says otherwise."""
    errs = [chunk_errors(o, r) if o is not None and r is not None else np.full(_n_chunks(o, r), np.inf)
            for o, r in _pairs(ours, ref, name, len(ref))]  # a stream not given: infinite
    chunks = sum(e.size for e in errs)
    return _streams_result(model, stage_name or f"{stage}[{name}]", runner, against, errs, limit, labels,
                           detail=f"{chunks} chunks of {len(errs)} streams", metrics={"chunks": chunks})


def judge_drift(model: str, runner: str, against: str, ours: Mapping, ref: Mapping, name: str, label: str,
                stream: int, limit: float, seconds: float) -> StageResult:
    """The error along the long stream: its first and last :data:`DRIFT_SHARE` of chunks, reported; the last
    share must stay within ``limit``."""
    o, r = (side.get(name) if side is not None else None for side in (ours, ref))
    e = chunk_errors(o, r) if o is not None and r is not None else np.full(_n_chunks(o, r), np.inf)
    k = max(1, int(round(DRIFT_SHARE * e.size)))
    first, last = float(e[:k].max()), float(e[-k:].max())
    growth = last / first if first > 0 else (float("inf") if last > 0 else 1.0)
    return StageResult(model, f"stream_drift[{name}]", runner, against, bool(last <= limit), float(limit), last, last,
                       1, {"stream": stream, "input": label, "worst_chunk": int(np.argmax(e))},
                       detail=(f"{seconds:.0f} s stream, {e.size} chunks: max |error| {first:.3g} in the first "
                               f"{k} chunks, {last:.3g} in the last {k} (x{growth:.3g})"),
                       metrics={"first_share": first, "last_share": last, "growth": growth, "chunks": int(e.size),
                                "seconds": seconds, "max_abs": float(e.max())},
                       scope=CASES, cases=[stream], case_errors=[last], case_failed=[bool(last > limit)])


def decision_failures(ours: np.ndarray, ref: np.ndarray, threshold: float, hysteresis: float, margin: float,
                      slack: int) -> tuple[np.ndarray, np.ndarray]:
    """``(differ, failed)`` per chunk of one stream's scores: the decisions differ; that is a failure unless the
    reference's score is within ``margin`` of the on or off threshold there, or the chunk is within ``slack``
    chunks of a boundary of the reference's segments."""
    ours, ref = np.asarray(ours, np.float64).reshape(-1), np.asarray(ref, np.float64).reshape(-1)
    if ours.shape != ref.shape:
        return np.ones(max(ours.size, ref.size), bool), np.ones(max(ours.size, ref.size), bool)
    differ = decide(ours, threshold, hysteresis) != decide(ref, threshold, hysteresis)
    near = (np.abs(ref - threshold) <= margin) | (np.abs(ref - (threshold - hysteresis)) <= margin)
    boundary = np.zeros(ref.size, bool)
    for a, b in segments(decide(ref, threshold, hysteresis)):
        for edge in (a, b):
            boundary[max(0, edge - slack):edge + slack + 1] = True
    return differ, (differ & ~near & ~boundary) | ~np.isfinite(ours)


def judge_decisions(model: str, runner: str, against: str, ours: Sequence[Mapping], ref: Sequence[Mapping],
                    name: str, threshold: float, hysteresis: float, labels: Sequence[str],
                    tol: Mapping) -> list[StageResult]:
    """``decisions[name]`` (per chunk) and ``segments[name]`` (start and end of each speech segment)."""
    margin, slack = float(tol["decision_margin"]), int(tol["segment_slack_chunks"])
    per_chunk, per_segment, differing, total = [], [], 0, 0
    for o, r in _pairs(ours, ref, name, len(ref)):
        if o is None or r is None:  # a stream one side did not give: every chunk and segment fails
            k = _n_chunks(o, r)
            differing, total = differing + k, total + k
            per_chunk.append(np.full(k, np.inf))
            per_segment.append(np.array([np.inf]))
            continue
        differ, failed = decision_failures(o, r, threshold, hysteresis, margin, slack)
        differing, total = differing + int(differ.sum()), total + differ.size
        per_chunk.append(failed.astype(np.float64))
        a = segments(decide(np.asarray(o, np.float64).reshape(-1), threshold, hysteresis))
        b = segments(decide(np.asarray(r, np.float64).reshape(-1), threshold, hysteresis))
        shifts = [max(abs(x[0] - y[0]), abs(x[1] - y[1])) for x, y in zip(a, b)]
        per_segment.append(np.array(shifts + [np.inf] * abs(len(a) - len(b)) or [0], np.float64))
    agreement = 1.0 - differing / total if total else 1.0
    rule = f"on at >= {threshold:g}" + (f", off at < {threshold - hysteresis:g}" if hysteresis else "")
    dec = _streams_result(model, f"decisions[{name}]", runner, against, per_chunk, 0.0, labels,
                          detail=(f"{rule}: {differing} of {total} chunks differ (agreement {agreement:.4f}); a "
                                  f"difference within {margin:g} of a threshold or {slack} chunks of a segment "
                                  f"boundary is excused"),
                          metrics={"agreement": agreement, "differ": differing, "chunks": total})
    seg = _streams_result(model, f"segments[{name}]", runner, against, per_segment, float(slack), labels,
                          detail=(f"segments ({rule}): the same number, each start and end within {slack} chunks "
                                  f"(a segment one side lacks: an infinite error)"),
                          unit="segment",
                          metrics={"segments": sum(len(segments(decide(np.asarray(r[name]).reshape(-1), threshold,
                                                                        hysteresis))) for r in ref if name in r)})
    return [dec, seg]


def judge_vs_parent_stream(model: str, runner: str, parent: str, ours: Sequence[Mapping], theirs: Sequence[Mapping],
                           name: str, decision: tuple[float, float] | None, labels: Sequence[str], cls: Mapping,
                           class_name: str) -> list[StageResult]:
    """A variant's scores vs its float parent's on the same streams, under stream tolerance class ``cls``
    (``scores_max_abs``; ``decision_agreement_min``, the share of chunks whose decision agrees);
    ``decision``: the score's ``(threshold, hysteresis)``."""
    out = [judge_stream_outputs(model, runner, parent, ours, theirs, name, labels, float(cls["scores_max_abs"]),
                                stage_name=f"vs_parent[stream,{name}]")]
    out[0].detail = f"class {class_name}: {out[0].detail}"
    if decision is None:
        return out
    threshold, hysteresis = decision
    differ = [decide(np.asarray(o).reshape(-1), threshold, hysteresis)
              != decide(np.asarray(t).reshape(-1), threshold, hysteresis)
              if o is not None and t is not None and np.asarray(o).size == np.asarray(t).size
              else np.ones(_n_chunks(o, t), bool)  # a stream one side did not give: every chunk differs
              for o, t in _pairs(ours, theirs, name, len(theirs))]
    total = sum(d.size for d in differ)
    n_differ = sum(int(d.sum()) for d in differ)
    agreement = 1.0 - n_differ / total if total else 1.0
    need = float(cls["decision_agreement_min"])
    per = [float(d.mean()) if d.size else 0.0 for d in differ]
    below = 1.0 - np.array(per) < need  # a stream whose own agreement is below the class bound
    first = next((i for i, d in enumerate(differ) if d.any()), None)
    where = ({"stream": first, "input": labels[first], "first_differing_chunk": int(np.flatnonzero(differ[first])[0])}
             if first is not None else {})
    out.append(StageResult(model, f"vs_parent[decisions,{name}]", runner, parent, agreement >= need, 1.0 - need,
                           1.0 - agreement, _p99(np.array(per)), len(differ), where,
                           detail=(f"class {class_name}: {n_differ} of {total} chunk decisions differ (agreement "
                                   f"{agreement:.4f}), at least {need:g}"),
                           metrics={"agreement": agreement, "differ": n_differ, "chunks": total}, scope=CASES,
                           cases=list(range(len(differ))), case_errors=per, case_failed=[bool(v) for v in below]))
    return out


def judge_stream_run(run, tolerances: Mapping) -> list[StageResult]:
    """Every stream stage of one model's run (:class:`parity.stream_record.StreamRun`) under ``tolerances``
    (``tolerances.json``'s layout; the ``stream`` stage and, for a variant, its stream class)."""
    from ser_export import tolerances as tolerances_mod

    results: list[StageResult] = []
    base = run.baseline
    ref = run.outputs[base].outputs
    for name, got in run.outputs.items():
        t = tolerances_mod.for_stage("stream", name, tolerances)
        if name == base:
            continue
        for out in run.scores + run.features:
            limit = t["scores_max_abs"] if out in run.scores else t["features_max_abs"]
            results.append(judge_stream_outputs(run.model, name, base, got.outputs, ref, out, run.labels, limit))
            if run.long_index is not None:
                i = run.long_index
                results.append(judge_drift(run.model, name, base, got.outputs[i] if i < len(got.outputs) else None,
                                           ref[i] if i < len(ref) else None, out, run.labels[i], i, limit,
                                           run.seconds(i)))
        for out, (threshold, hysteresis) in run.decisions.items():
            results += judge_decisions(run.model, name, base, got.outputs, ref, out, threshold, hysteresis,
                                       run.labels, t)
    with_state = [n for n, o in run.outputs.items() if o.final_state and all(o.final_state)]
    for name in with_state[1:]:
        t = tolerances_mod.for_stage("stream", name, tolerances)
        for state in run.states:
            errs = [chunk_errors(a[None], b[None]) if a is not None and b is not None else np.full(1, np.inf)
                    for a, b in _pairs(run.outputs[name].final_state, run.outputs[with_state[0]].final_state, state,
                                       len(run.labels))]  # a state not given: infinite
            results.append(_streams_result(run.model, f"stream_state[{state}]", name, with_state[0], errs,
                                           t["state_max_abs"], run.labels,
                                           detail="the state after the last chunk of each stream"))
    if run.states and len(with_state) < 2:
        why = ("the reference keeps its own state" if base not in with_state else "one runtime reports it")
        results.append(not_applicable(run.model, "stream_state", "-", f"compared between runtimes only: {why}"))
    for name, seq in run.sequence.items():
        t = tolerances_mod.for_stage("stream", name, tolerances)
        for seq_name, out in zip(run.sequence_outputs, run.scores + run.features):
            streamed = [{seq_name: np.asarray(o[out]).reshape(len(o[out]), -1)} for o in run.outputs[name].outputs]
            whole = [{seq_name: np.asarray(s[seq_name]).reshape(len(streamed[i][seq_name]), -1)
                      if np.asarray(s[seq_name]).size == streamed[i][seq_name].size else np.asarray(s[seq_name])}
                     for i, s in enumerate(seq)]
            r = judge_stream_outputs(run.model, name, f"{name} streamed", whole, streamed, seq_name, run.labels,
                                     t["sequence_max_abs"], stage="sequence")
            r.detail = f"the whole-sequence form ({run.sequence_file}) vs the streamed {out}; {r.detail}"
            results.append(r)
    if run.parent is not None:
        p = run.parent
        cls = tolerances_mod.for_class(p.tolerance_class, tolerances)
        for out in run.scores:
            results += judge_vs_parent_stream(run.model, p.runner, p.parent, run.outputs[p.runner].outputs,
                                              p.outputs, out, run.decisions.get(out), run.labels, cls,
                                              p.tolerance_class)
    return results
