"""What a gate run produced, as data: outputs per runner, references, extra runs.

:class:`ModelRun` holds everything :func:`parity.judge.judge_model` needs, so a run
can be saved (``verify --save-outputs DIR``) and judged again later under other
tolerances without running any runtime (``verify --rejudge DIR``).

On disk, per model: ``<name>.json`` (the subject, case labels, runner info and
timings, golden expectations, preprocessing metadata) and ``<name>.npz`` (every
array, loaded with ``allow_pickle=False``).  A saved folder is read as untrusted
input: a missing or malformed entry is a :class:`RecordError` naming the file.
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from ser_export.io import (UntrustedFileError, atomic_write_bytes, atomic_write_text, read_untrusted,
                           read_untrusted_bytes)

FORMAT = "ser_export-parity-run"
VERSION = 1
#: Largest saved run read back (bytes per file).
MAX_BYTES = 4 << 30


class RecordError(ValueError):
    """A saved run that cannot be read (exit 2: could not check)."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """What the judge needs to know about a model (from its contract).

    ``floor``: the log transform's floor in the features' unit (``-top_db`` dB for
    ``power_to_db`` with a per-example max reference); ``features_name``/``classes``
    are ``None`` when the contract declares no features output / no labels.
    """

    arch: str
    file: str
    logits_name: str
    features_name: str | None = None
    classes: tuple[str, ...] | None = None
    floor: float = -80.0
    unit: str = "dB"


@dataclasses.dataclass
class PreprocessRecord:
    """One recording through the JS preprocessing and Python's (windows as ``(n, N)`` float32)."""

    name: str
    same_rate: bool
    js_starts: list[int]
    py_starts: list[int]
    js_silent: list[bool]
    py_silent: list[bool]
    js_windows: np.ndarray
    py_windows: np.ndarray
    js_logits: np.ndarray
    py_logits: np.ndarray
    js_ms: float = 0.0


@dataclasses.dataclass
class PostprocessRecord:
    """The gate's cases through the JS post-processing and Python's (both from the same logits and log-mel).

    Arrays over the ``b`` cases: VAD frame probabilities ``(b, n_frames)``, calibrated
    probabilities ``(b, n_classes)``, OOD scores, and the decisions; the thresholds they
    were decided with.
    """

    js_frames: np.ndarray
    py_frames: np.ndarray
    js_probabilities: np.ndarray
    py_probabilities: np.ndarray
    js_ood: np.ndarray
    py_ood: np.ndarray
    js_speech: np.ndarray
    py_speech: np.ndarray
    js_uncertain: np.ndarray
    py_uncertain: np.ndarray
    vad_threshold: float
    ood_threshold: float
    min_probability: float = 0.0
    js_ms: float = 0.0

    ARRAYS = ("js_frames", "py_frames", "js_probabilities", "py_probabilities", "js_ood", "py_ood", "js_speech",
              "py_speech", "js_uncertain", "py_uncertain")


@dataclasses.dataclass
class GoldenRun:
    expected: dict                      # the manifest's golden record (logits, top1, n, seed, input_sha256)
    labels: list[str]
    outputs: dict[str, np.ndarray]      # runner -> (n, n_classes) logits


@dataclasses.dataclass
class ParentComparison:
    """What a variant is judged against: its float parent's baseline logits on the same gate cases,
    and (when the release's held-out clips can be regenerated) both models' logits on them."""

    parent: str                                          # the parent's name (arch)
    tolerance_class: str                                 # tolerances.json's classes key
    logits: np.ndarray                                   # (n_cases, n_classes): the parent's, same cases
    heldout_targets: np.ndarray | None = None            # (n_clips,) int
    heldout_parent_logits: np.ndarray | None = None      # (n_clips, n_classes)
    heldout_logits: np.ndarray | None = None             # (n_clips, n_classes): the variant's
    heldout_why_not: str = ""                            # why there are no held-out clips (when none)

    ARRAYS = ("logits", "heldout_targets", "heldout_parent_logits", "heldout_logits")


@dataclasses.dataclass
class ModelRun:
    subject: Subject
    case_labels: list[str]
    normalised: np.ndarray                              # (n,) bool
    outputs: dict[str, dict[str, np.ndarray]]           # runner -> output name -> (n, ...)
    reference: np.ndarray | None = None                 # the reference features, (n, ...) float64
    reference_name: str = "librosa-float64"
    baseline: str | None = None
    runner_info: dict[str, dict] = dataclasses.field(default_factory=dict)
    timings: dict[str, dict] = dataclasses.field(default_factory=dict)
    repeat: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)   # same batch again
    alone: dict[str, dict[str, np.ndarray]] = dataclasses.field(default_factory=dict)    # first k cases alone
    batch_n: int = 0
    golden: GoldenRun | None = None
    preprocessing: dict[str, list[PreprocessRecord]] = dataclasses.field(default_factory=dict)
    postprocessing: dict[str, PostprocessRecord] = dataclasses.field(default_factory=dict)
    parent: ParentComparison | None = None
    #: runtimes this model was not run on, and why (a variant: PyTorch, and backends it does not declare)
    skipped_runtimes: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def n_cases(self) -> int:
        return len(self.case_labels)

    # ------------------------------------------------------------- saving ---
    def save(self, folder: Path, name: str) -> None:
        """Write ``folder/name.json`` and ``folder/name.npz`` (atomically)."""
        _check_name(name)
        arrays: dict[str, np.ndarray] = {"normalised": np.asarray(self.normalised, bool)}
        if self.reference is not None:
            arrays["reference"] = self.reference
        for group in ("outputs", "repeat", "alone"):
            for runner, outs in getattr(self, group).items():
                for key, value in outs.items():
                    arrays[f"{group}/{runner}/{key}"] = value
        meta = {"format": FORMAT, "version": VERSION, "subject": dataclasses.asdict(self.subject),
                "case_labels": self.case_labels, "reference_name": self.reference_name,
                "baseline": self.baseline, "runner_info": self.runner_info, "timings": self.timings,
                "batch_n": self.batch_n,
                "groups": {g: {r: sorted(o) for r, o in getattr(self, g).items()}
                           for g in ("outputs", "repeat", "alone")},
                "order": list(self.outputs)}  # the runners' order (JSON's keys are sorted), kept by load
        if self.golden is not None:
            meta["golden"] = {"expected": self.golden.expected, "labels": self.golden.labels,
                              "runners": list(self.golden.outputs)}
            for runner, value in self.golden.outputs.items():
                arrays[f"golden/{runner}"] = value
        meta["preprocessing"] = {}
        for runner, recs in self.preprocessing.items():
            meta["preprocessing"][runner] = []
            for i, rec in enumerate(recs):
                fields = dataclasses.asdict(rec)
                for key in ("js_windows", "py_windows", "js_logits", "py_logits"):
                    arrays[f"preprocessing/{runner}/{i}/{key}"] = fields.pop(key)
                meta["preprocessing"][runner].append(fields)
        meta["postprocessing"] = {}
        for runner, rec in self.postprocessing.items():
            fields = dataclasses.asdict(rec)
            for key in PostprocessRecord.ARRAYS:
                arrays[f"postprocessing/{runner}/{key}"] = fields.pop(key)
            meta["postprocessing"][runner] = fields
        meta["skipped_runtimes"] = dict(self.skipped_runtimes)
        if self.parent is not None:
            meta["parent"] = {"parent": self.parent.parent, "tolerance_class": self.parent.tolerance_class,
                              "heldout_why_not": self.parent.heldout_why_not}
            for key in ParentComparison.ARRAYS:
                value = getattr(self.parent, key)
                if value is not None:
                    arrays[f"parent/{key}"] = value
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"{name}.npz", buf.getvalue())
        atomic_write_text(folder / f"{name}.json", json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n")

    @classmethod
    def load(cls, folder: Path, name: str) -> "ModelRun":
        """Read what :meth:`save` wrote; :class:`RecordError` (naming the file) for anything else."""
        _check_name(name)
        jpath, npath = folder / f"{name}.json", folder / f"{name}.npz"
        packed = read_bytes(npath, MAX_BYTES, "a saved run's arrays")
        meta = read_json(jpath, MAX_BYTES, "a saved run")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise RecordError(f"{jpath}: not a saved run of format {FORMAT} version {VERSION}")
        try:
            with np.load(io.BytesIO(packed), allow_pickle=False) as z:  # the bytes read, never the path again
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile/numpy raise many kinds for a corrupt file
            raise RecordError(f"{npath}: not a saved run's arrays ({type(exc).__name__}: {exc})") from None
        try:
            subject = meta["subject"]
            subject = Subject(**{**subject, "classes": tuple(subject["classes"]) if subject.get("classes") else None})
            order = {r: i for i, r in enumerate(meta.get("order") or [])}
            groups = {g: {r: {k: arrays[f"{g}/{r}/{k}"] for k in keys}
                          for r, keys in sorted(meta["groups"][g].items(), key=lambda kv: order.get(kv[0], len(order)))}
                      for g in ("outputs", "repeat", "alone")}
            golden = None
            if "golden" in meta:
                g = meta["golden"]
                golden = GoldenRun(g["expected"], list(g["labels"]),
                                   {r: arrays[f"golden/{r}"] for r in g["runners"]})
            pre = {runner: [PreprocessRecord(**rec, **{k: arrays[f"preprocessing/{runner}/{i}/{k}"]
                                                       for k in ("js_windows", "py_windows", "js_logits",
                                                                 "py_logits")})
                            for i, rec in enumerate(recs)]
                   for runner, recs in sorted(meta["preprocessing"].items(), key=lambda kv: order.get(kv[0], len(order)))}
            post = {runner: PostprocessRecord(**rec, **{k: arrays[f"postprocessing/{runner}/{k}"]
                                                        for k in PostprocessRecord.ARRAYS})
                    for runner, rec in sorted(meta.get("postprocessing", {}).items(),
                                              key=lambda kv: order.get(kv[0], len(order)))}
            run = cls(subject, list(meta["case_labels"]), arrays["normalised"], groups["outputs"],
                      arrays.get("reference"), meta["reference_name"], meta["baseline"], meta["runner_info"],
                      meta["timings"], groups["repeat"], groups["alone"], int(meta["batch_n"]), golden, pre, post)
            run.skipped_runtimes = {str(k): str(v) for k, v in meta.get("skipped_runtimes", {}).items()}
            if "parent" in meta:
                p = meta["parent"]
                run.parent = ParentComparison(str(p["parent"]), str(p["tolerance_class"]),
                                              **{k: arrays.get(f"parent/{k}") for k in ParentComparison.ARRAYS},
                                              heldout_why_not=str(p.get("heldout_why_not", "")))
                if run.parent.logits is None or run.parent.logits.shape[:1] != (run.n_cases,):
                    raise ValueError("the parent's logits do not cover the run's cases")
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{jpath}: malformed saved run ({type(exc).__name__}: {exc})") from None
        n = run.n_cases
        for runner, outs in run.outputs.items():
            for key, value in outs.items():
                if value.shape[:1] != (n,):
                    raise RecordError(f"{npath}: outputs of {runner} {key!r} hold {value.shape[0]} cases, not {n}")
        return run


def read_bytes(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``, read by :func:`ser_export.io.read_untrusted_bytes` (a regular file, not a symlink,
    at most ``max_bytes``); :class:`RecordError` saying it is not ``what`` and why."""
    try:
        return read_untrusted_bytes(path, max_bytes=max_bytes)
    except UntrustedFileError as exc:
        raise RecordError(f"{exc.path}: not {what} ({exc.problem})") from None


def read_json(path: Path, max_bytes: int, what: str):
    """The JSON in ``path``, read by :func:`ser_export.io.read_untrusted` (a regular file, not a symlink, at most
    ``max_bytes``, UTF-8, no repeated key); :class:`RecordError` saying it is not ``what`` and why."""
    try:
        return read_untrusted(path, max_bytes=max_bytes, format="json")
    except UntrustedFileError as exc:
        raise RecordError(f"{exc.path}: not {what} ({exc.problem})") from None


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
        raise RecordError(f"{name!r} is not a plain file name")


def save_runs(folder: Path, runs: Mapping[str, ModelRun], extra: Mapping) -> None:
    """A whole gate run: ``index.json`` (model names, files, the run's config) and one pair per model."""
    for name, run in runs.items():
        run.save(folder, name)
    index = {"format": FORMAT + "-index", "version": VERSION, "models": list(runs), **extra}
    atomic_write_text(folder / "index.json", json.dumps(index, indent=1, sort_keys=True, allow_nan=False) + "\n")


def load_runs(folder: Path) -> tuple[dict[str, ModelRun], dict]:
    """What :func:`save_runs` wrote: ``({name: run}, index)``."""
    path = Path(folder) / "index.json"
    if path.is_symlink() or not path.is_file():
        raise RecordError(f"{path}: missing (not a folder written by verify --save-outputs)")
    index = read_json(path, MAX_BYTES, "valid JSON")
    if not isinstance(index, dict) or index.get("format") != FORMAT + "-index" or not isinstance(
            index.get("models"), list):
        raise RecordError(f"{path}: not a saved run index of format {FORMAT}")
    return {str(name): ModelRun.load(Path(folder), str(name)) for name in index["models"]}, index


def _same(values: list, what: str):
    first = values[0]
    for v in values[1:]:
        if v != first:
            raise RecordError(f"the runs disagree on {what} ({first!r} vs {v!r})")
    return first


def _cat(arrays: list[np.ndarray | None], what: str) -> np.ndarray | None:
    if all(a is None for a in arrays):
        return None
    if any(a is None for a in arrays):
        raise RecordError(f"{what} is saved by some of the runs only")
    try:
        return np.concatenate(arrays)
    except ValueError as exc:
        raise RecordError(f"{what} cannot be joined ({exc})") from None


def concat_runs(parts: list[ModelRun]) -> ModelRun:
    """The runs of one model on consecutive blocks of cases (the shards of a gate run, in order) as one run.

    Per-case arrays are joined case by case; what is run once per model (determinism, batch invariance,
    golden logits, preprocessing recordings, a variant's held-out clips) comes from the first part, the only
    one that has it (:mod:`parity.shard`).  Timings add up.  :class:`RecordError` when the parts are not
    runs of one model with the same runtimes.
    """
    if not parts:
        raise RecordError("no runs to join")
    first = parts[0]
    subject = _same([p.subject for p in parts], "the model")
    _same([sorted(p.outputs) for p in parts], "the runtimes")
    runners = list(first.outputs)
    for p in parts[1:]:
        if p.repeat or p.alone or p.golden is not None or p.preprocessing or (
                p.parent is not None and p.parent.heldout_logits is not None):
            raise RecordError("a run other than the first holds the once-per-model checks (not a shard 2..N)")
    outputs = {r: {k: _cat([p.outputs[r].get(k) for p in parts], f"outputs of {r} {k!r}")
                   for k in first.outputs[r]} for r in runners}
    run = ModelRun(subject, [c for p in parts for c in p.case_labels],
                   np.concatenate([np.asarray(p.normalised, bool) for p in parts]), outputs,
                   _cat([p.reference for p in parts], "the reference features"),
                   _same([p.reference_name for p in parts], "the reference"),
                   _same([p.baseline for p in parts], "the baseline"), dict(first.runner_info), {},
                   first.repeat, first.alone, first.batch_n, first.golden, first.preprocessing, {}, None,
                   dict(first.skipped_runtimes))
    n = run.n_cases
    for name in first.timings:
        seconds = sum(float(p.timings.get(name, {}).get("seconds", 0.0)) for p in parts)
        run.timings[name] = {"seconds": round(seconds, 3)}
        if "ms_per_case" in first.timings[name]:
            run.timings[name]["ms_per_case"] = round(1000 * seconds / max(n, 1), 3)
    _same([sorted(p.postprocessing) for p in parts], "the post-processing runtimes")
    for name in first.postprocessing:
        recs = [p.postprocessing[name] for p in parts]
        fields = {k: getattr(recs[0], k) for k in ("vad_threshold", "ood_threshold", "min_probability")}
        _same([tuple(getattr(r, k) for k in fields) for r in recs], f"{name}'s post-processing thresholds")
        run.postprocessing[name] = PostprocessRecord(
            **{k: _cat([getattr(r, k) for r in recs], f"{name}'s post-processing {k}") for k in
               PostprocessRecord.ARRAYS}, **fields, js_ms=sum(r.js_ms for r in recs))
    if first.parent is not None:
        if any(p.parent is None for p in parts):
            raise RecordError("the parent's logits are saved by some of the runs only")
        pc = first.parent
        _same([(p.parent.parent, p.parent.tolerance_class) for p in parts], "the parent")
        run.parent = ParentComparison(pc.parent, pc.tolerance_class, _cat([p.parent.logits for p in parts],
                                                                         "the parent's logits"),
                                      pc.heldout_targets, pc.heldout_parent_logits, pc.heldout_logits,
                                      pc.heldout_why_not)
    return run


def union_runs(runs: list[ModelRun], baseline_of) -> ModelRun:
    """Runs of one model on the same cases by different runtimes (a gate run split by runtime) as one run.

    A runtime in several runs keeps its first outputs; ``baseline_of(names)`` picks the joined run's
    baseline from every runtime it holds (the gate's rule).  The once-per-model checks of each run are kept;
    a variant's held-out comparison comes from the first run that made it.
    """
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    _same([r.subject for r in runs], "the model")
    _same([r.case_labels for r in runs], "the cases")
    if not all(np.array_equal(r.normalised, first.normalised) for r in runs):
        raise RecordError("the runs disagree on which cases are normalised")
    merged = dataclasses.replace(first, outputs={}, runner_info={}, timings={}, repeat={}, alone={},
                                 preprocessing={}, postprocessing={}, skipped_runtimes={}, golden=None)
    for r in runs:
        for group in ("outputs", "runner_info", "repeat", "alone", "preprocessing", "postprocessing"):
            for name, value in getattr(r, group).items():
                getattr(merged, group).setdefault(name, value)
        for name, value in r.timings.items():
            merged.timings.setdefault(name, value)
        if merged.reference is None:
            merged.reference = r.reference
        merged.batch_n = max(merged.batch_n, r.batch_n)
        if r.golden is not None:
            if merged.golden is None:
                merged.golden = GoldenRun(r.golden.expected, r.golden.labels, {})
            for name, value in r.golden.outputs.items():
                merged.golden.outputs.setdefault(name, value)
        if r.parent is not None and (merged.parent is None or (merged.parent.heldout_logits is None
                                                                and r.parent.heldout_logits is not None)):
            merged.parent = r.parent
    merged.skipped_runtimes = {n: why for r in runs for n, why in r.skipped_runtimes.items()
                               if n not in merged.outputs}
    merged.baseline = baseline_of(merged.outputs)
    return merged
