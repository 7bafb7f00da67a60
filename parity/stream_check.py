"""One streaming model through the gate: run every stream on every runner, judge
(:mod:`parity.stream_judge`), shrink the first failure to the shortest failing stream and its
first failing chunk, and localise it to the first divergent node (:mod:`parity.stream_localize`).

The streams come from :func:`parity.stream_cases.draw_streams` (deterministic from the seed); the
protocol every runner gets is the contract's wire form (``StreamContract.to_wire``).  A runner that
cannot run streams (no ``"stream"`` capability) is not checked, and says so.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ser_export import tolerances as tolerances_mod
from ser_export.stream_contract import StreamContract

from . import judge
from .report import ModelReport
from .runners import Runner
from .stream_cases import StreamSpec, draw_streams, render_stream
from .stream_judge import judge_stream_run
from .stream_localize import first_divergence_on_chunk
from .stream_record import ParentStreams, StreamRun

#: The runner a variant is run on beside its parent, and the one the whole-sequence form is run on.
PYTHON = "onnxruntime-python"


@dataclasses.dataclass
class StreamCheck:
    """What a stream check is asked to do (from the gate's configuration)."""

    streams: int = 10
    seed: int = 0
    #: Length range of the short streams, seconds.
    seconds: tuple[float, float] = (1.0, 4.0)
    long_seconds: float | None = 60.0
    shrink: bool = True
    localize: bool = True
    counterexample_dir: Path | None = None

    def __post_init__(self):
        if not isinstance(self.streams, int) or self.streams < 1:
            raise ValueError(f"streams {self.streams!r}: at least 1 stream is needed (a check of none passes vacuously)")
        lo, hi = self.seconds
        if not 0 < lo <= hi:
            raise ValueError(f"seconds {self.seconds!r}: expected (MIN, MAX) with 0 < MIN <= MAX")
        if self.long_seconds is not None and not self.long_seconds > 0:
            raise ValueError(f"long_seconds {self.long_seconds!r}: expected a positive length, or None for no long "
                             f"stream")


def check_stream(model_path: Path, contract: StreamContract, runners: Mapping[str, Runner], baseline: str,
                 tolerances: Mapping, check: StreamCheck, report: ModelReport) -> StreamRun | None:
    """Run, judge, shrink and localise one streaming model into ``report``; returns the run (``None`` when no
    runner could run streams).  ``baseline``: the runner the others are compared with (the reference when given)."""
    model_path = Path(model_path)
    report.streaming = True
    wire = contract.to_wire()
    sig = contract.signal
    specs = draw_streams(check.streams, check.seed, sig.sample_rate, sig.chunk, seconds=check.seconds,
                         long_seconds=check.long_seconds)
    streams = [render_stream(s) for s in specs]
    able = {n: r for n, r in runners.items() if "stream" in r.capabilities}
    unable = [n for n in runners if n not in able]
    if unable:
        report.error = (f"{', '.join(unable)}: cannot run streams yet (no stream capability): not checked"
                        + (f"; {', '.join(able)} checked" if able else ""))
    if baseline not in able:
        return None
    if len(able) < 2 and contract.variant is None and contract.sequence is None:
        # the baseline alone, with no parent or whole-sequence form to compare it with: no stage could be
        # judged, and a check of nothing must not pass
        why = (f"only {baseline} can run streams: nothing to compare it with (name --torch FILE or a second "
               f"runtime): not checked")
        report.error = f"{report.error}; {why}" if report.error else why
        return None
    t0 = time.perf_counter()
    run = _run(model_path, contract, wire, able, baseline, specs, streams)
    report.timings["runners"] = {n: {"seconds": o.seconds, "streams": len(streams),
                                     "streams_per_s": round(len(streams) / max(o.seconds, 1e-9), 2)}
                                 for n, o in run.outputs.items()}
    report.results += judge_stream_run(run, tolerances)
    missing = [what for what, declared, ran in (("the whole-sequence form", contract.sequence, run.sequence),
                                                ("the variant against its parent", contract.variant, run.parent))
               if declared is not None and not ran]
    if missing:  # declared, but it runs on onnxruntime-python, which is not among the runtimes
        why = f"{' and '.join(missing)}: not checked (run on {PYTHON}, not among the runtimes)"
        report.error = f"{report.error}; {why}" if report.error else why
    failures = [r for r in report.failures if r.scope == judge.CASES and "stream" in r.where]
    if failures and (check.shrink or check.localize):
        first = failures[0]
        y, entry = _shrink(model_path, contract, wire, able, baseline, specs, streams, first, tolerances, check)
        report.counterexamples.append(entry)
        if check.localize:
            rel = tolerances_mod.for_stage("localization", None, tolerances)["relative"]
            report.localization.append(_localize(model_path, contract, wire, able, baseline, first, y, rel))
    report.timings["total_s"] = round(time.perf_counter() - t0, 2)
    return run


def _run(model_path: Path, contract: StreamContract, wire: dict, runners: Mapping[str, Runner], baseline: str,
         specs: list[StreamSpec], streams: list[np.ndarray]) -> StreamRun:
    outputs = {n: r.run_stream(model_path, wire, streams) for n, r in runners.items()}
    run = StreamRun(contract.name, [s.label() for s in specs], [s.n_samples for s in specs],
                    contract.signal.sample_rate, contract.signal.chunk, baseline, outputs,
                    [s.name for s in contract.scores], list(contract.features), [s.output for s in contract.states],
                    {n: (d.threshold, d.hysteresis) for n, d in contract.decisions.items()},
                    long_index=next((i for i, s in enumerate(specs) if s.kind == "long"), None))
    seq = contract.sequence
    if seq is not None and PYTHON in runners:
        path = model_path.parent / seq.file if seq.file else model_path
        run.sequence = {PYTHON: runners[PYTHON].run_sequence(path, wire, seq.signal or contract.signal.name,
                                                             list(seq.outputs), streams)}
        run.sequence_file, run.sequence_outputs = path.name, list(seq.outputs)
    if contract.variant is not None and PYTHON in runners:
        parent = model_path.parent / contract.variant.parent
        got = runners[PYTHON].run_stream(parent, contract.parent_wire(), streams)
        run.parent = ParentStreams(parent.name, PYTHON, contract.variant.tolerance_class, got.outputs)
    return run


def _fails(model_path, contract, wire, runners, baseline, spec, y, stage, runner, tolerances) -> bool:
    """Whether ``stage`` still fails on ``runner`` for the single stream ``y``."""
    needed = {n: runners[n] for n in dict.fromkeys([baseline, runner, PYTHON]) if n in runners}
    one = _run(model_path, contract, wire, needed, baseline, [spec], [y])
    one.long_index = None
    return any(not r.passed and r.applicable and r.stage == stage and r.runner == runner
               for r in judge_stream_run(one, tolerances))


def _shrink(model_path, contract, wire, runners, baseline, specs, streams, first: judge.StageResult, tolerances,
            check: StreamCheck) -> tuple[np.ndarray, dict]:
    """The shortest failing stream: the failing stream cut after its first failing chunk (a causal model cannot
    fail earlier), then started as late as it still fails (bisection over whole chunks)."""
    s = int(first.where["stream"])
    chunk = contract.signal.chunk
    n_chunks = -(-len(streams[s]) // chunk)
    k = int(first.where.get("first_failing_chunk", first.where.get("worst_chunk", n_chunks - 1)))
    y = streams[s][:(k + 1) * chunk]
    how = "as drawn"
    args = (model_path, contract, wire, runners, baseline, specs[s])
    start = 0
    if check.shrink and _fails(*args, y, first.stage, first.runner, tolerances):
        how = f"cut after its first failing chunk {k}"
        lo, hi = 0, k
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _fails(*args, y[mid * chunk:], first.stage, first.runner, tolerances):
                lo = mid
            else:
                hi = mid - 1
        start = lo
        if start:
            how += f", started at chunk {start}"
    elif check.shrink:
        y, how = streams[s], "as drawn (the cut stream does not fail alone)"
    y = y[start * chunk:]
    failing_chunk = -(-len(y) // chunk) - 1
    entry = {"case": f"{specs[s].label()} samples [{start * chunk}, {start * chunk + len(y)}): "
                     f"{first.stage} on {first.runner} fails at chunk {failing_chunk}",
             "stream": s, "start": start * chunk, "samples": int(len(y)), "first_failing_chunk": failing_chunk,
             "stage": first.stage, "runner": first.runner, "spec": dataclasses.asdict(specs[s]), "how": how}
    if check.counterexample_dir:
        check.counterexample_dir.mkdir(parents=True, exist_ok=True)
        path = check.counterexample_dir / f"{contract.name}_{specs[s].kind}_{specs[s].seed}_{start}.npy"
        np.save(path, y)
        entry["saved"] = str(path)
    return y, entry


def _localize(model_path, contract, wire, runners, baseline, first: judge.StageResult, y: np.ndarray,
              rel: float) -> dict:
    """The first divergent node on the shrunk stream's last chunk: against the parent when the contract names
    one (or the stage is the parent's), else between two ONNX runtimes."""
    parent = model_path.parent / contract.variant.parent if contract.variant is not None else None
    onnx_side = PYTHON if PYTHON in runners else None
    try:
        if parent is not None and onnx_side:
            return first_divergence_on_chunk(model_path, wire, y, runners[onnx_side], runners[onnx_side], rel,
                                             parent_path=parent, parent_protocol=contract.parent_wire())
        other = first.runner
        ref = baseline if baseline != "pytorch" else onnx_side
        if ref and other != ref and other != "pytorch":
            return first_divergence_on_chunk(model_path, wire, y, runners[ref], runners[other], rel)
    except Exception as exc:  # localisation is a hint; the verdict stands without it
        return {"node": None, "between": f"localisation failed: {type(exc).__name__}: {exc}"}
    return {"node": None, "between": f"{first.runner} vs {baseline}",
            "why": "the reference has no graph to compare nodes with; a [variant] parent (a known-good file) "
                   "or a second ONNX runtime localises"}
