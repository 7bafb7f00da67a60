"""The gate a build runs before it writes a release: each reduced-precision variant (made, linted and serialised
by :func:`ser_export.export.variants.make_variants`) judged against its parent on the test split
(:func:`judge_variants`), then every staged model and variant through the parity gate
(:func:`run_release_gate`).  A failure refuses the release (:class:`ReleaseCheckError`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import onnx

from ser_export import contract, tolerances
from ser_export.data.dataset import FeatureSet
from ser_export.errors import ReleaseCheckError, ToolMissingError
from ser_export.export.model_file import open_model
from ser_export.export.variants import MadeVariant, classifier_model, run_batches, session

from . import judge
from .cases import draw_cases
from .config import DEFAULT_RUNTIMES, Cases, GateConfig, make_runners
from .judge import metric
from .pipeline import check_model
from .report import ModelReport, model_figures
from .runners import RunnerError
from .variants import HeldOut, check_variant


#: onnxruntime-python's intra-op threads for the held-out logits of a parent and its variants.
HELDOUT_THREADS = 2


def figure(value: float | None) -> float | None:
    """A variant's onnxruntime figure as the manifest records it: 4 significant digits, as
    :func:`parity.report.model_figures` records the runners' (``None`` stays ``None``).

    The logits behind it come from onnxruntime's float kernels (MLAS), which are chosen by the processor and
    may differ in their last bits (about 1e-7 relative) from one x86-64 machine to another: the build and
    ``python -m ser_export variants`` compute every variant figure here, with the same sessions, and the
    rounding keeps the manifest the same on another machine but for a value within that change of a
    rounding boundary (odds under 1e-3 per figure)."""
    return None if value is None else float(f"{value:.4g}")


def judge_variants(parent: onnx.ModelProto, made: Mapping[str, MadeVariant], arch: str,
                   test: FeatureSet) -> dict[str, dict]:
    """Each variant ``made`` of one model (:func:`ser_export.export.variants.make_variants`) judged against its
    ``parent`` on the test split's log-mel features (``test``: the build's test split, augmented copies left
    out) under its tolerance class; a failure refuses the release (:class:`ReleaseCheckError`).

    Returns ``name -> figures`` for the manifest's ``vs_parent`` (``{"heldout": ...}``; empty when the split
    has no clips)."""
    keep = ~test.augmented
    feats, targets = test.features[keep], test.targets[keep]
    parent_logits = run_batches(session(classifier_model(parent, contract.FEATURES_NAME, contract.OUTPUT_NAME),
                                        HELDOUT_THREADS),
                                feats) if len(targets) else None
    out = {}
    for name, variant in made.items():
        figures: dict[str, dict] = {}
        if parent_logits is not None:
            logits = run_batches(session(classifier_model(variant.proto, contract.FEATURES_NAME,
                                                          contract.OUTPUT_NAME), HELDOUT_THREADS), feats)
            cls = variant.tolerance_class
            results = judge.judge_vs_parent(f"{arch}.{name}", "onnxruntime-python", arch, logits, parent_logits,
                                            [f"test clip {i}" for i in range(len(targets))], None,
                                            tolerances.for_class(cls), judge.HELDOUT, targets=targets, class_name=cls)
            failed = [r for r in results if not r.passed]
            if failed:
                raise ReleaseCheckError(f"{arch} {name} variant: release refused: "
                                        + "; ".join(r.message() for r in failed))
            top1 = next(r for r in results if r.stage.startswith("vs_parent[top1"))
            acc = next(r for r in results if r.stage.startswith("vs_parent[accuracy"))
            figures["heldout"] = {"n": len(targets), "top1_agreement": top1.metrics["agreement_plain"],
                                  "top1_agreement_ties_excused": top1.metrics["agreement"],
                                  "accuracy": acc.metrics["accuracy"], "parent_accuracy": acc.metrics["parent_accuracy"],
                                  "accuracy_drop": acc.metrics["drop"], "max_abs_logit_diff": figure(results[0].max_abs)}
        out[name] = figures
    return out


def run_release_gate(staged: Mapping[str, Path], labels: Sequence[str], golden: Mapping[str, dict],
                     runtimes: Sequence[str] | None, examples: int, seed: int, counterexample_dir: Path | None,
                     log: Callable[[str], None],
                     variants: Mapping[str, Mapping[str, tuple[Path, dict]]] | None = None) -> dict[str, dict]:
    """The parity gate on the staged model files; raises :class:`ReleaseCheckError` on any failure.

    ``runtimes``: ``None`` for :data:`parity.config.DEFAULT_RUNTIMES`; ``examples`` and ``seed``: the cases
    drawn; ``variants``: ``arch -> name -> (staged path, manifest entry)``.  Returns the figures per model
    and per variant (``arch.name``) for the manifest."""
    cfg = GateConfig(runtimes=tuple(runtimes or DEFAULT_RUNTIMES), examples=examples, seed=seed,
                     counterexample_dir=counterexample_dir)
    cases = Cases.from_specs(draw_cases(cfg.examples, cfg.seed))
    runners = make_runners(cfg)
    figures = {}
    try:
        for arch, path in staged.items():
            report = ModelReport(arch=arch, file=contract.MODEL_FILES[arch])
            try:
                check_model(path, arch, runners, cfg, cases, expected={"labels": list(labels), "golden": golden[arch]},
                            report=report)
            except RunnerError as exc:
                raise ToolMissingError(f"{arch}: the parity gate could not run: {exc}") from None
            if report.failures:
                worst = "; ".join(r.message() for r in report.failures[:3])
                raise ReleaseCheckError(f"{arch}: release refused by the parity gate: {worst}")
            figures[arch] = model_figures(report) | {"runner_info": {n: r.info() for n, r in runners.items()}}
            log(f"{arch}: parity gate passed on {len(cases.specs)} cases x {len(runners)} runners")
            parent, parent_logits = open_model(path), {}
            for name, (vpath, entry) in (variants or {}).get(arch, {}).items():
                vr = ModelReport(arch=f"{arch}.{name}", file=entry["file"])
                try:
                    check_variant(open_model(vpath), arch, name, entry, parent, {"labels": list(labels)}, runners,
                                  cfg, cases, HeldOut(None, None, "the build judged the test split's log-mel"), vr,
                                  parent_logits)
                except RunnerError as exc:
                    raise ToolMissingError(f"{arch} {name}: the parity gate could not run: {exc}") from None
                if vr.failures:
                    worst = "; ".join(r.message() for r in vr.failures[:3])
                    raise ReleaseCheckError(f"{arch} {name} variant: release refused by the parity gate: {worst}")
                ort_py = "onnxruntime-python"
                figures[f"{arch}.{name}"] = {
                    "n": len(cases.specs), "top1_agreement": metric(vr.results, ort_py, "vs_parent[top1]",
                                                                    "agreement_plain"),
                    "top1_agreement_ties_excused": metric(vr.results, ort_py, "vs_parent[top1]", "agreement"),
                    "max_abs_logit_diff": figure(metric(vr.results, ort_py, "vs_parent[logits]")),
                    "runtimes": sorted({r.runner for r in vr.results if r.applicable and r.runner != "-"})}
                log(f"{arch}: {name} variant passed the parity gate")
    finally:
        for r in runners.values():
            r.deactivate()
    return figures
