"""One model through the gate: collect, judge (:mod:`parity.judge`), shrink the failing cases and localise
the first failure (:func:`run_and_judge`; :func:`check_model` for a release's model); and the end of every
run (:func:`finish`: the runners stopped, the outputs saved for ``--rejudge``)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from ser_export import tolerances as tolerances_mod
from ser_export.export.model_file import ModelFile, open_model

from . import judge
from .cases import CaseSpec, shrink_failure
from .collect import collect_model
from .config import Cases, GateConfig
from .localize import first_divergence, first_divergence_vs_export, first_divergence_vs_pytorch
from .record import ParentComparison, save_runs
from .report import GateReport, ModelReport, finite_json
from .runners import Runner
from .runners.torch_module import TorchModuleRunner
from .subject import ModelUnderTest, check_against_manifest


def check_model(model: ModelFile | Path, arch: str, runners: Mapping[str, Runner], cfg: GateConfig,
                cases: Cases, expected: Mapping | None = None, report: ModelReport | None = None) -> ModelReport:
    """Run, judge, shrink and localise one model; ``expected`` is the manifest entry (labels, golden).

    The raw run is kept on ``report.run`` (for ``--save-outputs``)."""
    if not isinstance(model, ModelFile):
        model = open_model(model)
    report = report or ModelReport(arch=arch, file=model.path.name)
    t_start = time.perf_counter()
    if expected:
        check_against_manifest(model, expected)
    mut = ModelUnderTest(model, arch)
    try:
        run_and_judge(mut, runners, cfg, cases, report, expected.get("golden") if expected else None)
        report.timings["total_s"] = round(time.perf_counter() - t_start, 2)
    finally:
        mut.close()
    return report


def run_and_judge(mut: ModelUnderTest, runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases,
                   report: ModelReport, golden: Mapping | None = None,
                   parent: ParentComparison | None = None, skipped: Mapping[str, str] | None = None) -> None:
    """Collect, judge, then shrink the failing cases and localise the first failure, into ``report``.
    ``parent``: a variant's comparison with its float parent; ``skipped``: runtimes not run, and why.
    A shard with no case (:mod:`parity.shard`) runs and judges nothing here (``report.run`` stays ``None``)."""
    if not cases.specs:
        return
    run = collect_model(mut, runners, cfg, cases, golden)
    run.parent = parent
    run.skipped_runtimes = dict(skipped or {})
    report.run = run
    report.timings["runners"] = {n: run.timings[n] for n in runners}
    report.timings["librosa_reference"] = run.timings["librosa_reference"]
    report.results += judge.judge_model(run, cfg.tolerances)
    failing = judge.failing_cases(report.results, len(cases.specs))
    if failing.any() and cfg.shrink:
        report.counterexamples.append(_shrink(mut, runners, cases, failing, cfg))
    if report.failures and cfg.localize:
        report.localization += _localize(mut, runners, cases, report, cfg)


def _shrink(mut: ModelUnderTest, runners: Mapping[str, Runner], cases: Cases, failing: np.ndarray,
            cfg: GateConfig) -> dict:
    known = {spec: bool(f) for spec, f in zip(cases.specs, failing)}

    def fails(spec: CaseSpec) -> bool:
        if spec not in known:
            one = mut.cases([spec])
            run = collect_model(mut, runners, cfg, one, extra_runs=False)
            known[spec] = bool(judge.failing_cases(judge.judge_model(run, cfg.tolerances), 1)[0])
        return known[spec]

    minimal = shrink_failure(cfg.examples, cfg.seed, fails, cfg.shrink_budget_s)
    if minimal is None:  # fails only inside its batch: report the first failing case as drawn
        minimal = cases.specs[int(np.flatnonzero(failing)[0])]
        how = "as drawn (it does not fail alone: a batch-composition effect)"
    else:
        how = "shrunk by hypothesis"
    entry = {"case": minimal.label(), "spec": dataclasses.asdict(minimal), "how": how}
    if cfg.counterexample_dir:
        cfg.counterexample_dir.mkdir(parents=True, exist_ok=True)
        path = cfg.counterexample_dir / f"{mut.arch}_{minimal.kind}_{minimal.seed}.npy"
        np.save(path, mut.cases([minimal]).waveforms[0])
        entry["saved"] = str(path)
    return entry


def _localize(mut: ModelUnderTest, runners: Mapping[str, Runner], cases: Cases, report: ModelReport,
              cfg: GateConfig) -> list[dict]:
    rel = tolerances_mod.for_stage("localization", None, cfg.tolerances)["relative"]
    found = []
    per_case = [r for r in report.failures if r.scope == judge.CASES and r.where.get("case") is not None]
    for r in per_case[:1]:
        x = mut.inputs(cases.waveforms[r.where["case"]:r.where["case"] + 1])[0]
        if r.runner != "onnxruntime-python" and "onnxruntime-python" in runners:
            found.append(first_divergence(mut.probe, x, runners["onnxruntime-python"], runners[r.runner], rel))
        if "pytorch" in runners and r.runner != "pytorch":
            runners["pytorch"].activate(mut.probe, mut.outputs)
            if isinstance(runners["pytorch"], TorchModuleRunner):  # a model built anywhere: node by node
                try:
                    found.append(first_divergence_vs_export(
                        mut.probe, x, runners["pytorch"].model, mut.contract.input.name, mut.outputs, rel))
                except Exception as exc:  # the user's module may not export; localisation is a hint
                    found.append({"node": None, "between": f"pytorch export failed: {type(exc).__name__}"})
            else:
                found.append(first_divergence_vs_pytorch(mut.probe, x, runners[r.runner], runners["pytorch"].model,
                                                         rel))
    return found


def finish(report: GateReport, runners: Mapping[str, Runner], cfg: GateConfig, t0: float) -> None:
    """Stop every runner, save the outputs if asked, and time the whole run."""
    for r in runners.values():
        r.deactivate()
    _save(report, cfg, cfg.tolerances)
    report.wall_s = time.perf_counter() - t0


def _stream_results(m: ModelReport) -> dict:
    """The VAD's stream results as judged (``--rejudge`` and ``merge-reports`` give them as recorded): strict JSON,
    each infinity or NaN replaced by ``None`` and named in ``non_finite`` (:func:`parity.report.finite_json`)."""
    results, non_finite = finite_json([r.to_dict() for r in m.results])
    return {"results": results, "non_finite": non_finite}


def _save(report: GateReport, cfg: GateConfig, tolerances: Mapping | None) -> None:
    """``--save-outputs``: every model's run, and the tolerances it was judged under (for ``--rejudge``)."""
    if not cfg.save_outputs:
        return
    runs = {m.arch: m.run for m in report.models if m.run is not None}
    save_runs(Path(cfg.save_outputs), runs, {
        "release_dir": report.release_dir, "config": cfg.to_dict() | {"tolerances": None},
        "tolerances": dict(tolerances) if tolerances is not None else tolerances_mod.load(),
        "files": {m.arch: {"file": m.file, "sha256_expected": m.sha256_expected, "kind": m.kind,
                           "sha256_actual": m.sha256_actual, "error": m.error}
                  | (_stream_results(m) if m.kind == "stream" else {})
                  for m in report.models},
        "runners": report.runners, "cases_checked": report.cases_checked})
