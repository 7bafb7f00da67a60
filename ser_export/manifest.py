"""``manifest.json``: its layout, declared once, and the dataclass every reader goes through.

:data:`LAYOUT` declares the type of every field the build writes (the one place to add a field);
:func:`json_schema` is that layout as a JSON Schema, which ``jsonschema`` checks
(:mod:`ser_export.schema`).  :meth:`Manifest.read` refuses (with :class:`ManifestError`, exit
code 2, one line naming the file and the field) a manifest that the untrusted-file reader refuses
(:func:`ser_export.io.read_untrusted`: not a regular file inside the release folder, a symbolic
link, too large, not UTF-8, not JSON, a repeated key), that lacks a field, has a field of another
type or a field the layout does not know, or whose models contradict it (a file name with a
directory part, a sha256 that is not 64 hex digits, a model not listed in ``files``, labels that
differ from the release's).  Readers then use the :class:`Manifest` and :class:`ModelEntry` fields.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .errors import SerExportError
from .io import UntrustedFileError, read_untrusted
from .schema import first_problem, json_type, validator

MANIFEST = "manifest.json"
#: The model card every release holds (listed in ``files``).
MODEL_CARD = "MODEL_CARD.md"
FORMAT = "ser_export-manifest"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20
#: Fields that time the build on the machine that ran it (any key of these names, at any depth): a rebuild
#: that reproduces every other field keeps the previous manifest's, so the tree stays unchanged.
TIMING_KEYS = frozenset({"seconds", "ms_per_case"})


def without_timings(data: Any) -> Any:
    """``data`` (a manifest, as JSON) with every :data:`TIMING_KEYS` field left out, at any depth."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k not in TIMING_KEYS}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data


def with_timings_of(new: Any, previous: Any) -> Any:
    """``new`` with each :data:`TIMING_KEYS` field taken from ``previous`` at the same place (where it has one);
    ``new``'s order kept (the model card renders in it)."""
    if isinstance(new, dict):
        prev = previous if isinstance(previous, dict) else {}
        return {k: prev[k] if k in TIMING_KEYS and k in prev else with_timings_of(v, prev.get(k))
                for k, v in new.items()}
    if isinstance(new, list):
        prev = previous if isinstance(previous, list) else []
        return [with_timings_of(v, prev[i] if i < len(prev) else None) for i, v in enumerate(new)]
    return new


def same_but_timings(new: Mapping, previous: Mapping | None) -> bool:
    """Whether ``new`` (about to be written) differs from ``previous`` (the release folder's) only in how long
    things took: then the previous manifest is kept (``files`` is compared as well when both have it)."""
    if not isinstance(previous, Mapping):
        return False
    a, b = json.loads(json.dumps(new)), json.loads(json.dumps(previous))
    if "files" not in a:
        b.pop("files", None)
    return without_timings(a) == without_timings(b)


class ManifestError(SerExportError):
    """A manifest that cannot be trusted as it is: the gate answers "could not check" (exit 2)."""

    exit_code = 2


# ------------------------------------------------------------------- the layout ----
class Spec:
    """A JSON type of the layout; :meth:`schema` is its JSON Schema (draft 2020-12), which
    :func:`ser_export.schema.first_problem` checks a manifest against."""

    def schema(self) -> dict:
        raise NotImplementedError

    def allows(self, value: Any) -> bool:
        return validator(self.schema()).is_valid(value)


@dataclasses.dataclass(frozen=True)
class Scalar(Spec):
    """One JSON type, or several (``types``: JSON Schema type names)."""

    types: tuple[str, ...]

    def schema(self):
        return {"type": self.types[0] if len(self.types) == 1 else list(self.types)}


STR = Scalar(("string",))
INT = Scalar(("integer",))
NUM = Scalar(("number",))
BOOL = Scalar(("boolean",))
NULL = Scalar(("null",))


@dataclasses.dataclass(frozen=True)
class Opt(Spec):
    """``spec`` or null."""

    spec: Spec

    def schema(self):
        inner = self.spec.schema()
        types = [inner["type"]] if isinstance(inner["type"], str) else list(inner["type"])
        return {**inner, "type": [*types, "null"]}


@dataclasses.dataclass(frozen=True)
class ListOf(Spec):
    item: Spec

    def schema(self):
        return {"type": "array", "items": self.item.schema()}


@dataclasses.dataclass(frozen=True)
class MapOf(Spec):
    """An object with any keys, every value ``value``."""

    value: Spec

    def schema(self):
        return {"type": "object", "additionalProperties": self.value.schema()}


@dataclasses.dataclass(frozen=True)
class Record(Spec):
    """An object with these keys (``optional`` ones may be absent); any other key is refused."""

    required: Mapping[str, Spec]
    optional: Mapping[str, Spec] = dataclasses.field(default_factory=dict)

    def schema(self):
        fields = {**self.required, **self.optional}
        return {"type": "object", "required": list(self.required),
                "properties": {k: spec.schema() for k, spec in fields.items()}, "additionalProperties": False}


STRS = ListOf(STR)


@dataclasses.dataclass(frozen=True)
class StreamContractSpec(Spec):
    """A stream contract (version 2) in the layout of a contract file: its own schema
    (:func:`ser_export.stream_contract.json_schema`), the ``vad`` entry's ``contract``."""

    def schema(self):
        from .stream_contract import json_schema as stream_schema

        return {k: v for k, v in stream_schema().items() if k not in ("$schema", "$id")}


_FINDING = Record({"severity": STR, "code": STR, "message": STR, "nodes": STRS, "n_nodes": INT})
_BACKEND = Record({"compatible": BOOL, "table": STR, "findings": ListOf(_FINDING)},
                  {"session_options": MapOf(MapOf(INT))})
_IO = Record({"name": STR, "shape": ListOf(Scalar(("string", "integer"))), "dtype": STR},
             {"kind": STR})
_FRONTEND = Record({"sr": INT, "n_fft": INT, "hop_length": INT, "n_mels": INT, "fmin": NUM, "fmax": Opt(NUM),
                    "window": STR, "center": BOOL, "pad_mode": STR, "power": NUM, "ref": STR, "amin": NUM,
                    "top_db": NUM, "implementation": STR, "fft_n1": INT, "mel_groups": INT})
_CLASS = Record({"precision": NUM, "recall": NUM, "f1": NUM, "support": INT})
_REPORT = Record({"accuracy": NUM, "macro_f1": NUM, "n": INT, "per_class": MapOf(_CLASS),
                  "confusion_matrix": ListOf(ListOf(INT)), "confusion_matrix_axes": STR})
_EPOCH = Record({"epoch": INT, "train_loss": NUM, "train_accuracy": NUM, "val_loss": NUM, "val_accuracy": NUM,
                 "lr": NUM, "seconds": NUM})
_TRAIN_CONFIG = Record({"epochs": INT, "lr": NUM, "batch_size": INT, "weight_decay": NUM, "patience": INT,
                        "warmup_fraction": NUM, "recalibrate_bn": BOOL, "recalibration_samples": INT,
                        "max_grad_norm": NUM, "seed": INT}, {"dropout_ramp": NUM})
_RUNNER_FIGURES = Record({k: Opt(NUM) for k in (
    "logmel_vs_librosa_max_abs_db", "logmel_vs_librosa_above_floor_max_abs_db", "logits_vs_pytorch_max_abs",
    "probabilities_vs_pytorch_max_abs", "top1_agreement", "golden_logits_max_abs", "ms_per_case")})
_RUNNER_INFO = Record({"runtime": STR}, {
    "version": Opt(STR), "backend": Opt(STR), "execution_providers": Opt(STRS), "threads": Opt(INT),
    "node": Opt(STR), "node_source": Opt(STR), "python": STR, "browser": Opt(STR), "userAgent": Opt(STR),
    "webglRenderer": Opt(STR), "crossOriginIsolated": Opt(BOOL),
    "wasm": Opt(Record({}, {"numThreads": Opt(INT), "simd": Opt(Scalar(("boolean", "string"))),
                            "proxy": Opt(BOOL)})),
    "webgpuAdapter": Opt(MapOf(Opt(Scalar(("string", "boolean"))))),
    "placement": Opt(Record({"providers": MapOf(Scalar(("integer", "string")))}, {"source": STR}))})
_GOLDEN = Record({"n": INT, "seed": INT, "input_sha256": STR, "logits": ListOf(ListOf(NUM)), "top1": STRS})
_OUTCOMES = Record({k: NUM for k in (
    "speech_rate", "no_speech_rate", "uncertain_rate", "uncertain_rate_of_speech", "classified_rate",
    "confident_emotion_rate", "no_speech_or_uncertain_rate")} | {"n": INT},
    {"accuracy_all": NUM, "accuracy_classified": NUM})
_VAD_PARAMS = Record({"file": STR, "sha256": STR, "sample_rate": INT, "frame_length": INT, "context": INT,
                      "gain_db": NUM, "threshold": NUM, "min_speech_fraction": NUM, "resampler": MapOf(NUM)})
_POSTPROCESSING = Record({
    "temperature": NUM, "confident_probability": NUM, "vad": _VAD_PARAMS,
    "ood": Record({"score": STR, "statistics": STR, "quantile": NUM, "threshold": NUM}),
    "confidence": Record({"min_probability": NUM, "quantile": NUM}),
    "evaluation": Record({
        "temperature": NUM,
        "ece_test": Record({"before": NUM, "after": NUM, "n_bins": INT, "n": INT}),
        "held_out_test": _OUTCOMES, "validation": _OUTCOMES,
        "ood_set": Record({"version": INT, "n": INT, "non_speech": _OUTCOMES, "speech_like": _OUTCOMES,
                           "families": MapOf(_OUTCOMES)}),
        "ood_auroc": Record({"chosen": STR, "held_out_vs": MapOf(MapOf(NUM))}),
        "vad": MapOf(NUM)})})
_VARIANT = Record({"file": STR, "sha256": STR, "bytes": INT, "parent_sha256": STR, "tolerance_class": STR,
                   "precision": STR, "method": STR, "ops": MapOf(INT), "backends": MapOf(_BACKEND),
                   "declared_backends": STRS, "vs_parent": MapOf(MapOf(Opt(NUM))), "gate_runtimes": STRS})
#: The declared numeric environment a build ran under (ser_export/numenv.py; releases before it have none):
#: ``comparable`` false (with the ``reason``) where the machine could not meet it.
_NUMERIC_ENV = Record({"version": INT, "env": MapOf(STR), "intra_op_threads": INT, "interop_threads": INT,
                       "comparable": BOOL}, {"reason": STR})
_MODEL = Record({
    "file": STR, "sha256": STR, "bytes": INT, "arch": STR, "description": STR, "opset": INT, "ops": MapOf(INT),
    "backends": MapOf(_BACKEND), "input": _IO, "output": _IO, "labels": STRS, "frontend": _FRONTEND,
    "training": Record({"config": _TRAIN_CONFIG, "profile": STR, "epochs_run": INT, "best_epoch": INT,
                        "stopped_early": BOOL, "history": ListOf(_EPOCH)},
                       {"distributed": Record({"world_size": INT, "backend": STR},
                                              {"numeric_env": ListOf(_NUMERIC_ENV)})}),
    "held_out": Record({"test": _REPORT, "val": Record({"accuracy": NUM, "macro_f1": NUM, "n": INT})}),
    "release_check": Record({"cases": INT, "onnxruntime_vs_pytorch": Record(
        {"max_abs_logit_diff": NUM, "max_abs_probability_diff": NUM, "top1_agreement": NUM}),
        "pytorch_logmel_vs_librosa_f64": Record({"max_abs_all_bins": NUM, "max_abs_above_floor": NUM,
                                                 "floor_margin_db": NUM}),
        "tolerances": Record({"logits_max_abs": NUM, "probabilities_max_abs": NUM,
                              "logmel_db": MapOf(NUM)})}),
    "golden": _GOLDEN,
    "plots": MapOf(STR),
}, {"parity": Record({"cases": INT, "passed": BOOL, "runners": MapOf(_RUNNER_FIGURES),
                      "runner_info": MapOf(_RUNNER_INFO)}),
    "postprocessing": _POSTPROCESSING, "variants": MapOf(_VARIANT)})
_SKIPPED = Record({"file": STR, "reason": STR, "detail": STR})
_CORPUS = Record({"speakers": MapOf(STRS), "clips": MapOf(MapOf(INT))},
                 {"root": STR, "files": INT, "used": INT, "skipped": ListOf(_SKIPPED), "skipped_total": INT,
                  "skipped_by_reason": MapOf(INT)})
_TOLERANCES = Record({"version": INT, "description": STR, "defaults": MapOf(MapOf(NUM)),
                      "runners": MapOf(MapOf(MapOf(NUM)))},
                     {"classes": MapOf(MapOf(NUM)), "classes_description": STR})

#: The manifest, field by field (what ``ser_export.build`` writes).
LAYOUT = Record({
    "format": STR, "format_version": INT, "files": STRS, "labels": STRS, "label_set": STR,
    "contract": Record({"contract_version": INT, "input_name": STR, "input_dtype": STR,
                        "input_shape": ListOf(Scalar(("string", "integer"))), "n_samples": INT,
                        "sample_rate": INT, "duration_s": NUM, "channels": STR,
                        "normalization": Record({"kind": STR, "formula": STR, "rms_level_db": NUM, "min_rms": NUM}),
                        "output_name": STR, "output_shape": ListOf(Scalar(("string", "integer"))),
                        "output_kind": STR, "features_name": STR,
                        "features_shape": ListOf(Scalar(("string", "integer"))),
                        "features_unit": STR}),
    "training_data": Record({"name": STR, "synthetic": BOOL, "augmentation": STR, "corpora": MapOf(_CORPUS)},
                            {"spec": MapOf(INT), "labels_without_data": STRS}),
    "tolerances": _TOLERANCES, "libraries": MapOf(STR),
    "build": Record({"profile": STR, "seed": INT, "opset": INT, "pad_mode": STR, "frontend": STR,
                     "target_backends": STRS}, {"unpinned": STRS, "numeric_env": _NUMERIC_ENV}),
    "models": MapOf(_MODEL),
}, {"vad": Record({"file": STR, "sha256": STR, "bytes": INT, "source": STR, "license": STR, "version": STR},
                  {"contract": StreamContractSpec()})})


@lru_cache(maxsize=None)
def _schema_json() -> str:
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$id": f"https://ser-export/manifest/v{FORMAT_VERSION}", "title": "ser_export manifest", **LAYOUT.schema()}
    return json.dumps(out)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of ``manifest.json``, made from :data:`LAYOUT` (a fresh copy)."""
    return json.loads(_schema_json())


def spec_at(path: str, spec: Spec = LAYOUT) -> Spec | None:
    """The spec of the field at a dotted ``path`` (``models.alexnet.sha256``; list items ``[0]``)."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        while isinstance(spec, Opt):
            spec = spec.spec
        if part.startswith("["):
            spec = spec.item if isinstance(spec, ListOf) else None
        elif isinstance(spec, Record):
            spec = spec.required.get(part) or spec.optional.get(part)
        elif isinstance(spec, MapOf):
            spec = spec.value
        else:
            spec = None
        if spec is None:
            return None
    return spec


# --------------------------------------------------------------- the dataclass ----
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and "\x00" not in name


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model of the release, as the manifest declares it (``raw``: the whole entry)."""

    arch: str
    file: str
    sha256: str
    bytes: int
    labels: tuple[str, ...]
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    golden: Mapping[str, Any]
    raw: Mapping[str, Any] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A release's manifest, checked field by field against :data:`LAYOUT`."""

    labels: tuple[str, ...]
    label_set: str
    files: tuple[str, ...]
    models: Mapping[str, ModelEntry]
    raw: Mapping[str, Any] = dataclasses.field(repr=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> "Manifest":
        """Validate ``data`` (raises :class:`ManifestError` naming ``where`` and the field)."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: must hold a JSON object, not {json_type(data)}")
        if data.get("format") != FORMAT:
            raise ManifestError(f"{where}: format is {data.get('format')!r}, not {FORMAT!r} "
                                f"(not a ser_export manifest)")
        if data.get("format_version") != FORMAT_VERSION:
            raise ManifestError(f"{where}: format_version is {data.get('format_version')!r}; this ser_export reads "
                                f"{FORMAT_VERSION}")
        problem = first_problem(json_schema(), data, "manifest", "the manifest layout")
        if problem is not None:
            raise ManifestError(f"{where}: {problem}")
        files = data["files"]
        bad = [f for f in files if not _plain_name(f)]
        if bad:
            raise ManifestError(f"{where}: files lists {bad[0]!r}, which is not a plain file name")
        if len(set(files)) != len(files):
            raise ManifestError(f"{where}: files lists a name twice")
        for required in (MANIFEST, MODEL_CARD):
            if required not in files:
                raise ManifestError(f"{where}: files does not list {required}")
        numeric_env = data["build"].get("numeric_env")
        if numeric_env is not None and numeric_env["comparable"] == ("reason" in numeric_env):
            raise ManifestError(f"{where}: build.numeric_env.reason must be given exactly when comparable is false")
        vad = data.get("vad")
        if vad is not None:
            if not _plain_name(vad["file"]) or vad["file"] not in files:
                raise ManifestError(f"{where}: vad.file {vad['file']!r} is not a file of the release")
            if not _SHA256.match(vad["sha256"]):
                raise ManifestError(f"{where}: vad.sha256 is not 64 hexadecimal digits")
            for arch, entry in data["models"].items():
                named = (entry.get("postprocessing") or {}).get("vad", {}).get("sha256")
                if named is not None and named != vad["sha256"]:
                    raise ManifestError(f"{where}: models.{arch}.postprocessing.vad.sha256 differs from vad.sha256")
            if "contract" in vad:  # the VAD's stream contract: the one its parameters make (ser_export/vad_release.py)
                from .vad_release import contract_problem

                problem = contract_problem(vad, data["models"])
                if problem is not None:
                    raise ManifestError(f"{where}: {problem}")
        models = {}
        seen: set[str] = set()
        for arch, entry in data["models"].items():
            field = f"models.{arch}"
            if not _plain_name(entry["file"]) or entry["file"] not in files:
                raise ManifestError(f"{where}: {field}.file {entry['file']!r} is not a file of the release")
            if entry["file"] in seen:
                raise ManifestError(f"{where}: {field}.file {entry['file']!r} is listed by two models")
            for kind, plot in (entry.get("plots") or {}).items():
                if plot not in files:
                    raise ManifestError(f"{where}: {field}.plots.{kind} {plot!r} is not a file of the release")
            seen.add(entry["file"])
            if not _SHA256.match(entry["sha256"]):
                raise ManifestError(f"{where}: {field}.sha256 is not 64 hexadecimal digits")
            for name, v in (entry.get("variants") or {}).items():
                vf = f"{field}.variants.{name}"
                if not _plain_name(name):
                    raise ManifestError(f"{where}: {vf} is not a plain variant name")
                if not _plain_name(v["file"]) or v["file"] not in files:
                    raise ManifestError(f"{where}: {vf}.file {v['file']!r} is not a file of the release")
                if v["file"] in seen:
                    raise ManifestError(f"{where}: {vf}.file {v['file']!r} is listed twice")
                seen.add(v["file"])
                if not _SHA256.match(v["sha256"]):
                    raise ManifestError(f"{where}: {vf}.sha256 is not 64 hexadecimal digits")
                if v["parent_sha256"] != entry["sha256"]:
                    raise ManifestError(f"{where}: {vf}.parent_sha256 is not {field}.sha256 (a variant of another "
                                        f"model)")
                from .tolerances import CLASSES

                if v["tolerance_class"] not in CLASSES:
                    raise ManifestError(f"{where}: {vf}.tolerance_class {v['tolerance_class']!r} is not one of "
                                        f"{', '.join(CLASSES)}")
            if entry["labels"] != data["labels"]:
                raise ManifestError(f"{where}: {field}.labels differ from the release's labels")
            models[arch] = ModelEntry(arch=arch, file=entry["file"], sha256=entry["sha256"], bytes=entry["bytes"],
                                      labels=tuple(entry["labels"]), input=entry["input"], output=entry["output"],
                                      golden=entry["golden"], raw=entry)
        if not models:
            raise ManifestError(f"{where}: models is empty")
        return cls(labels=tuple(data["labels"]), label_set=data["label_set"], files=tuple(files), models=models,
                   raw=data)

    @classmethod
    def read(cls, release_dir: str | os.PathLike) -> "Manifest":
        """The manifest of ``release_dir``, read as untrusted input (:func:`ser_export.io.read_untrusted`,
        then :meth:`from_dict`)."""
        path = Path(release_dir) / MANIFEST
        try:
            data = read_untrusted(path, max_bytes=MAX_MANIFEST_BYTES, folder=release_dir)
        except UntrustedFileError as exc:
            raise ManifestError(f"{exc} (not a ser_export release directory?)" if exc.problem == "no such file"
                                else str(exc)) from None
        return cls.from_dict(data, str(path))


# ---------------------------------------------------------------- assembly ----
# What the build writes, assembled here in the order the model card renders in (``manifest.json`` itself is
# written with sorted keys); :func:`assemble` then :meth:`Manifest.from_dict` at commit.
def _fields(record: Any, omit_empty: tuple[str, ...] = ()) -> dict:
    """A record's fields in declaration order, leaving out those of ``omit_empty`` that are empty/None."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
            if not (f.name in omit_empty and not getattr(record, f.name))}


@dataclasses.dataclass(frozen=True)
class VariantRecord:
    """``models.<arch>.variants.<name>``: ``vs_parent`` holds the build's figures on the test split
    (``heldout``) and, once the gate ran, on its cases (``gate_cases``)."""

    file: str
    bytes: int
    parent_sha256: str
    tolerance_class: str
    precision: str
    method: str
    ops: Mapping[str, int]
    backends: Mapping[str, Any]
    declared_backends: list[str]
    vs_parent: Mapping[str, Any]
    sha256: str
    gate_runtimes: list[str] | None = None

    def after_gate(self, figures: Mapping[str, Any]) -> "VariantRecord":
        """With the release gate's figures for this variant (its ``runtimes`` and the rest, ``gate_cases``)."""
        cases = dict(figures)
        runtimes = cases.pop("runtimes")
        return dataclasses.replace(self, gate_runtimes=runtimes, vs_parent={**self.vs_parent, "gate_cases": cases})

    def to_dict(self) -> dict:
        return _fields(self, omit_empty=("gate_runtimes",))


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """``models.<arch>.training``: ``distributed`` only for a ``torchrun`` build."""

    config: Mapping[str, Any]
    profile: str
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    history: list
    distributed: Mapping[str, Any] | None = None

    def to_dict(self) -> dict:
        return _fields(self, omit_empty=("distributed",))


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """``models.<arch>``: the model file, its lint, its training and evaluation and (after the gate) its
    ``parity`` figures and ``variants`` (none: left out).  ``input``/``output`` follow the contract."""

    file: str
    sha256: str
    bytes: int
    arch: str
    description: str
    opset: int
    ops: Mapping[str, int]
    backends: Mapping[str, Any]
    labels: list[str]
    frontend: Mapping[str, Any]
    training: TrainingRecord
    test_report: Mapping[str, Any]
    val_report: Mapping[str, Any]
    release_check: Mapping[str, Any]
    golden: Mapping[str, Any]
    plots: Mapping[str, str]
    postprocessing: Mapping[str, Any]
    parity: Mapping[str, Any] | None = None
    variants: Mapping[str, VariantRecord] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        from . import contract

        out = {"file": self.file, "sha256": self.sha256, "bytes": self.bytes, "arch": self.arch,
               "description": self.description, "opset": self.opset, "ops": self.ops, "backends": self.backends,
               "input": {"name": contract.INPUT_NAME, "shape": ["batch", contract.N_SAMPLES], "dtype": "float32"},
               "output": {"name": contract.OUTPUT_NAME, "shape": ["batch", len(self.labels)], "dtype": "float32",
                          "kind": "logits"},
               "labels": list(self.labels), "frontend": self.frontend, "training": self.training.to_dict(),
               "held_out": {"test": self.test_report,
                            "val": {k: self.val_report[k] for k in ("accuracy", "macro_f1", "n")}},
               "release_check": self.release_check, "golden": self.golden, "plots": self.plots,
               "postprocessing": self.postprocessing}
        if self.parity is not None:
            out["parity"] = self.parity
        if self.variants:
            out["variants"] = {name: v.to_dict() for name, v in self.variants.items()}
        return out


def postprocessing_entry(parameters: Mapping[str, Any], evaluation: Mapping[str, Any]) -> dict:
    """``models.<arch>.postprocessing``: the post-processing ``parameters`` (``Postprocessing.to_dict()``; the
    OOD statistics stay in the model's metadata) and the build's ``evaluation`` report."""
    return {"temperature": parameters["temperature"], "confident_probability": parameters["confident_probability"],
            "vad": parameters["vad"],
            "ood": {k: parameters["ood"][k] for k in ("score", "statistics", "quantile", "threshold")},
            "confidence": parameters["confidence"], "evaluation": evaluation}


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """``build``: how the release was built (``unpinned``: only when the toolchain was not the pinned one)."""

    profile: str
    seed: int
    opset: int
    pad_mode: str
    frontend: str
    target_backends: list[str]
    numeric_env: Mapping[str, Any] | None = None  # every build records it; releases before it have none
    unpinned: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return _fields(self, omit_empty=("numeric_env", "unpinned"))


@dataclasses.dataclass(frozen=True)
class VadRecord:
    """``vad``: the voice-activity model shipped with the release, and its stream contract (``contract``: made by
    :func:`ser_export.vad_release.vad_record`; releases before it have none)."""

    file: str
    sha256: str
    bytes: int
    source: str
    license: str
    version: str
    contract: Mapping[str, Any] | None = None

    def to_dict(self) -> dict:
        return _fields(self, omit_empty=("contract",))


def assemble(*, contract: Mapping[str, Any], labels: list[str], label_set: str, training_data: Mapping[str, Any],
             tolerances: Mapping[str, Any], libraries: Mapping[str, str], build: BuildRecord,
             models: Mapping[str, ModelRecord], vad: VadRecord) -> dict:
    """The manifest the build writes, as JSON data (``files`` is added when the release is committed; it is
    checked against :data:`LAYOUT` by :meth:`Manifest.from_dict` before anything is written)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "contract": contract, "labels": list(labels),
            "label_set": label_set, "training_data": training_data, "tolerances": tolerances,
            "libraries": libraries, "build": build.to_dict(),
            "models": {arch: m.to_dict() for arch, m in models.items()}, "vad": vad.to_dict()}
