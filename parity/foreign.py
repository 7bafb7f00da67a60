"""A model built anywhere, checked against its declared contract:
``verify model.onnx --contract c.toml [--torch pkg.mod:factory]`` (:func:`verify_model`)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ser_export import tolerances as tolerances_mod
from ser_export.export.model_file import ReleaseFileError, open_model
from ser_export.model_contract import ModelContract
from ser_export.stream_contract import StreamContract

from . import judge
from .config import RUNNER_BACKENDS, GateConfig, make_runners
from .pipeline import finish, run_and_judge
from .record import ModelRun
from .report import GateReport, ModelReport
from .runners import Runner, RunnerError
from .runners.torch_module import TorchModuleRunner
from .stream_check import StreamCheck, check_stream
from .subject import ModelUnderTest


def verify_model(model_path: Path, contract: ModelContract | StreamContract, cfg: GateConfig,
                 torch_factory: str | None = None, torch_weights: Path | None = None,
                 streams: StreamCheck | None = None) -> GateReport:
    """Check one model built anywhere against its declared contract.

    Without ``torch_factory`` onnxruntime-python is the baseline every other runtime is
    compared with; with it, the user's module is.  The operator lint runs first for every
    backend a selected runtime exercises: a runtime whose backend cannot run the model is
    reported with the lint's findings, and is a failure only if the contract targets that
    backend.  Stages the contract declares nothing for are reported as not applicable.
    """
    from ser_export.export.lint import lint_model

    t0 = time.perf_counter()
    model_path = Path(model_path)
    report = GateReport(release_dir=str(model_path), config=cfg.to_dict() | {"contract": contract.to_dict()})
    arch = contract.name
    mr = ModelReport(arch=arch, file=model_path.name)
    report.models.append(mr)
    try:
        model = open_model(model_path, folder=model_path.parent)
    except ReleaseFileError as exc:
        mr.error = str(exc)
        return report
    mr.sha256_actual = model.sha256
    tol = cfg.tolerances or tolerances_mod.load()
    if contract.tolerances:
        try:
            tol = tolerances_mod.apply_overrides(contract.tolerances, tol, "contract tolerances")
        except ValueError as exc:
            mr.error = str(exc)
            return report
    cfg = dataclasses.replace(cfg, tolerances=tol)

    wanted = [r for r in cfg.runtimes if r != "pytorch"]
    backends = sorted({RUNNER_BACKENDS[r] for r in wanted if r in RUNNER_BACKENDS})
    if backends:
        lint = lint_model(model.proto, backends)
        for runtime in list(wanted):
            backend = RUNNER_BACKENDS.get(runtime)
            if backend and not lint.compatible(backend):
                why = "; ".join(f.message for f in lint.errors(backend))
                wanted.remove(runtime)
                if backend in contract.targets:
                    mr.results.append(judge.StageResult(arch, "operator_lint", runtime, f"{backend} operator table",
                                                        False, 0.0, float(len(lint.errors(backend))), 0.0, 0, {},
                                                        detail=why))
                else:
                    mr.results.append(judge.not_applicable(arch, "operator_lint", runtime,
                                                           f"not run: {backend} is not a target and cannot run "
                                                           f"this model ({why})"))
    runners: dict[str, Runner] = {}
    if isinstance(contract, StreamContract):
        return _verify_stream(model_path, contract, cfg, torch_factory, torch_weights, wanted, report, mr,
                              streams or StreamCheck(seed=cfg.seed), t0)
    if torch_factory:
        names = tuple(n for n in (contract.outputs.logits, contract.outputs.features) if n)
        runners["pytorch"] = TorchModuleRunner(torch_factory, torch_weights, names, threads=cfg.threads)
    runners |= make_runners(dataclasses.replace(cfg, runtimes=tuple(wanted)))
    cases = None
    try:
        mut = ModelUnderTest(model, arch, contract)
        try:
            cases = mut.cases(cfg.draw())
            run_and_judge(mut, runners, cfg, cases, mr)
            if mr.run is not None:  # None: a shard with no case
                mr.results += _not_applicable(arch, contract, mr.run)
        finally:
            mut.close()
        report.cases_checked = len(cases.specs)
        report.runners = {name: r.info() for name, r in runners.items()}
    except (RunnerError, ReleaseFileError) as exc:
        mr.error = str(exc)
    finally:
        finish(report, runners, cfg, t0)
    return report


def _verify_stream(model_path: Path, contract: StreamContract, cfg: GateConfig, torch_factory: str | None,
                   torch_weights: Path | None, wanted: list[str], report: GateReport, mr: ModelReport,
                   check: StreamCheck, t0: float) -> GateReport:
    """A streaming model (a version 2 contract): every stream on every runner that runs streams, judged against
    the ``--torch`` reference (driven as the contract's ``reference`` says) or else onnxruntime-python."""
    runners: dict[str, Runner] = {}
    if torch_factory:
        runners["pytorch"] = TorchModuleRunner(torch_factory, torch_weights, threads=cfg.threads,
                                               reference=contract.reference)
    runners |= make_runners(dataclasses.replace(cfg, runtimes=tuple(wanted)))
    baseline = "pytorch" if torch_factory else "onnxruntime-python"
    check = dataclasses.replace(check, shrink=cfg.shrink and check.shrink, localize=cfg.localize and check.localize,
                                counterexample_dir=cfg.counterexample_dir)
    try:
        if cfg.save_outputs or cfg.shard is not None:
            raise RunnerError("--save-outputs, --rejudge and --shard do not take a streaming model's run yet")
        if baseline not in runners:
            raise RunnerError(f"a streaming model is compared with --torch or onnxruntime-python: neither is among "
                              f"the runtimes ({', '.join(runners) or 'none'})")
        run = check_stream(model_path, contract, runners, baseline, cfg.tolerances, check, mr)
        if run is not None:
            report.cases_checked = len(run.labels)
            if contract.sequence is None:
                mr.results.append(judge.not_applicable(contract.name, "sequence", "-",
                                                       "the contract declares no whole-sequence form"))
            if contract.variant is None:
                mr.results.append(judge.not_applicable(contract.name, "vs_parent", "-",
                                                       "the contract declares no parent"))
        report.runners = {name: r.info() for name, r in runners.items()}
    except (RunnerError, ReleaseFileError) as exc:
        mr.error = str(exc)
    finally:
        finish(report, runners, dataclasses.replace(cfg, save_outputs=None), t0)
    return report


def _not_applicable(arch: str, contract: ModelContract, run: ModelRun) -> list[judge.StageResult]:
    out = [judge.not_applicable(arch, "golden_logits", "-", "the contract declares no golden logits")]
    if not contract.outputs.features:
        out.append(judge.not_applicable(arch, "logmel_vs_librosa", "-", "the contract declares no features output"))
    if not contract.outputs.labels:
        out.append(judge.not_applicable(arch, "labels", "-", "the contract declares no labels (top-1 compares "
                                                              "class indices)"))
    if not run.preprocessing:
        out.append(judge.not_applicable(arch, "js_preprocessing", "-",
                                        "needs an RMS-normalised waveform input and a runner with the "
                                        "preprocess capability"))
    return out
