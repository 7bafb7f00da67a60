"""The release gate: wires runners, the judge and the reports together.

- :func:`verify_release`: a release folder (``verify saved_models/``): the manifest, the
  checksums, then :func:`check_model` per model, its contract read from its metadata;
- :func:`verify_model`: one model built anywhere with a declared :class:`ModelContract`
  (``verify model.onnx --contract c.toml [--torch pkg.mod:factory]``);
- :func:`rejudge`: a run saved with ``--save-outputs``, judged again (no runtime runs).

Per model: :func:`collect_model` runs every runner (outputs as data, :class:`ModelRun`),
:func:`parity.judge.judge_model` judges, then failing cases are shrunk and localised.
The build calls :func:`check_model` on its staged files before writing a release.
"""
from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ser_export import tolerances as tolerances_mod
from ser_export.export.metadata import read_metadata
from ser_export.export.model_file import ModelFile, ReleaseFileError, open_model, read_release_file
from ser_export.manifest import Manifest, ManifestError
from ser_export.frontend.reference import features_reference
from ser_export.model_contract import ModelContract

from . import judge
from .cases import CaseSpec, batch_digest, draw_cases, golden_specs, render, shrink_failure
from .localize import first_divergence, first_divergence_vs_export, first_divergence_vs_pytorch
from .probe import write_probe
from .record import (GoldenRun, ModelRun, ParentComparison, PostprocessRecord, RecordError, Subject, load_runs,
                     save_runs)
from .report import GateReport, ModelReport
from .runners import BASELINE, RUNNERS, Runner, RunnerError
from .runners.torch_module import TorchModuleRunner
from .shard import Shard

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
    #: The tolerances (``tolerances.json``'s layout); ``None``: the shipped file.
    tolerances: dict | None = None
    #: Where to save every model's raw outputs for ``--rejudge`` (``None``: not saved).
    save_outputs: Path | None = None
    #: Run only this shard's cases (:mod:`parity.shard`); ``None``: all of them.
    shard: Shard | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.runtimes if r not in RUNNERS]
        if unknown:
            raise ValueError(f"unknown runtimes {unknown}; choose from {sorted(RUNNERS)}")
        if self.examples < 1:
            raise ValueError("examples must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.shard is not None:
            self.shard.bounds(self.examples, self.batch_size)  # more shards than batches: refused here

    @property
    def runs_once_per_model(self) -> bool:
        """Whether this run makes the once-per-model checks (unsharded, or shard 1)."""
        return self.shard is None or self.shard.runs_once_per_model

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["counterexample_dir"] = str(self.counterexample_dir) if self.counterexample_dir else None
        d["save_outputs"] = str(self.save_outputs) if self.save_outputs else None
        d["runtimes"] = list(self.runtimes)
        d["shard"] = self.shard.to_dict() if self.shard else None
        return d

    def draw(self) -> list[CaseSpec]:
        """The cases this run checks: the seed's ``examples`` cases, or this shard's block of them."""
        specs = draw_cases(self.examples, self.seed)
        if self.shard is None:
            return specs
        start, stop = self.shard.bounds(len(specs), self.batch_size)
        return specs[start:stop]


@dataclasses.dataclass
class Cases:
    specs: list[CaseSpec]
    waveforms: np.ndarray          # (n, N) float32
    labels: list[str]
    normalised: np.ndarray         # (n,) bool
    _references: dict = dataclasses.field(default_factory=dict, repr=False)

    def reference(self, mut: "ModelUnderTest") -> np.ndarray | None:
        """The librosa reference of these cases for ``mut``'s front-end (computed once per front-end:
        both of our models share it)."""
        fe = mut.contract.outputs.frontend if mut.contract.outputs.features else None
        if fe is None:
            return None
        if fe not in self._references:
            self._references[fe] = mut.reference(self.waveforms)
        return self._references[fe]

    @classmethod
    def from_specs(cls, specs: Sequence[CaseSpec], sample_rate: int | None = None, n_samples: int | None = None,
                   rms: float = 1.0, all_in_contract: bool = False) -> "Cases":
        """Render ``specs`` (at our models' rate and length unless given); ``all_in_contract``: the
        model takes any waveform (no normalisation), so every case is checked end to end."""
        kw = {} if sample_rate is None else {"sample_rate": sample_rate, "n_samples": n_samples, "rms": rms}
        return cls(list(specs), np.stack([render(s, **kw) for s in specs]), [s.label() for s in specs],
                   np.asarray([all_in_contract or s.normalised for s in specs], dtype=bool))


def make_runners(cfg: GateConfig) -> dict[str, Runner]:
    out = {}
    for name in cfg.runtimes:
        if name not in RUNNERS:
            raise RunnerError(f"unknown runtime {name!r}")
        factory = RUNNERS[name]
        kwargs = {"threads": cfg.threads}
        if name != "pytorch" and name != "onnxruntime-python":
            kwargs["timeout_s"] = cfg.timeout_s
        out[name] = factory(**kwargs)
    return out


class ModelUnderTest:
    """One model made ready for the runners: its contract, subject and a probe copy.

    Our releases' contract comes from their metadata; any other model's from
    ``--contract``.  Every runner (PyTorch too) reads the self-contained probe copy
    written from the already-checked model, never the model's folder.
    """

    def __init__(self, model: ModelFile, arch: str, contract: ModelContract | None = None):
        self.path = model.path
        self.arch = arch
        self.meta = read_metadata(model.proto)
        graph = model.proto.graph
        if contract is None:  # one of ours: the contract is in the metadata
            initializers = {t.name for t in graph.initializer}
            inp = next((i for i in graph.input if i.name not in initializers), None)
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "batch")
                     for d in inp.type.tensor_type.shape.dim] if inp is not None else []
            try:
                contract = ModelContract.from_metadata(self.meta, inp.name if inp is not None else "", shape,
                                                       graph.output[0].name)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ReleaseFileError(f"{self.path}: metadata is not a ser_export model's ({exc})") from None
            if not contract.outputs.features:
                raise ReleaseFileError(f"{self.path}: metadata has no 'features_output' (rebuild with ser_export)")
        self.contract = contract
        check_model_matches_contract(model, contract)
        out = contract.outputs
        fe = out.frontend
        self.subject = Subject(arch, model.path.name, out.logits, out.features,
                               tuple(out.labels) if out.labels else None,
                               floor=fe.log.floor() if fe else 0.0, unit=fe.log.unit if fe else "")
        self._tmp = tempfile.TemporaryDirectory(prefix="ser_export_parity_")
        self.probe = write_probe(model.proto, Path(self._tmp.name) / "probe.onnx",
                                 [out.features] if out.features else [])
        self.outputs = [out.logits] + ([out.features] if out.features else [])

    def cases(self, specs: Sequence[CaseSpec]) -> Cases:
        """``specs`` rendered as the contract's input wants them (rate, length, normalisation)."""
        inp = self.contract.input
        norm = inp.normalization
        return Cases.from_specs(specs, inp.sample_rate, inp.n_samples,
                                rms=norm.target_rms if norm.kind == "rms" else 0.1,
                                all_in_contract=norm.kind == "none")

    def inputs(self, waveforms: np.ndarray) -> np.ndarray:
        """What the model is fed: the waveforms, or the features the contract's input front-end makes of them."""
        inp = self.contract.input
        if inp.kind == "features":
            return features_reference(waveforms, inp.frontend).astype(np.float32)
        return waveforms

    def reference(self, waveforms: np.ndarray) -> np.ndarray | None:
        fe = self.contract.outputs.frontend
        return features_reference(waveforms, fe) if self.contract.outputs.features else None

    def close(self) -> None:
        self._tmp.cleanup()


def check_model_matches_contract(model: ModelFile, contract: ModelContract) -> None:
    """Refuse a model whose graph does not have the contract's input and outputs (exit 2, naming both)."""
    graph = model.proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or inputs[0].name != contract.input.name:
        raise ReleaseFileError(f"{model.path}: has inputs {[i.name for i in inputs]}; the contract declares one, "
                               f"{contract.input.name!r}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    want = list(contract.input.shape)
    if dims and (len(dims) != len(want) or any(isinstance(w, int) and d is not None and d != w
                                               for d, w in zip(dims, want))):
        raise ReleaseFileError(f"{model.path}: input {contract.input.name!r} has shape "
                               f"{['?' if d is None else d for d in dims]}; the contract declares {want}")
    produced = {o for n in graph.node for o in n.output} | {o.name for o in graph.output}
    for what, name in (("logits", contract.outputs.logits), ("features", contract.outputs.features)):
        if name and name not in produced:
            raise ReleaseFileError(f"{model.path}: has no tensor {name!r} (the contract's {what} output)")


def baseline_of(runners: Mapping[str, Runner]) -> str | None:
    """The runner every other is compared with: PyTorch when it runs, else onnxruntime-python."""
    return next((n for n in (BASELINE, "onnxruntime-python") if n in runners), None)


def collect_model(mut: ModelUnderTest, runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases,
                  golden: Mapping | None = None, extra_runs: bool = True) -> ModelRun:
    """Run every runner on ``cases`` and, with ``extra_runs``, the post-processing on them; in an
    unsharded run or shard 1 (``cfg.runs_once_per_model``) also the determinism, batch-invariance,
    golden and preprocessing runs.  No judging here."""
    run = ModelRun(mut.subject, list(cases.labels), cases.normalised, {}, baseline=baseline_of(runners))
    x = mut.inputs(cases.waveforms)
    for name, runner in runners.items():
        runner.activate(mut.probe, mut.outputs)
        res = runner.run(x, cfg.batch_size)
        run.outputs[name] = res.outputs
        run.runner_info[name] = res.info
        run.timings[name] = {"seconds": res.seconds, "ms_per_case": res.ms_per_case}
    t0 = time.perf_counter()
    run.reference = cases.reference(mut)
    run.timings["librosa_reference"] = {"seconds": round(time.perf_counter() - t0, 3)}
    if not extra_runs:
        return run
    if not cfg.runs_once_per_model:
        _collect_postprocessing(mut, runners, x, run)
        return run
    first = x[: min(cfg.batch_size, len(cases.specs))]  # the run's first batch (shard 1 starts with it)
    run.batch_n = int(first.shape[0])
    k = min(cfg.invariance_cases, run.batch_n)
    golden_cases = None
    if golden:
        golden_cases = Cases.from_specs(golden_specs(golden["n"], golden["seed"]))
        if batch_digest(golden_cases.waveforms) != golden["input_sha256"]:
            raise RunnerError("the golden inputs regenerated here differ from those the build used "
                              "(synthesis or numpy changed); rebuild the release")
        run.golden = GoldenRun(dict(golden), list(golden_cases.labels), {})
    for name, runner in runners.items():
        runner.activate(mut.probe, mut.outputs)
        run.repeat[name] = runner.infer(first)
        alone = [runner.infer(x[i:i + 1]) for i in range(k)]
        run.alone[name] = {key: np.concatenate([a[key] for a in alone]) for key in mut.outputs}
        if golden_cases is not None:
            run.golden.outputs[name] = runner.infer(golden_cases.waveforms)[mut.subject.logits_name]
    engines: dict[str, tuple[str, Runner]] = {}
    for n, r in runners.items():  # the same JS engine gives the same windows: once per engine
        if "preprocess" in r.capabilities:
            engines.setdefault(r.js_engine or n, (n, r))
    preprocessing = dict(engines.values())
    inp = mut.contract.input
    if preprocessing and inp.kind == "waveform" and inp.normalization.kind == "rms":
        import onnxruntime as ort

        from .preprocessing import collect_preprocessing

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = cfg.threads
        session = ort.InferenceSession(str(mut.probe), opts, providers=["CPUExecutionProvider"])
        norm = inp.normalization
        run.preprocessing = collect_preprocessing(preprocessing, session, {
            "sample_rate": inp.sample_rate, "input_length": inp.n_samples,
            "normalization": {"rms_level_db": norm.rms_level_db, "min_rms": norm.min_rms}})
    _collect_postprocessing(mut, runners, x, run)
    return run


def _collect_postprocessing(mut: "ModelUnderTest", runners: Mapping[str, Runner], x: np.ndarray,
                            run: ModelRun) -> None:
    posters = {n: r for n, r in runners.items() if "postprocess" in r.capabilities}  # each: its own onnxruntime
    if posters and "postprocessing" in mut.meta and mut.subject.features_name:
        run.postprocessing = collect_postprocessing(mut, posters, x, run.outputs[run.baseline or next(iter(runners))])


def collect_postprocessing(mut: "ModelUnderTest", runners: Mapping[str, Runner], x: np.ndarray,
                           outputs: Mapping[str, np.ndarray]) -> dict[str, PostprocessRecord]:
    """The cases through Python's post-processing and each runner's JS one, from the same logits and
    log-mel (the baseline's), on every runner that has it.  The Silero file is the release's (beside the model,
    its checksum the metadata's) or the silero-vad package's."""
    from ser_export.errors import SerExportError
    from ser_export.postprocess import decide, postprocessing_of
    from ser_export.vad import VoiceActivity

    try:
        pp = postprocessing_of(mut.meta)
        vad = VoiceActivity(pp.vad, near=mut.path)  # the release's copy if it is the one named, else the wheel's
    except SerExportError as exc:
        raise RunnerError(f"{mut.arch}: post-processing: {exc}") from None
    sr = mut.contract.input.sample_rate
    logits, logmel = outputs[mut.subject.logits_name], outputs[mut.subject.features_name]
    frames = vad.frame_probabilities(x, sr)
    py = decide(frames, logits, logmel, pp)
    out = {}
    for name, runner in runners.items():
        js = runner.postprocess(x, logits, logmel, sr, pp.to_dict(), vad.path)
        out[name] = PostprocessRecord(
            js_frames=np.asarray(js["frames"], np.float32), py_frames=frames,
            js_probabilities=np.asarray(js["probabilities"], np.float64), py_probabilities=py.probabilities,
            js_ood=np.asarray(js["oodScore"], np.float64), py_ood=py.ood_score,
            js_speech=np.asarray(js["speech"], bool), py_speech=py.speech,
            js_uncertain=np.asarray(js["uncertain"], bool), py_uncertain=py.uncertain,
            vad_threshold=pp.vad.threshold, ood_threshold=pp.ood.threshold,
            min_probability=pp.confidence.min_probability, js_ms=float(js.get("ms", 0.0)))
    return out


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
    declared_pp = entry.get("postprocessing")
    if declared_pp:
        raw = read_metadata(model.proto).get("postprocessing")
        if not isinstance(raw, dict):
            raise ReleaseFileError(f"{model.path}: the manifest declares post-processing; its metadata has none")
        for key in ("temperature",):
            if raw.get(key) != declared_pp.get(key):
                raise ReleaseFileError(f"{model.path}: its metadata post-processing {key} {raw.get(key)!r} differs "
                                       f"from the manifest's {declared_pp.get(key)!r}")
        if (raw.get("vad") or {}).get("sha256") != declared_pp["vad"]["sha256"]:
            raise ReleaseFileError(f"{model.path}: its metadata names another voice-activity model than the "
                                   f"manifest (sha256 {str((raw.get('vad') or {}).get('sha256'))[:12]}...)")


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
        _run_and_judge(mut, runners, cfg, cases, report, expected.get("golden") if expected else None)
        report.timings["total_s"] = round(time.perf_counter() - t_start, 2)
    finally:
        mut.close()
    return report


def _run_and_judge(mut: ModelUnderTest, runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases,
                   report: ModelReport, golden: Mapping | None = None,
                   parent: ParentComparison | None = None, skipped: Mapping[str, str] | None = None) -> None:
    """Collect, judge, then shrink the failing cases and localise the first failure, into ``report``.
    ``parent``: a variant's comparison with its float parent; ``skipped``: runtimes not run, and why."""
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


def check_variant(model: ModelFile, arch: str, name: str, declared: Mapping, parent: ModelFile, parent_entry: Mapping,
                  runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases, heldout: HeldOut,
                  report: ModelReport, parent_logits: dict | None = None) -> ModelReport:
    """A reduced-precision variant: against itself across the runtimes that run its declared backends (the
    default tolerances, onnxruntime-python the baseline), and against its float ``parent`` under its tolerance
    class on the gate's cases and the held-out clips.

    ``parent_logits``: one dict per parent, shared by its variants; the parent's logits on the cases and the
    held-out clips are computed into it once."""
    import json

    from ser_export.export.variants import METADATA_KEY

    t_start = time.perf_counter()
    check_against_manifest(model, parent_entry)
    meta = read_metadata(model.proto).get(METADATA_KEY)
    try:
        info = json.loads(meta) if isinstance(meta, str) else None
    except json.JSONDecodeError:
        info = None
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
        _run_and_judge(mut, sub, cfg, cases, report, None, comparison, skipped)
    finally:
        mut.close()
    report.timings["total_s"] = round(time.perf_counter() - t_start, 2)
    return report


def _unchecked_variants(arch: str, entry: Mapping, why: str) -> list[ModelReport]:
    """A row per variant of a parent the gate could not check (its verdict is the parent's)."""
    out = []
    for name, v in (entry.get("variants") or {}).items():
        vr = ModelReport(arch=f"{arch}.{name}", file=v["file"], sha256_expected=v["sha256"])
        vr.results.append(judge.not_applicable(vr.arch, "vs_parent", "-", f"not checked: {why}"))
        out.append(vr)
    return out


def verify_release(release_dir: Path, cfg: GateConfig) -> GateReport:
    """Check every model of a release directory against its manifest."""
    t0 = time.perf_counter()
    report = GateReport(release_dir=str(release_dir), config=cfg.to_dict())
    try:
        manifest = Manifest.read(release_dir)
    except ManifestError as exc:
        report.error = str(exc)
        return report
    cases = Cases.from_specs(cfg.draw())
    runners = make_runners(cfg)
    heldout: HeldOut | None = None
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
                report.models += _unchecked_variants(arch, entry, "its parent cannot be read")
                continue
            mr.sha256_actual = model.sha256
            if not mr.checksum_ok:  # another file than the one released: nothing to run
                report.models += _unchecked_variants(arch, entry, "its parent is not the file the manifest names")
                continue
            try:
                check_model(model, arch, runners, cfg, cases, expected=entry, report=mr)
            except (RunnerError, ReleaseFileError) as exc:
                mr.error = str(exc)
            report.cases_checked += len(cases.specs)
            parent_logits: dict = {}
            for name, declared in (entry.get("variants") or {}).items():
                if heldout is None:
                    heldout = HeldOut.of(manifest) if cfg.runs_once_per_model else HeldOut(
                        None, None, f"the held-out clips are judged in shard 1/{cfg.shard.count}")
                    if "onnxruntime-python" not in runners:
                        runners["onnxruntime-python"] = make_runners(dataclasses.replace(
                            cfg, runtimes=("onnxruntime-python",)))["onnxruntime-python"]
                vr = ModelReport(arch=f"{arch}.{name}", file=declared["file"], sha256_expected=declared["sha256"])
                report.models.append(vr)
                try:
                    variant = open_model(Path(release_dir) / declared["file"], folder=release_dir)
                    vr.sha256_actual = variant.sha256
                    if not vr.checksum_ok:
                        continue
                    check_variant(variant, arch, name, declared, model, entry, runners, cfg, cases, heldout, vr,
                                  parent_logits)
                except (RunnerError, ReleaseFileError) as exc:
                    vr.error = str(exc)
                report.cases_checked += len(cases.specs)
        vad = manifest.raw.get("vad")
        if vad is not None:  # the voice-activity model the release ships (the demo page loads it)
            mr = ModelReport(arch="silero-vad", file=vad["file"], sha256_expected=vad["sha256"], kind="file")
            try:
                data = read_release_file(Path(release_dir) / vad["file"], release_dir)
                mr.sha256_actual = hashlib.sha256(data).hexdigest()
            except ReleaseFileError as exc:
                mr.error = str(exc)
            report.models.append(mr)
        report.runners = {name: r.info() for name, r in runners.items()}
    finally:
        _finish(report, runners, cfg, t0)
    return report


def _finish(report: GateReport, runners: Mapping[str, Runner], cfg: GateConfig, t0: float) -> None:
    """Stop every runner, save the outputs if asked, and time the whole run."""
    for r in runners.values():
        r.deactivate()
    _save(report, cfg, cfg.tolerances)
    report.wall_s = time.perf_counter() - t0


def _save(report: GateReport, cfg: GateConfig, tolerances: Mapping | None) -> None:
    """``--save-outputs``: every model's run, and the tolerances it was judged under (for ``--rejudge``)."""
    if not cfg.save_outputs:
        return
    runs = {m.arch: m.run for m in report.models if m.run is not None}
    save_runs(Path(cfg.save_outputs), runs, {
        "release_dir": report.release_dir, "config": cfg.to_dict() | {"tolerances": None},
        "tolerances": dict(tolerances) if tolerances is not None else tolerances_mod.load(),
        "files": {m.arch: {"file": m.file, "sha256_expected": m.sha256_expected, "kind": m.kind,
                           "sha256_actual": m.sha256_actual, "error": m.error} for m in report.models},
        "runners": report.runners, "cases_checked": report.cases_checked})


def rejudge(folder: Path, overrides: Path | Mapping | None = None) -> GateReport:
    """Judge a run saved with ``verify --save-outputs`` again; runs nothing.

    The run is judged under the tolerances it was saved with (a contract's own included),
    with ``overrides`` (a ``--tolerances`` file, or its parsed contents) laid over them.
    Checksums and could-not-check errors are carried over as recorded; shrinking and
    localisation need the runtimes and are not redone.
    """
    t0 = time.perf_counter()
    report = GateReport(release_dir=str(folder), config={"rejudged": str(folder)})
    try:
        runs, index = load_runs(Path(folder))
        tolerances = saved_tolerances(index, Path(folder) / "index.json", overrides)
    except (RecordError, ValueError) as exc:
        report.error = str(exc)
        return report
    report.runners = index.get("runners", {}) if isinstance(index.get("runners"), dict) else {}
    report.config = {"rejudged": str(folder), "original": index.get("config")}
    files = index.get("files") if isinstance(index.get("files"), dict) else {}
    report.models = judge_saved(runs, files, tolerances, Path(folder))
    report.cases_checked = sum(run.n_cases for run in runs.values())
    report.wall_s = time.perf_counter() - t0
    return report


def saved_tolerances(index: Mapping, where: Path, overrides: Path | Mapping | None = None) -> dict:
    """The tolerances a saved run was judged under (its index's), checked, with ``overrides`` (a ``--tolerances``
    file, or its parsed contents) laid over them; :class:`RecordError` naming ``where`` if the saved ones are bad."""
    try:
        saved = tolerances_mod.apply_overrides(index.get("tolerances") or {}, None, f"{where}: tolerances")
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    if isinstance(overrides, (str, Path)):
        return tolerances_mod.load_overrides(overrides, saved)
    return tolerances_mod.apply_overrides(overrides or {}, saved, "tolerances")


def judge_saved(runs: Mapping[str, ModelRun], files: Mapping, tolerances: Mapping, where: Path) -> list[ModelReport]:
    """A report per model of saved runs (``verify --rejudge``, ``merge-reports``), judged under ``tolerances``.

    ``files``: the saved index's ``files`` (each model's file, checksums, kind and could-not-check error);
    a model without a run (it could not be run, or is checked by checksum only) keeps the verdict recorded.
    """
    models = []
    for arch, run in runs.items():
        f = files.get(arch) if isinstance(files.get(arch), dict) else {}
        mr = ModelReport(arch=arch, file=run.subject.file, sha256_expected=f.get("sha256_expected"),
                         sha256_actual=f.get("sha256_actual"), error=f.get("error"))
        mr.timings["runners"] = {n: run.timings[n] for n in run.outputs if n in run.timings}
        try:
            mr.results = judge.judge_model(run, tolerances)
        except (KeyError, ValueError) as exc:
            mr.error = f"{where / (arch + '.json')}: cannot be judged ({exc})"
        models.append(mr)
    for arch, f in files.items():  # models that could not be run have no saved outputs
        if arch in runs or not isinstance(f, dict):
            continue
        if f.get("kind") == "file":  # checked by checksum only: the verdict as recorded
            models.append(ModelReport(arch=arch, file=str(f.get("file")), kind="file",
                                      sha256_expected=f.get("sha256_expected"),
                                      sha256_actual=f.get("sha256_actual"), error=f.get("error")))
        else:
            models.append(ModelReport(arch=arch, file=str(f.get("file")), error=f.get("error") or
                                      "no saved outputs"))
    return models


#: The onnxruntime-web backend each runner exercises (the operator lint's columns); others have none.
RUNNER_BACKENDS = {"onnxruntime-web-wasm": "wasm", "chromium-wasm": "wasm", "chromium-webgl": "webgl",
                   "chromium-webgpu": "webgpu"}


def verify_model(model_path: Path, contract: ModelContract, cfg: GateConfig, torch_factory: str | None = None,
                 torch_weights: Path | None = None) -> GateReport:
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
    if torch_factory:
        names = tuple(n for n in (contract.outputs.logits, contract.outputs.features) if n)
        runners["pytorch"] = TorchModuleRunner(torch_factory, torch_weights, names, threads=cfg.threads)
    runners |= make_runners(dataclasses.replace(cfg, runtimes=tuple(wanted)))
    cases = None
    try:
        mut = ModelUnderTest(model, arch, contract)
        try:
            cases = mut.cases(cfg.draw())
            _run_and_judge(mut, runners, cfg, cases, mr)
            mr.results += _not_applicable(arch, contract, mr.run)
        finally:
            mut.close()
        report.cases_checked = len(cases.specs)
        report.runners = {name: r.info() for name, r in runners.items()}
    except (RunnerError, ReleaseFileError) as exc:
        mr.error = str(exc)
    finally:
        _finish(report, runners, cfg, t0)
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
