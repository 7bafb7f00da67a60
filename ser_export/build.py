"""``python -m ser_export build``: data -> features -> train -> export -> lint -> check -> release."""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import contract, tolerances
from .contract import FrontEnd
from .data import synthetic
from .data.corpora import ScanReport, Utterance
from .data.dataset import AugmentConfig, Dataset, build_dataset, describe_utterances
from .data.gather import GatheredData, gather_data
from .data.split import check_split, split_speakers
from .errors import SerExportError
from .export.lint import lint_model, require_compatible
from .export.metadata import build_metadata
from .export.model_card import render_model_card
from .export.onnx_export import export_onnx, serialize, set_metadata
from .export.recover import require_recoverable
from .export.calibrate import calibration_of
from .export.variants import CALIBRATED, INT8S_SPEC, METHOD, PRECISION, VARIANTS, MadeVariant, make_variants
from .export.optables import BACKENDS, load_tables
from parity.golden import golden_record
from parity.heldout import check_heldout
from parity.release import judge_variants, run_release_gate

from .export.release import MODEL_CARD, ReleaseWriter, read_manifest
from .io import atomic_write_bytes, sha256_file
from . import numenv
from .distributed import Distributed
from . import manifest as layout
from .manifest import MANIFEST, Manifest, same_but_timings, with_timings_of
from .toolchain import library_versions, package_version
from .models import ARCHITECTURES
from .plots import plot_confusion, plot_history
from .train import PROFILES, TrainResult, checkpoint, train_model
from .uncertainty import Evaluation, evaluate
from .vad import VAD_FILE, VadParams, VoiceActivity, packaged_vad_path
from .vad_release import vad_record
from .data.ood import ood_clips
from .plots import plot_reliability

#: Parity cases per model checked before a release is written, per profile.
VERIFY_EXAMPLES = {"default": 48, "quick": 8}

#: Synthetic corpus size per profile.
CORPUS_PROFILES = {
    "default": synthetic.SyntheticCorpusSpec(n_speakers=12, takes=16),
    "quick": synthetic.SyntheticCorpusSpec(n_speakers=6, takes=3),
}


@dataclasses.dataclass
class BuildOptions:
    out_dir: Path = Path("saved_models")
    archs: tuple[str, ...] = ("alexnet", "resnet18")
    profile: str = "default"
    seed: int = 0
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    label_set: str = contract.DEFAULT_LABEL_SET
    opset: int = contract.DEFAULT_OPSET
    pad_mode: str = "constant"
    frontend: str = "fft"
    backends: tuple[str, ...] = BACKENDS
    verify_examples: int | None = None  # parity cases per model before release (None: the profile's)
    verify_runtimes: tuple[str, ...] | None = None  # None: all
    variants: tuple[str, ...] = VARIANTS  # reduced-precision variants made of each model
    augment_copies: int = 1
    workers: int = 2
    cache_dir: Path | None = Path(".ser_export_cache")
    progress: bool = True
    #: Write a release although the installed toolchain is not ``constraints/release.txt``'s (recorded in the
    #: manifest's ``build.unpinned``).
    allow_unpinned: bool = False

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise SerExportError(f"unknown profile {self.profile!r}; choose one of {sorted(PROFILES)}")
        bad = [a for a in self.archs if a not in ARCHITECTURES]
        if bad or not self.archs:
            raise SerExportError(f"unknown architectures {bad}; choose from {sorted(ARCHITECTURES)}")
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise SerExportError(f"unknown backends {bad}; choose from {list(BACKENDS)}")
        from parity.runners import RUNNERS

        bad = [r for r in self.verify_runtimes or () if r not in RUNNERS]
        if bad:
            raise SerExportError(f"--verify-runtimes: unknown runtimes {bad}; choose from {sorted(RUNNERS)}")
        contract.labels_for(self.label_set)
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise SerExportError(f"unknown variants {bad}; choose from {list(VARIANTS)}")


#: OOD evaluation clips per family, per profile.
OOD_PER_FAMILY = {"default": 8, "quick": 4}


def describe_evaluation(r: dict) -> str:
    """One line of the figures the issue's targets are about."""
    h, ns = r["held_out_test"], r["ood_set"]["non_speech"]
    return (f"temperature {r['temperature']:.3f}; ECE {r['ece_test']['before']:.3f} -> {r['ece_test']['after']:.3f}; "
            f"held-out: speech {100 * h['speech_rate']:.1f} %, uncertain {100 * h['uncertain_rate_of_speech']:.1f} %, "
            f"accuracy on classified {100 * h['accuracy_classified']:.1f} % (all {100 * h['accuracy_all']:.1f} %); "
            f"non-speech: no speech or uncertain {100 * ns['no_speech_or_uncertain_rate']:.1f} %, confident emotion "
            f"{100 * ns['confident_emotion_rate']:.1f} %; OOD AUROC "
            f"{r['ood_auroc']['held_out_vs'][r['ood_auroc']['chosen']]['all']:.3f}")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def variant_calibration(dataset: Dataset, variants: Sequence[str]) -> np.ndarray | None:
    """The calibration clips of the calibrated variants among ``variants`` (``None`` when there is none): the
    training split's clips (:func:`ser_export.export.calibrate.calibration_of`)."""
    if not any(v in CALIBRATED for v in variants):
        return None
    return calibration_of(dataset, INT8S_SPEC)


def stage_variants(arch: str, made: Mapping[str, MadeVariant], vs_parent: Mapping[str, Mapping], writer) -> tuple:
    """Each variant ``made`` of one model staged in ``writer`` (a :class:`ReleaseWriter`) with its manifest record:
    ``(name -> VariantRecord, name -> (staged path, record dict))``; the build and the variants step both use it."""
    records, staged = {}, {}
    for name, v in made.items():
        _log_variant(arch, v, vs_parent[name])
        records[name] = layout.VariantRecord(
            file=v.file, bytes=len(v.blob), parent_sha256=v.parent_sha256, tolerance_class=v.tolerance_class,
            precision=PRECISION[name], method=METHOD[name], ops=v.lint.ops, backends=v.lint.backends_dict(),
            declared_backends=list(v.declared_backends), vs_parent=vs_parent[name], sha256=writer.add(v.file, v.blob))
        staged[name] = (writer.staged_path(v.file), records[name].to_dict())
    return records, staged


def _log_variant(arch: str, v: MadeVariant, vs_parent: Mapping) -> None:
    held = vs_parent.get("heldout")
    _log(f"{arch}: {v.name} variant {len(v.blob) / 1e6:.2f} MB, declares {', '.join(v.declared_backends)}"
         + (f"; held-out top-1 agreement {100 * held['top1_agreement']:.1f} %, accuracy "
            f"{100 * held['accuracy']:.1f} % (parent {100 * held['parent_accuracy']:.1f} %)" if held else ""))


def _drop_skipped(utterances: list[Utterance], skipped: Mapping[str, tuple[str, str]],
                  reports: Mapping[str, ScanReport]) -> list[Utterance]:
    """Record the files the feature stage found unusable in their corpus's report; the rest."""
    kept = []
    for u in utterances:
        if u.source not in skipped:
            kept.append(u)
            continue
        report = reports[u.corpus]
        report.skip(Path(u.source).relative_to(report.root).as_posix(), *skipped[u.source])
        report.used -= 1
        _log(f"{u.corpus}: skipped {u.source}: {': '.join(skipped[u.source])}")
    return kept


def _plots(result: TrainResult, arch: str, labels: Sequence[str], ev: Evaluation) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        conf, curves, rel = Path(tmp) / "c.png", Path(tmp) / "h.png", Path(tmp) / "r.png"
        acc = result.test_report["accuracy"]
        plot_confusion(np.asarray(result.test_report["confusion_matrix"]), labels,
                       f"{arch}: held-out test speakers (accuracy {100 * acc:.1f} %)", conf)
        plot_history(result.history, result.best_epoch, f"{arch}: training on cached log-mel features", curves)
        plot_reliability(ev.ece_before, ev.ece_after, f"{arch}: reliability on the held-out test speakers "
                         f"(temperature {ev.postprocessing.temperature:.3f})", rel)
        return {"confusion": conf.read_bytes(), "curves": curves.read_bytes(), "reliability": rel.read_bytes()}


def _unpinned(allow: bool) -> list[str]:
    """How the installed toolchain differs from ``constraints/release.txt`` (empty: pinned).  Any difference, or
    pins that cannot be read, is a :class:`SerExportError` unless ``allow`` (``--allow-unpinned``)."""
    from . import toolchain

    try:
        unpinned = toolchain.differences()
    except SerExportError as exc:
        if not allow:
            raise
        return [f"the pins cannot be checked: {exc}"]
    if unpinned and not allow:
        raise SerExportError(f"the installed toolchain is not the pinned one ({'; '.join(unpinned)}): install with "
                             f"`pip install -c constraints/release.txt -e .`, or pass --allow-unpinned (the "
                             f"manifest then records it)")
    return unpinned


def _train_config(opts: BuildOptions, arch: str):
    """The profile's training settings for ``arch``, with the build's seed."""
    return dataclasses.replace(PROFILES[opts.profile][arch], seed=opts.seed)


def incomparable_out_dir(out_dir: Path, reason: str) -> Path:
    """Where a build whose bytes are not comparable (this machine cannot meet the declared numeric
    environment: ``reason``) writes: ``out_dir``, unless it holds a release built under that environment,
    which is kept; the build then writes beside it, in ``<out_dir>-incomparable``."""
    try:
        previous = read_manifest(out_dir, missing_ok=True)
    except (OSError, ValueError):
        previous = None
    kept = bool(previous) and (previous.get("build") or {}).get("numeric_env", {}).get("comparable") is True
    target = out_dir.with_name(out_dir.name + "-incomparable") if kept else out_dir
    _log(f"warning: {reason}: this build's bytes are not comparable with other machines' (the manifest records "
         f"it)" + (f"; {out_dir} was built under the declared environment and is kept: writing to {target}"
                   if kept else ""))
    return target


@dataclasses.dataclass
class BuildData:
    """The build's data: the utterances gathered, their speaker split, the VAD and the features per split."""

    gathered: GatheredData
    assignment: dict[str, str]
    vad: VoiceActivity
    vad_path: Path
    dataset: Dataset


def build_data(opts: BuildOptions, labels: Sequence[str], frontend: FrontEnd,
               dist: Distributed | None = None) -> BuildData:
    """Gather ``opts``'s data, split it by speaker and build (or read from the cache) its features: the one data
    stage of :func:`run_build` and of the variant step that remakes a release's variants
    (:mod:`ser_export.variants_step`), so both calibrate on the same training clips.

    ``dist`` (``torchrun``): rank 0 fills the feature cache while the others wait, then they read it."""
    dist = dist or Distributed()
    gathered = gather_data(opts.data, labels, opts.label_set,
                           dataclasses.replace(CORPUS_PROFILES[opts.profile], labels=labels, seed=opts.seed),
                           progress=opts.progress, log=_log)
    utterances, speakers, data_desc = gathered.utterances, gathered.speakers, gathered.description
    assignment = split_speakers(utterances, seed=opts.seed)
    check_split(utterances, assignment, labels)
    vad_path = packaged_vad_path()
    vad = VoiceActivity(VadParams(sha256=sha256_file(vad_path)), path=vad_path)
    aug = AugmentConfig(copies=opts.augment_copies)
    data_desc["augmentation"] = (f"{aug.copies} copy per clip, each of {', '.join(aug.names)} "
                                 f"with probability {aug.probability}") if aug.copies else "none"
    if dist.is_main:
        _log(f"data: {len(utterances)} utterances; building features ...")
    if not dist.is_main:  # rank 0 fills the feature cache first; the others then read it
        dist.barrier()
    dataset: Dataset = build_dataset(
        utterances, assignment, labels, frontend, speakers=speakers, augment_config=aug, seed=opts.seed,
        cache_dir=opts.cache_dir / "features" if opts.cache_dir else None, workers=opts.workers,
        progress=opts.progress and dist.is_main, description=data_desc, vad=vad)
    if dist.is_main:
        dist.barrier()
    return BuildData(gathered, assignment, vad, vad_path, dataset)


def run_build(opts: BuildOptions, dist: Distributed | None = None) -> dict | None:
    """Run the whole build; returns the manifest written to ``opts.out_dir``.

    ``dist`` (``torchrun``): rank 0 builds the feature cache while the others wait, every process
    trains (DistributedDataParallel), and only rank 0 evaluates, exports, gates and writes the
    release; the others return ``None`` once the models are trained.
    """
    dist = dist or Distributed()
    t_start = time.perf_counter()
    from .jsenv import harness_installed, setup_harness

    numenv.activate()
    numeric_env = numenv.record()
    numeric_env_per_rank = dist.gather_objects(numeric_env)
    unpinned = _unpinned(opts.allow_unpinned)
    if unpinned:
        _log(f"warning: building with an unpinned toolchain ({'; '.join(unpinned)}); the manifest records it")
    if dist.is_main and not harness_installed():
        setup_harness()
    tables = load_tables()
    labels = contract.labels_for(opts.label_set)
    frontend = FrontEnd(pad_mode=opts.pad_mode, implementation=opts.frontend)

    t0 = time.perf_counter()
    data = build_data(opts, labels, frontend, dist)
    utterances, data_desc, reports = data.gathered.utterances, data.gathered.description, data.gathered.reports
    assignment, vad, dataset, vad_path = data.assignment, data.vad, data.dataset, data.vad_path
    ood_set = ood_clips(per_family=OOD_PER_FAMILY[opts.profile], seed=opts.seed)
    if not dist.is_main:
        for arch in opts.archs:  # train with the others; rank 0 writes the release
            train_model(arch, dataset, _train_config(opts, arch), frontend=frontend, progress=False, log=False,
                        dist=dist)
        return None
    utterances = _drop_skipped(utterances, dataset.skipped, reports)
    missing = check_split(utterances, assignment, labels)
    if missing:
        _log(f"warning: no clips of {', '.join(missing)} in the data: the model is trained without them and "
             f"will (almost) never predict them")
    data_desc["labels_without_data"] = list(missing)
    data_desc["corpora"] = describe_utterances(utterances, assignment, reports)
    _log(f"features: {', '.join(f'{s} {len(f)}' for s, f in dataset.splits.items())} clips "
         f"({'cache hit' if dataset.cache_hit else f'{time.perf_counter() - t0:.0f} s'})")

    models: dict[str, layout.ModelRecord] = {}
    timings: dict[str, float] = {}
    staged: dict[str, Path] = {}
    staged_variants: dict[str, dict[str, tuple[Path, dict]]] = {}
    variant_records: dict[str, dict[str, layout.VariantRecord]] = {}
    golden: dict[str, dict] = {}
    if not numeric_env["comparable"]:  # said once the data is known to be usable, before anything is written
        opts = dataclasses.replace(opts, out_dir=incomparable_out_dir(opts.out_dir, numeric_env["reason"]))
    with ReleaseWriter(opts.out_dir) as writer:
        for arch in opts.archs:
            config = _train_config(opts, arch)
            t0 = time.perf_counter()
            result = train_model(arch, dataset, config, frontend=frontend, progress=opts.progress, dist=dist)
            timings[f"train_{arch}"] = time.perf_counter() - t0
            _log(f"{arch}: test accuracy {result.test_report['accuracy']:.3f} "
                 f"(val {result.val_report['accuracy']:.3f}, epoch {result.best_epoch}, {result.seconds:.0f} s)")
            if opts.cache_dir:
                import io

                buf = io.BytesIO()
                torch.save(checkpoint(result.model), buf)
                atomic_write_bytes(Path(opts.cache_dir) / "checkpoints" / f"{arch}.pt", buf.getvalue())

            t0 = time.perf_counter()
            ev = evaluate(result.model, dataset, vad, ood_set, contract.SAMPLE_RATE)
            timings[f"postprocessing_{arch}"] = time.perf_counter() - t0
            _log(f"{arch}: {describe_evaluation(ev.report)}")

            t0 = time.perf_counter()
            proto = export_onnx(result.model, opset=opts.opset)
            set_metadata(proto, build_metadata(arch, labels, opts.label_set, frontend, data_desc["name"],
                                               features_output=contract.FEATURES_NAME,
                                               postprocessing=ev.postprocessing.to_json()))
            require_recoverable(proto, result.model)
            lint = lint_model(proto, opts.backends, tables)
            require_compatible(lint, opts.backends, what=f"{arch} (opset {opts.opset})")
            blob = serialize(proto)
            release_check = check_heldout(result.model, blob, dataset.check_waveforms)
            timings[f"export_{arch}"] = time.perf_counter() - t0
            _log(f"{arch}: exported {len(blob) / 1e6:.1f} MB; lint {lint.summary()}; ORT vs PyTorch max |logit| "
                 f"diff {release_check['onnxruntime_vs_pytorch']['max_abs_logit_diff']:.2e}")

            file_name = contract.MODEL_FILES[arch]
            sha = writer.add(file_name, blob)
            staged[arch] = writer.staged_path(file_name)
            golden[arch] = golden_record(result.model, labels)
            t0 = time.perf_counter()
            made = make_variants(proto, sha, file_name, arch, opts.variants, opts.backends, tables,
                                 variant_calibration(dataset, opts.variants))
            vs_parent = judge_variants(proto, made, arch, dataset.splits["test"])
            variant_records[arch], staged_variants[arch] = stage_variants(arch, made, vs_parent, writer)
            timings[f"variants_{arch}"] = time.perf_counter() - t0
            plot_names = {}
            for kind, png in _plots(result, arch, labels, ev).items():
                name = f"{Path(file_name).stem}_{kind}.png"
                writer.add(name, png)
                plot_names[kind] = name
            distributed = ({"world_size": dist.world_size, "backend": dist.backend,
                            "numeric_env": numeric_env_per_rank} if dist.enabled else None)
            models[arch] = layout.ModelRecord(
                file=file_name, sha256=sha, bytes=len(blob), arch=arch, description=ARCHITECTURES[arch].description,
                opset=lint.opset, ops=lint.ops, backends=lint.backends_dict(), labels=list(labels),
                frontend=frontend.to_dict(),
                training=layout.TrainingRecord(
                    config=dataclasses.asdict(config), profile=opts.profile, epochs_run=len(result.history),
                    best_epoch=result.best_epoch, stopped_early=result.stopped_early, history=result.history,
                    distributed=distributed),
                test_report=result.test_report, val_report=result.val_report, release_check=release_check,
                golden=golden[arch], plots=plot_names,
                postprocessing=layout.postprocessing_entry(ev.postprocessing.to_dict(), ev.report))
        vad_bytes = vad_path.read_bytes()
        writer.add(VAD_FILE, vad_bytes)
        t0 = time.perf_counter()
        gate = run_release_gate(staged, labels, golden, opts.verify_runtimes,
                                opts.verify_examples or VERIFY_EXAMPLES[opts.profile], opts.seed,
                                (opts.cache_dir / "counterexamples") if opts.cache_dir else None, _log,
                                staged_variants)
        timings["parity_gate"] = time.perf_counter() - t0
        for arch, record in models.items():
            models[arch] = dataclasses.replace(record, parity=gate[arch], variants={
                name: v.after_gate(gate[f"{arch}.{name}"]) for name, v in variant_records.get(arch, {}).items()})
        manifest = layout.assemble(
            contract=contract.input_contract(frontend), labels=list(labels), label_set=opts.label_set,
            training_data=data_desc, tolerances=tolerances.load(), libraries=library_versions(),
            build=layout.BuildRecord(profile=opts.profile, seed=opts.seed, opset=opts.opset, pad_mode=opts.pad_mode,
                                     frontend=opts.frontend, target_backends=list(opts.backends),
                                     numeric_env=numeric_env, unpinned=list(unpinned)),
            models=models,
            vad=vad_record(vad_bytes, vad.params, package_version("silero-vad")))
        try:
            previous = read_manifest(opts.out_dir, missing_ok=True)
        except (OSError, ValueError):
            previous = None
        if same_but_timings({**manifest, "files": sorted([*writer.staged_names, MODEL_CARD, MANIFEST])},
                            previous):
            _log("the release is the one already in place but for timings: its manifest is kept as it is")
            manifest = with_timings_of(manifest, previous)
        writer.add(MODEL_CARD, render_model_card(manifest).encode())
        # written against the layout it is read with (ser_export/manifest.py): never a manifest verify refuses
        writer.commit(manifest, check=lambda m: Manifest.from_dict(m, where=f"{opts.out_dir / 'manifest.json'} "
                                                                         f"(about to be written)"))
    total = time.perf_counter() - t_start
    _log(f"release written to {opts.out_dir} in {total:.0f} s "
         f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    return manifest
