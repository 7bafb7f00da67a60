"""A release's reduced-precision variants: each against itself across the runtimes of its declared backends,
and against its float parent on the gate's cases and the held-out clips (:func:`check_variant`)."""
from __future__ import annotations

import dataclasses
import time
from typing import Mapping

import numpy as np

from ser_export.export.metadata import read_metadata
from ser_export.export.model_file import ModelFile, ReleaseFileError
from ser_export.manifest import Manifest

from . import judge
from .config import RUNNER_BACKENDS, Cases, GateConfig
from .pipeline import run_and_judge
from .record import ParentComparison
from .report import ModelReport
from .runners import Runner, RunnerError
from .subject import ModelUnderTest, check_against_manifest


def ort_logits(model: ModelFile, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """A model's first output on ``x`` in onnxruntime-python (the parent's side of a variant's comparison)."""
    from ser_export.export.variants import run_batches, session

    return run_batches(session(model.proto, threads), x)


@dataclasses.dataclass
class HeldOut:
    """The release's held-out clips (regenerated once per release), or why there are none."""

    waveforms: np.ndarray | None
    targets: np.ndarray | None
    why_not: str = ""

    @classmethod
    def of(cls, manifest: Manifest) -> "HeldOut":
        from ser_export.data.heldout import synthetic_heldout

        raw = manifest.raw
        got = synthetic_heldout(raw["training_data"], manifest.labels, int(raw["build"]["seed"]))
        if isinstance(got, str):
            return cls(None, None, f"the held-out clips cannot be regenerated: {got}")
        return cls(*got)


def class_config(cfg: GateConfig, class_name: str) -> GateConfig:
    """``cfg`` with the stage bounds tolerance class ``class_name`` replaces
    (:func:`ser_export.tolerances.with_class_stage_bounds`, which the judge also applies to a saved variant
    run); ``cfg`` itself when the class replaces none."""
    from ser_export import tolerances

    base = cfg.tolerances if cfg.tolerances is not None else tolerances.load()
    data = tolerances.with_class_stage_bounds(base, class_name)
    return cfg if data is base else dataclasses.replace(cfg, tolerances=data)


def check_variant(model: ModelFile, arch: str, name: str, declared: Mapping, parent: ModelFile, parent_entry: Mapping,
                  runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases, heldout: HeldOut,
                  report: ModelReport, parent_logits: dict | None = None) -> ModelReport:
    """A reduced-precision variant: against itself across the runtimes that run its declared backends (the
    default tolerances, onnxruntime-python the baseline), and against its float ``parent`` under its tolerance
    class on the gate's cases and the held-out clips.

    ``parent_logits``: one dict per parent, shared by its variants; the parent's logits on the cases and the
    held-out clips are computed into it once."""
    from ser_export.export.variants import METADATA_KEY

    t_start = time.perf_counter()
    check_against_manifest(model, parent_entry)
    info = read_metadata(model).get(METADATA_KEY)  # strict JSON, or a one-line ReleaseFileError naming the key
    if not isinstance(info, dict) or info.get("parent_sha256") != parent.sha256 or info.get("name") != name:
        raise ReleaseFileError(f"{model.path}: its metadata does not name it the {name} variant of "
                               f"{parent.path.name} (sha256 {parent.sha256[:12]}...)")
    backends = set(declared["declared_backends"])
    sub, skipped = {}, {}
    for runtime, runner in runners.items():
        backend = RUNNER_BACKENDS.get(runtime)
        if runtime == "pytorch":
            skipped[runtime] = "a variant has no PyTorch module; onnxruntime-python is its baseline"
        elif backend is not None and backend not in backends:
            why = "; ".join(f["message"] for f in declared["backends"].get(backend, {}).get("findings", [])
                            if f["severity"] == "error") or "not declared"
            skipped[runtime] = f"the variant does not declare {backend}: {why}"
        else:
            sub[runtime] = runner
    if "onnxruntime-python" not in sub:
        raise RunnerError(f"{report.arch}: a variant needs onnxruntime-python among the runtimes (its baseline)")
    sub = {"onnxruntime-python": sub.pop("onnxruntime-python"), **sub}
    known = parent_logits if parent_logits is not None else {}
    if "cases" not in known:
        known["cases"] = ort_logits(parent, cases.waveforms, cfg.threads)
    comparison = ParentComparison(arch, declared["tolerance_class"], known["cases"])
    if heldout.waveforms is not None:
        if "heldout" not in known:
            known["heldout"] = ort_logits(parent, heldout.waveforms, cfg.threads)
        comparison.heldout_targets = heldout.targets
        comparison.heldout_parent_logits = known["heldout"]
        comparison.heldout_logits = ort_logits(model, heldout.waveforms, cfg.threads)
    else:
        comparison.heldout_why_not = heldout.why_not
    mut = ModelUnderTest(model, report.arch)
    try:
        run_and_judge(mut, sub, class_config(cfg, declared["tolerance_class"]), cases, report, None, comparison,
                      skipped)
    finally:
        mut.close()
    report.timings["total_s"] = round(time.perf_counter() - t_start, 2)
    return report


def unchecked_variants(arch: str, entry: Mapping, why: str) -> list[ModelReport]:
    """A row per variant of a parent the gate could not check (its verdict is the parent's)."""
    out = []
    for name, v in (entry.get("variants") or {}).items():
        vr = ModelReport(arch=f"{arch}.{name}", file=v["file"], sha256_expected=v["sha256"])
        vr.results.append(judge.not_applicable(vr.arch, "vs_parent", "-", f"not checked: {why}"))
        out.append(vr)
    return out
