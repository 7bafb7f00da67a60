"""The release gate: checksums, every runner on hypothesis cases, comparisons, report, exit code.

``python -m ser_export verify`` calls :func:`verify_release`; the build calls
:func:`check_model` on its staged files before writing a release.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ser_export import tolerances as tolerances_mod
from ser_export.export.metadata import frontend_from_metadata, read_metadata
from ser_export.export.model_file import ModelFile, ReleaseFileError, open_model
from ser_export.manifest import Manifest, ManifestError
from ser_export.frontend.reference import logmel_reference

from . import compare
from .cases import CaseSpec, batch_digest, draw_cases, golden_specs, render, shrink_failure
from .localize import first_divergence, first_divergence_vs_pytorch
from .probe import write_probe
from .report import GateReport, ModelReport
from .runners import BASELINE, RUNNERS, Runner, RunnerError

DEFAULT_RUNTIMES = ("pytorch", "onnxruntime-python", "onnxruntime-web-wasm", "onnxruntime-node")


@dataclasses.dataclass
class GateConfig:
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    examples: int = 200
    seed: int = 0
    threads: int = 1
    timeout_s: float = 300.0
    batch_size: int = 64
    invariance_cases: int = 6
    shrink: bool = True
    shrink_budget_s: float = 90.0
    localize: bool = True
    counterexample_dir: Path | None = Path("parity-out") / "counterexamples"

    def __post_init__(self) -> None:
        unknown = [r for r in self.runtimes if r not in RUNNERS]
        if unknown:
            raise ValueError(f"unknown runtimes {unknown}; choose from {sorted(RUNNERS)}")
        if self.examples < 1:
            raise ValueError("examples must be at least 1")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["counterexample_dir"] = str(self.counterexample_dir) if self.counterexample_dir else None
        d["runtimes"] = list(self.runtimes)
        return d


@dataclasses.dataclass
class Cases:
    specs: list[CaseSpec]
    waveforms: np.ndarray          # (n, N) float32
    labels: list[str]
    normalised: np.ndarray         # (n,) bool

    @classmethod
    def from_specs(cls, specs: Sequence[CaseSpec]) -> "Cases":
        return cls(list(specs), np.stack([render(s) for s in specs]), [s.label() for s in specs],
                   np.asarray([s.normalised for s in specs], dtype=bool))


def make_runners(cfg: GateConfig) -> dict[str, Runner]:
    out = {}
    for name in cfg.runtimes:
        factory = RUNNERS[name]
        kwargs = {"threads": cfg.threads}
        if name != "pytorch" and name != "onnxruntime-python":
            kwargs["timeout_s"] = cfg.timeout_s
        out[name] = factory(**kwargs)
    return out


def _infer_all(runner: Runner, x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, x.shape[0], batch):
        for k, v in runner.infer(x[i:i + batch]).items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


class ModelCheck:
    """Everything needed to judge one model: runners' outputs, reference, tolerances."""

    def __init__(self, model: ModelFile, runners: Mapping[str, Runner], cfg: GateConfig, arch: str,
                 tolerances: Mapping | None = None):
        self.path = model.path
        self.runners = runners
        self.cfg = cfg
        self.arch = arch
        self.tol = tolerances or tolerances_mod.load()
        self.meta = read_metadata(model.proto)
        try:
            self.params = frontend_from_metadata(self.meta)
            self.classes = list(self.meta["labels"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReleaseFileError(f"{self.path}: metadata is not a ser_export model's ({exc})") from None
        self.logits_name = model.proto.graph.output[0].name
        self.features_name = self.meta.get("features_output")
        if not self.features_name:
            raise ReleaseFileError(f"{self.path}: metadata has no 'features_output' (rebuild with ser_export)")
        self._tmp = tempfile.TemporaryDirectory(prefix="ser_export_parity_")
        # every runner (PyTorch too) reads this self-contained copy, never the release folder
        self.probe = write_probe(model.proto, Path(self._tmp.name) / "probe.onnx", [self.features_name])
        self.outputs = [self.logits_name, self.features_name]

    def tolerance(self, stage: str, runner: str | None) -> dict:
        return tolerances_mod.for_stage(stage, runner, self.tol)

    def activate(self, name: str) -> None:
        runner = self.runners[name]
        runner.activate(self.probe, self.outputs)

    def run_all(self, cases: Cases) -> tuple[dict, dict]:
        """Outputs of every runner for every case, and timings."""
        outputs, timings = {}, {}
        for name, runner in self.runners.items():
            self.activate(name)
            t0 = time.perf_counter()
            outputs[name] = _infer_all(runner, cases.waveforms, self.cfg.batch_size)
            timings[name] = {"seconds": round(time.perf_counter() - t0, 3),
                             "ms_per_case": round(1000 * (time.perf_counter() - t0) / len(cases.specs), 3)}
        return outputs, timings

    # ---------------------------------------------------------------- judging
    def judge(self, cases: Cases, outputs: Mapping[str, Mapping[str, np.ndarray]],
              reference: np.ndarray) -> list[compare.StageResult]:
        results = []
        norm = cases.normalised
        labels = cases.labels
        top_db = self.params.top_db
        base = BASELINE if BASELINE in outputs else None
        for name, out in outputs.items():
            feats = out[self.features_name]
            results += compare.compare_logmel(self.arch, name, "librosa-float64", feats, reference, labels,
                                              self.tolerance("logmel_db", name), top_db, "logmel_vs_librosa")
            if base and name != base:
                results += compare.compare_logmel(
                    self.arch, name, base, feats, outputs[base][self.features_name], labels,
                    self.tolerance("logmel_between_runtimes", name), top_db, f"logmel_vs_{base}")
                if norm.any():  # end-to-end stages: normalised cases only
                    sel = np.flatnonzero(norm)
                    sel_labels = [labels[i] for i in sel]
                    ours, ref = out[self.logits_name][sel], outputs[base][self.logits_name][sel]
                    tol_logits = self.tolerance("logits", name)["max_abs"]
                    subset = [
                        compare.compare_logits(self.arch, name, base, ours, ref, sel_labels, self.classes,
                                               tol_logits),
                        compare.compare_probabilities(self.arch, name, base, ours, ref, sel_labels, self.classes,
                                                      self.tolerance("probabilities", name)["max_abs"]),
                        compare.compare_top1(self.arch, name, base, ours, ref, sel_labels, self.classes, tol_logits),
                    ]
                    for r in subset:  # report case numbers of the whole case list
                        if "case" in r.where:
                            r.where["case"] = int(sel[r.where["case"]])
                    results += subset
        return results

    def case_failures(self, cases: Cases, outputs: Mapping[str, Mapping[str, np.ndarray]],
                      reference: np.ndarray) -> np.ndarray:
        """Per case: does any per-case stage fail for any runner?"""
        bad = np.zeros(len(cases.specs), dtype=bool)
        floor = -self.params.top_db
        base = BASELINE if BASELINE in outputs else None
        for name, out in outputs.items():
            tol = self.tolerance("logmel_db", name)
            err = np.abs(out[self.features_name].astype(np.float64) - reference)
            err[~np.isfinite(out[self.features_name])] = np.inf
            above = reference > floor + tol["floor_margin_db"]
            bad |= (np.where(above, err, 0).reshape(len(bad), -1).max(1) > tol["above_floor"])
            bad |= err.reshape(len(bad), -1).max(1) > tol["all_bins"]
            if base and name != base:
                tol_l = self.tolerance("logits", name)["max_abs"]
                ours, ref = out[self.logits_name], outputs[base][self.logits_name]
                lerr = np.abs(ours.astype(np.float64) - ref)
                lerr[~np.isfinite(ours)] = np.inf
                gap = np.diff(np.sort(ref, axis=1)[:, -2:], axis=1)[:, 0]
                top_bad = (ours.argmax(1) != ref.argmax(1)) & (gap >= tol_l)
                bad |= cases.normalised & ((lerr.max(1) > tol_l) | top_bad)
        return bad

    # -------------------------------------------------------------- properties
    def determinism_and_invariance(self, cases: Cases, outputs) -> list[compare.StageResult]:
        """Same batch twice: identical; a clip alone: the same as inside its batch."""
        results = []
        k = min(self.cfg.invariance_cases, len(cases.specs))
        first = cases.waveforms[: min(self.cfg.batch_size, len(cases.specs))]
        for name, runner in self.runners.items():
            self.activate(name)
            again = runner.infer(first)
            for what, key in (("logits", self.logits_name), ("logmel", self.features_name)):
                results.append(compare.compare_exact(
                    self.arch, name, f"determinism[{what}]", again[key], outputs[name][key][: first.shape[0]],
                    cases.labels, self.tolerance("determinism", name)["max_abs"],
                    detail="the same batch run twice"))
            alone = {key: np.concatenate([runner.infer(cases.waveforms[i:i + 1])[key] for i in range(k)])
                     for key in self.outputs}
            for what, key in (("logits", self.logits_name), ("logmel", self.features_name)):
                results.append(compare.compare_exact(
                    self.arch, name, f"batch_invariance[{what}]", alone[key], outputs[name][key][:k],
                    cases.labels, self.tolerance("batch_invariance", name)[what],
                    detail=f"each of the first {k} cases alone vs inside a batch of {first.shape[0]}"))
        return results

    def golden(self, expected: Mapping | None) -> list[compare.StageResult]:
        """Logits of the fixed golden cases vs those the trained model gave at build time."""
        if not expected:
            return []
        specs = golden_specs(expected["n"], expected["seed"])
        cases = Cases.from_specs(specs)
        if batch_digest(cases.waveforms) != expected["input_sha256"]:
            raise RunnerError("the golden inputs regenerated here differ from those the build used "
                              "(synthesis or numpy changed); rebuild the release")
        ref = np.asarray(expected["logits"], dtype=np.float32)
        results = []
        for name, runner in self.runners.items():
            self.activate(name)
            got = runner.infer(cases.waveforms)[self.logits_name]
            tol = self.tolerance("logits", name)["max_abs"]
            results.append(compare.compare_logits(self.arch, name, "build-time pytorch", got, ref, cases.labels,
                                                  self.classes, tol, stage="golden_logits"))
            top = [self.classes[i] for i in got.argmax(1)]
            wrong = [i for i, (a, b) in enumerate(zip(top, expected["top1"])) if a != b]
            gap_ok = all(np.diff(np.sort(ref[i])[-2:])[0] < tol for i in wrong)
            results.append(compare.StageResult(
                self.arch, "golden_top1_label", name, "build-time pytorch", not wrong or gap_ok, 0.0,
                float(len(wrong)), float(len(wrong)), len(specs),
                {"case": wrong[0], "input": cases.labels[wrong[0]], "got": top[wrong[0]],
                 "expected": expected["top1"][wrong[0]]} if wrong else {},
                detail="label names of the top class, as the manifest recorded them"))
        return results

    def close(self) -> None:
        self._tmp.cleanup()


def check_against_manifest(model: ModelFile, entry: Mapping) -> None:
    """Refuse a model whose declared input, outputs or labels contradict its manifest entry."""
    graph = model.proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    declared = entry.get("input") or {}
    if len(inputs) != 1:
        raise ReleaseFileError(f"{model.path}: has {len(inputs)} inputs; the manifest declares one "
                               f"({declared.get('name')!r})")
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
             for d in inputs[0].type.tensor_type.shape.dim]
    if declared and (inputs[0].name != declared.get("name") or len(shape) != len(declared.get("shape", []))
                     or any(isinstance(m, int) and m != s for m, s in zip(declared.get("shape", []), shape))):
        raise ReleaseFileError(f"{model.path}: declares input {inputs[0].name!r} {shape}; the manifest says "
                               f"{declared.get('name')!r} {declared.get('shape')}")
    output = (entry.get("output") or {}).get("name")
    if output and graph.output[0].name != output:
        raise ReleaseFileError(f"{model.path}: its first output is {graph.output[0].name!r}; the manifest says "
                               f"{output!r}")
    labels = read_metadata(model.proto).get("labels")
    if "labels" in entry and labels != list(entry["labels"]):
        diff = next((i for i, (a, b) in enumerate(zip(entry["labels"], labels or [])) if a != b),
                    min(len(entry["labels"]), len(labels or [])))
        raise ReleaseFileError(f"{model.path}: its metadata labels {labels} differ from the manifest's "
                               f"{list(entry['labels'])} (first at index {diff})")


def check_model(model: ModelFile | Path, arch: str, runners: Mapping[str, Runner], cfg: GateConfig,
                cases: Cases, expected: Mapping | None = None, report: ModelReport | None = None) -> ModelReport:
    """Run every stage for one model; ``expected`` is the manifest entry (labels, golden)."""
    if not isinstance(model, ModelFile):
        model = open_model(model)
    report = report or ModelReport(arch=arch, file=model.path.name)
    t_start = time.perf_counter()
    if expected:
        check_against_manifest(model, expected)
    check = ModelCheck(model, runners, cfg, arch)
    try:
        outputs, timings = check.run_all(cases)
        report.timings["runners"] = timings
        t0 = time.perf_counter()
        reference = logmel_reference(cases.waveforms, check.params)
        report.timings["librosa_reference"] = {"seconds": round(time.perf_counter() - t0, 3)}
        report.results += check.judge(cases, outputs, reference)
        report.results += check.determinism_and_invariance(cases, outputs)
        report.results += check.golden(expected.get("golden") if expected else None)
        if "onnxruntime-web-wasm" in runners:  # the shipped JS preprocessing, run by the same node
            report.results += _js_preprocessing(check, runners["onnxruntime-web-wasm"])
        failing = check.case_failures(cases, outputs, reference)
        if failing.any() and cfg.shrink:
            report.counterexamples.append(_shrink(check, cases, failing, cfg))
        if report.failures and cfg.localize:
            report.localization += _localize(check, cases, outputs, reference, report)
        report.timings["total_s"] = round(time.perf_counter() - t_start, 2)
    finally:
        check.close()
    return report


def _js_preprocessing(check: ModelCheck, runner: Runner) -> list[compare.StageResult]:
    import onnxruntime as ort

    from .preprocessing import check_js_preprocessing

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(check.probe), opts, providers=["CPUExecutionProvider"])
    return check_js_preprocessing(runner, session, check.arch, check.meta, check.tolerance("js_preprocessing", None))


def _shrink(check: ModelCheck, cases: Cases, failing: np.ndarray, cfg: GateConfig) -> dict:
    known = {spec: bool(f) for spec, f in zip(cases.specs, failing)}
    for name in check.runners:
        check.activate(name)

    def fails(spec: CaseSpec) -> bool:
        if spec not in known:
            one = Cases.from_specs([spec])
            outs = {name: r.infer(one.waveforms) for name, r in check.runners.items()}
            known[spec] = bool(check.case_failures(one, outs, logmel_reference(one.waveforms, check.params))[0])
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
        path = cfg.counterexample_dir / f"{check.arch}_{minimal.kind}_{minimal.seed}.npy"
        np.save(path, render(minimal))
        entry["saved"] = str(path)
    return entry


def _localize(check: ModelCheck, cases: Cases, outputs, reference, report: ModelReport) -> list[dict]:
    rel = check.tolerance("localization", None)["relative"]
    found = []
    per_case = [r for r in report.failures if r.where.get("case") is not None and r.stage != "labels"
                and not r.stage.startswith("golden")]
    for r in per_case[:1]:
        x = cases.waveforms[r.where["case"]] if r.where["case"] < len(cases.specs) else None
        if x is None:
            continue
        if r.runner not in ("pytorch",) and "onnxruntime-python" in check.runners and r.runner != "onnxruntime-python":
            found.append(first_divergence(check.probe, x, check.runners["onnxruntime-python"],
                                          check.runners[r.runner], rel))
        if "pytorch" in check.runners and r.runner != "pytorch":
            found.append(first_divergence_vs_pytorch(check.probe, x, check.runners[r.runner],
                                                     check.runners["pytorch"].model, rel))
    return found


def verify_release(release_dir: Path, cfg: GateConfig) -> GateReport:
    """Check every model of a release directory against its manifest."""
    t0 = time.perf_counter()
    report = GateReport(release_dir=str(release_dir), config=cfg.to_dict())
    try:
        manifest = Manifest.read(release_dir)
    except ManifestError as exc:
        report.error = str(exc)
        return report
    cases = Cases.from_specs(draw_cases(cfg.examples, cfg.seed))
    runners = make_runners(cfg)
    try:
        for arch, model_entry in manifest.models.items():
            entry = model_entry.raw
            path = Path(release_dir) / model_entry.file
            mr = ModelReport(arch=arch, file=model_entry.file, sha256_expected=model_entry.sha256)
            report.models.append(mr)
            try:
                model = open_model(path, folder=release_dir)
            except ReleaseFileError as exc:
                mr.error = str(exc)
                continue
            mr.sha256_actual = model.sha256
            if not mr.checksum_ok:  # another file than the one released: nothing to run
                continue
            try:
                check_model(model, arch, runners, cfg, cases, expected=entry, report=mr)
            except (RunnerError, ReleaseFileError) as exc:
                mr.error = str(exc)
            report.cases_checked += len(cases.specs)
        report.runners = {name: r.info() for name, r in runners.items()}
    finally:
        for r in runners.values():
            r.deactivate()
    report.wall_s = time.perf_counter() - t0
    return report
