"""The declared contract of an audio model: everything the gate needs to check it.

A :class:`ModelContract` (frozen, versioned) says what the model takes (input name,
dtype, shape, sample rate, length, normalisation), what it gives (the logits output
and its labels; optionally a features output and the front-end that makes it, with
librosa's parameter names and the log transform), which backends it targets and,
optionally, tolerances laid over the shipped ones.

It is read from a TOML or JSON file (``verify MODEL --contract FILE``) or, for
ser_export's own models, from their metadata (:meth:`ModelContract.from_metadata`).
A wrong, unknown or missing field is a :class:`ContractError` naming the field and
the file.  ``python -m ser_export contract --schema`` prints the JSON schema
(:func:`json_schema`).

A complete example is in the docs ("Verify your own model", ``docs_blocks.page("contract")``), the file
``tests/parity/test_foreign.py`` verifies.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Mapping

from .contract import GRAPH_FIELD, FrontEnd, LogTransform, check_choice, check_positive, declared_fields, rms_target
from .errors import SerExportError

VERSION = 1
#: Backends a contract may target (onnxruntime-web's, as the lint knows them).
BACKENDS = ("wasm", "webgl", "webgpu")
#: Largest contract file read.
MAX_BYTES = 1 << 20


class ContractError(SerExportError):
    """A contract that cannot be used (exit 2), naming the field and the file."""


@dataclasses.dataclass(frozen=True)
class Normalization:
    """What the input must satisfy: ``rms`` (each window at ``rms_level_db`` dBFS RMS) or ``none``.

    The RMS is :attr:`target_rms`, ``10 ** (rms_level_db / 20)``: 0.1 at -20 dB.
    """

    kind: str = "none"
    rms_level_db: float = 0.0
    min_rms: float = 1e-4

    def __post_init__(self):
        check_choice("kind", self.kind, ("none", "rms"))

    @property
    def target_rms(self) -> float:
        """The RMS of a normalised input, ``10 ** (rms_level_db / 20)`` (:func:`ser_export.contract.rms_target`)."""
        return rms_target(self.rms_level_db)


@dataclasses.dataclass(frozen=True)
class Input:
    """The model's one input.

    ``kind = "waveform"``: ``shape`` is ``[batch, length]`` at ``sample_rate``;
    ``kind = "features"``: the model takes features made by ``frontend`` from waveforms
    of ``length`` samples (the gate makes its cases that way).
    """

    name: str
    shape: tuple[int | str, ...]
    sample_rate: int
    dtype: str = "float32"
    kind: str = "waveform"
    length: int | None = None
    normalization: Normalization = Normalization()
    frontend: FrontEnd | None = None

    def __post_init__(self):
        check_choice("dtype", self.dtype, ("float32",))
        check_choice("kind", self.kind, ("waveform", "features"))
        check_positive("sample_rate", self.sample_rate)
        if not self.shape or not isinstance(self.shape[0], str) and self.shape[0] != 1:
            raise ValueError("shape must start with the batch dimension (a name such as \"batch\")")
        if self.kind == "waveform" and (len(self.shape) != 2 or not isinstance(self.shape[1], int)):
            raise ValueError(f"shape of a waveform input must be [batch, samples], not {list(self.shape)}")
        if self.kind == "features" and self.frontend is None:
            raise ValueError("a features input needs its frontend (how the features are made)")
        if self.kind == "features" and not self.length:
            raise ValueError("a features input needs length (samples per waveform before the front-end)")

    @property
    def n_samples(self) -> int:
        return int(self.shape[1]) if self.kind == "waveform" else int(self.length)


@dataclasses.dataclass(frozen=True)
class Outputs:
    """The logits output (and its labels, if declared); optionally a features output and its front-end."""

    logits: str
    labels: tuple[str, ...] | None = None
    features: str | None = None
    frontend: FrontEnd | None = None

    def __post_init__(self):
        if self.features and self.frontend is None:
            raise ValueError("a features output needs its frontend")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be distinct")


@dataclasses.dataclass(frozen=True)
class ModelContract:
    """Everything the gate needs to check one audio model (see the module docstring)."""

    input: Input
    outputs: Outputs
    version: int = VERSION
    name: str = "model"
    targets: tuple[str, ...] = BACKENDS
    tolerances: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.version != VERSION:
            raise ValueError(f"version must be {VERSION}, not {self.version}")
        for t in self.targets:
            check_choice("targets", t, BACKENDS)

    # --------------------------------------------------------------- reading ---
    @classmethod
    def from_mapping(cls, data: Mapping, source: str = "contract") -> "ModelContract":
        """Build from parsed TOML/JSON, checked against :func:`json_schema` (``jsonschema``) and then by the
        dataclasses' own rules; :class:`ContractError` names the field and ``source``."""
        from .schema import first_problem

        problem = first_problem(json_schema(), data, "", "the contract")
        if problem is not None:
            raise ContractError(f"{source}: {problem}")
        return _build(cls, data, source, "")

    @classmethod
    def read(cls, path: str | Path) -> "ModelContract":
        """A ``.toml`` or ``.json`` contract file, read by :func:`ser_export.io.read_untrusted` (a regular file,
        not a symlink, at most :data:`MAX_BYTES`, UTF-8, no repeated key)."""
        return cls.from_mapping(read_mapping(path), str(path))

    @classmethod
    def from_metadata(cls, meta: Mapping, input_name: str, input_shape, logits: str,
                      targets: tuple[str, ...] = BACKENDS) -> "ModelContract":
        """The contract of a ser_export model, from its ONNX metadata (:mod:`ser_export.export.metadata`)."""
        frontend = FrontEnd.from_dict(meta["frontend"])
        norm = meta["normalization"]
        return cls(Input(input_name, tuple(input_shape), int(meta["sample_rate"]),
                         normalization=Normalization("rms", float(norm["rms_level_db"]), float(norm["min_rms"]))),
                   Outputs(logits, tuple(meta["labels"]), meta.get("features_output"), frontend),
                   name=str(meta.get("arch", "model")), targets=tuple(targets))

    def to_dict(self) -> dict:
        """The contract as plain data, in the layout of a contract file (no graph-only front-end fields)."""
        graph = {f.name for f in dataclasses.fields(FrontEnd) if f.metadata.get(GRAPH_FIELD)}
        out = dataclasses.asdict(self)
        for part in (out["input"], out["outputs"]):
            if part["frontend"] is not None:
                part["frontend"] = {k: v for k, v in part["frontend"].items() if k not in graph}
        return out


# ------------------------------------------------------------------ parsing ---
def read_mapping(path: str | Path) -> dict:
    """The table of a ``.toml`` or ``.json`` contract file (any version), read by
    :func:`ser_export.io.read_untrusted`; a :class:`ContractError` naming the file otherwise."""
    from .io import UntrustedFileError, read_untrusted

    path = Path(path)
    try:
        data = read_untrusted(path, max_bytes=MAX_BYTES)
    except UntrustedFileError as exc:
        raise ContractError(f"{exc.path}: cannot read the contract: {exc.problem}"
                            if not exc.problem.startswith("not valid") else str(exc)) from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: must hold an object (a table)")
    return data


def build(cls, data: Mapping, source: str):
    """``cls`` (a contract dataclass) from ``data`` already valid under its schema (:func:`schema_of`); the
    dataclasses' own rules' ``ValueError`` as a one-line :class:`ContractError` naming the field and ``source``."""
    return _build(cls, data, source, "")


def _is(tp, value) -> bool:
    """Whether ``value`` (valid under :func:`json_schema`) is the JSON form of ``tp`` (picks a union's member)."""
    if dataclasses.is_dataclass(tp) or tp is dict:
        return isinstance(value, Mapping)
    if typing.get_origin(tp) is tuple:
        return isinstance(value, list)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp) and (tp is bool or not isinstance(value, bool))


def _convert(tp, value, where: str, source: str):
    """``value``, already valid under :func:`json_schema`, as ``tp``: dataclasses built, lists as tuples,
    numbers of ``float`` fields as floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        if value is None:
            return None
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        return _convert(next((o for o in options if _is(o, value)), options[0]), value, where, source)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, source, where + ".")
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return tuple(_convert(item, v, f"{where}[{i}]", source) for i, v in enumerate(value))
    if tp is dict:
        return dict(value)
    return float(value) if tp is float else value


def _build(cls, data: Mapping, source: str, prefix: str):
    """``cls`` from ``data`` (valid under :func:`json_schema`); its own rules' ``ValueError`` as a ContractError."""
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: _convert(hints[f.name], data[f.name], prefix + f.name, source)
              for f, _ in declared_fields(cls) if f.name in data}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ContractError(f"{source}: {prefix.rstrip('.') or 'contract'}: {exc}") from None


# ------------------------------------------------------------------- schema ---
def json_schema() -> dict:
    """The JSON schema of a contract file (draft 2020-12), generated from the dataclasses."""
    return schema_of(ModelContract, VERSION)


def schema_of(root, version: int) -> dict:
    """The JSON schema (draft 2020-12) of contract dataclass ``root`` of contract ``version``."""

    def schema(tp) -> dict:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, __import__("types").UnionType):
            return {"anyOf": [schema(a) for a in typing.get_args(tp)]}
        if tp is type(None):
            return {"type": "null"}
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            props, required = {}, []
            for f, need in declared_fields(tp):
                props[f.name] = schema(hints[f.name])
                if need:
                    required.append(f.name)
                elif f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
                    props[f.name]["default"] = list(f.default) if isinstance(f.default, tuple) else f.default
            return {"type": "object", "title": tp.__name__, "description": (tp.__doc__ or "").strip().split("\n")[0],
                    "properties": props, "required": required, "additionalProperties": False}
        if origin is tuple:
            return {"type": "array", "items": schema(typing.get_args(tp)[0])}
        return {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
                bool: {"type": "boolean"}, dict: {"type": "object"}}[tp]

    out = schema(root)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = f"https://ser-export/contract/v{version}"
    return out


__all__ = ["ModelContract", "Input", "Outputs", "FrontEnd", "LogTransform", "Normalization", "ContractError",
           "json_schema", "VERSION", "BACKENDS"]
