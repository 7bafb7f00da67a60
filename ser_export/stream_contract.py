"""The declared contract of a streaming, stateful audio model (contract version 2).

A voice-activity detector, a wake-word spotter or a streaming encoder takes its audio in
chunks and carries a state from one chunk to the next.  A :class:`StreamContract` says
how it is driven, as data:

- ``signal``: the streamed input (``sample_rate``, ``chunk`` new samples per call,
  ``context`` samples carried from before the chunk, ``dtype``), cut by the one chunking
  rule, :func:`ser_export.streaming.stream_windows`;
- ``states``: each state input, the output that gives its next value, its ``shape`` (a
  named axis is the batch axis, fed as 1) and its initial value;
- ``constants``: inputs fed the same value on every chunk (``sr = 16000`` as int64);
- ``scores``: per-chunk outputs judged against the baseline, each with an optional
  decision rule (on at ``score >= threshold``, off again below ``threshold - hysteresis``);
  ``features``: other per-chunk outputs judged the same way, without decisions;
- ``sequence`` (optional): the model's whole-sequence form (another file, or the same
  file) given every window at once along the signal's first axis; its outputs must equal
  the streamed ones;
- ``variant`` (optional): the float ``parent`` file the model was made from and the tolerance
  class it is judged against it under;
- ``reference``: how the ``--torch`` reference is driven: ``"self"`` (it keeps its own
  state and context and gets only each chunk's samples, as ``silero_vad.jit`` does) or
  ``"inputs"`` (called with the declared inputs, in order, returning the declared outputs).

``version = 2`` selects this layout; version 1 files are :class:`ser_export.model_contract.ModelContract`
and keep working unchanged (:func:`read_contract` reads either).  :meth:`StreamContract.to_wire`
gives the protocol dict every runner gets (``Runner.run_stream``).  A wrong, unknown or missing
field is a one-line :class:`~ser_export.model_contract.ContractError` naming the field and the file;
``python -m ser_export contract --schema --schema-version 2`` prints the JSON schema (:func:`json_schema`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

from .contract import check_choice, check_positive
from .model_contract import BACKENDS, ContractError, ModelContract, build, read_mapping, schema_of

VERSION = 2
#: dtypes of a streamed signal or a state (float16 values are converted in and out; results are float32).
FLOAT_DTYPES = ("float32", "float16")
#: dtypes of a constant input.
CONSTANT_DTYPES = ("int64", "int32", "float32")
#: How the ``--torch`` reference is driven.
DRIVES = ("self", "inputs")


@dataclasses.dataclass(frozen=True)
class Signal:
    """The streamed input: ``chunk`` new samples per call at ``sample_rate`` Hz, with the ``context`` samples
    before them prepended (zeros before the stream starts); the model input is ``[1, context + chunk]``."""

    name: str
    sample_rate: int
    chunk: int
    context: int = 0
    dtype: str = "float32"

    def __post_init__(self):
        check_choice("dtype", self.dtype, FLOAT_DTYPES)
        check_positive("sample_rate", self.sample_rate)
        check_positive("chunk", self.chunk)
        if self.context < 0:
            raise ValueError(f"context must be >= 0, not {self.context}")


@dataclasses.dataclass(frozen=True)
class State:
    """A state input, fed back from ``output`` after every chunk; ``shape`` with its batch axis named (a
    string such as ``"batch"``, fed as 1); every element ``init`` at the start of a stream."""

    name: str
    output: str
    shape: tuple[int | str, ...]
    init: float = 0.0
    dtype: str = "float32"

    def __post_init__(self):
        check_choice("dtype", self.dtype, FLOAT_DTYPES)
        if any(isinstance(d, int) and d < 1 for d in self.shape):
            raise ValueError(f"shape must hold positive sizes or one named batch axis, not {list(self.shape)}")
        if sum(isinstance(d, str) for d in self.shape) > 1:
            raise ValueError(f"shape may name one axis (the batch axis), not {list(self.shape)}")

    @property
    def dims(self) -> list[int]:
        """The shape fed for one stream (the batch axis as 1)."""
        return [1 if isinstance(d, str) else int(d) for d in self.shape]


@dataclasses.dataclass(frozen=True)
class Constant:
    """An input fed ``value`` (as ``dtype``, shape ``shape``: ``[]`` for a scalar) on every chunk."""

    name: str
    dtype: str
    value: int | float
    shape: tuple[int, ...] = ()

    def __post_init__(self):
        check_choice("dtype", self.dtype, CONSTANT_DTYPES)
        if self.dtype != "float32" and not isinstance(self.value, int):
            raise ValueError(f"value of an {self.dtype} constant must be an integer, not {self.value!r}")


@dataclasses.dataclass(frozen=True)
class Decision:
    """A score's decision: on once the score is ``>= threshold``, off again once it is
    ``< threshold - hysteresis`` (``hysteresis = 0``: on exactly while ``>= threshold``)."""

    threshold: float
    hysteresis: float = 0.0

    def __post_init__(self):
        if self.hysteresis < 0:
            raise ValueError(f"hysteresis must be >= 0, not {self.hysteresis}")


@dataclasses.dataclass(frozen=True)
class Score:
    """A per-chunk score output (e.g. a speech probability) and, optionally, the decision made from it."""

    name: str
    decision: Decision | None = None


@dataclasses.dataclass(frozen=True)
class Sequence:
    """The model's whole-sequence form: ``file`` (next to the model; empty: the model itself) given every
    window of a stream at once, stacked along the first axis of input ``signal`` (states at their initial
    values, constants as declared); each of ``outputs`` (its output names, one value per chunk along its
    first axis) must equal the streamed output of the same position in :attr:`StreamContract.outputs`."""

    outputs: tuple[str, ...]
    file: str = ""
    signal: str = ""

    def __post_init__(self):
        if not self.outputs:
            raise ValueError("outputs must name at least one output of the whole-sequence form")
        if self.file and (Path(self.file).name != self.file or self.file in (".", "..")):
            raise ValueError(f"file must be a file name next to the model, not {self.file!r}")


@dataclasses.dataclass(frozen=True)
class Variant:
    """The model is a variant (reduced precision, another export, an edited copy) of ``parent`` (a file next to
    the model), judged against it on the same streams under stream tolerance class ``tolerance_class``
    (``tolerances.json``'s ``classes``, e.g. ``fp16_stream``); ``constants``: inputs the parent takes beyond
    the variant's (``silero_vad.onnx``'s ``sr`` for ``silero_vad_half.onnx``, which has none)."""

    parent: str
    tolerance_class: str
    constants: tuple[Constant, ...] = ()

    def __post_init__(self):
        if Path(self.parent).name != self.parent or self.parent in ("", ".", ".."):
            raise ValueError(f"parent must be a file name next to the model, not {self.parent!r}")


@dataclasses.dataclass(frozen=True)
class Reference:
    """How the ``--torch`` reference is driven.

    ``drive = "self"``: it keeps its own state and context; each call gets one chunk's samples
    (``[1, chunk]``) and then ``arguments`` as plain numbers (``arguments = [16000]``:
    ``model(chunk, 16000)``); method ``reset`` is called before each stream (a module that lacks it
    cannot be checked: its state would carry between streams; ``reset = ""``: none to call).
    ``drive = "inputs"``: each call gets the declared inputs in order (signal window, states,
    constants) and returns ``returns`` (default: the outputs, then the state outputs).
    """

    drive: str = "self"
    arguments: tuple[int | float, ...] = ()
    reset: str = "reset_states"
    returns: tuple[str, ...] = ()

    def __post_init__(self):
        check_choice("drive", self.drive, DRIVES)


@dataclasses.dataclass(frozen=True)
class StreamContract:
    """Everything the gate needs to check one streaming model chunk by chunk (see the module docstring)."""

    version: int
    signal: Signal
    scores: tuple[Score, ...]
    name: str = "stream-model"
    states: tuple[State, ...] = ()
    constants: tuple[Constant, ...] = ()
    features: tuple[str, ...] = ()
    sequence: Sequence | None = None
    variant: Variant | None = None
    reference: Reference = Reference()
    targets: tuple[str, ...] = BACKENDS
    tolerances: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.version != VERSION:
            raise ValueError(f"version must be {VERSION}, not {self.version}")
        for t in self.targets:
            check_choice("targets", t, BACKENDS)
        if not self.scores:
            raise ValueError("scores must name at least one per-chunk output")
        inputs = [self.signal.name] + [s.name for s in self.states] + [c.name for c in self.constants]
        twice = sorted({n for n in inputs if inputs.count(n) > 1})
        if twice:
            raise ValueError(f"input {twice[0]!r} is declared twice")
        outputs = self.outputs + [s.output for s in self.states]
        twice = sorted({n for n in outputs if outputs.count(n) > 1})
        if twice:
            raise ValueError(f"output {twice[0]!r} is declared twice")
        if self.sequence is not None and len(self.sequence.outputs) > len(self.outputs):
            raise ValueError(f"sequence.outputs has {len(self.sequence.outputs)} names for "
                             f"{len(self.outputs)} streamed outputs")

    @property
    def outputs(self) -> list[str]:
        """Every per-chunk output recorded: the scores, then the features."""
        return [s.name for s in self.scores] + list(self.features)

    @property
    def decisions(self) -> dict[str, Decision]:
        """The decision rule of each score that has one, by output name."""
        return {s.name: s.decision for s in self.scores if s.decision is not None}

    def parent_wire(self) -> dict:
        """The protocol the variant's parent is run with: :meth:`to_wire` and the variant's extra constants."""
        wire = self.to_wire()
        if self.variant is not None:
            wire["constants"] += [{"name": c.name, "dtype": c.dtype, "dims": list(c.shape), "value": c.value}
                                  for c in self.variant.constants]
        return wire

    def to_wire(self) -> dict:
        """The protocol every runner gets (``parity.runners.base.Runner.run_stream``), JSON-serialisable."""
        return {
            "signal": {"name": self.signal.name, "chunk": self.signal.chunk, "context": self.signal.context,
                       "dtype": self.signal.dtype},
            "states": [{"input": s.name, "output": s.output, "dims": s.dims, "dtype": s.dtype, "init": s.init}
                       for s in self.states],
            "constants": [{"name": c.name, "dtype": c.dtype, "dims": list(c.shape), "value": c.value}
                          for c in self.constants],
            "outputs": self.outputs,
        }

    @classmethod
    def from_mapping(cls, data: Mapping, source: str = "contract") -> "StreamContract":
        """Build from parsed TOML/JSON, checked against :func:`json_schema` and then by the dataclasses' rules."""
        from .schema import first_problem

        problem = first_problem(json_schema(), data, "", "the contract")
        if problem is not None:
            raise ContractError(f"{source}: {problem}")
        return build(cls, data, source)

    def to_dict(self) -> dict:
        """The contract as plain data, in the layout of a contract file."""
        return dataclasses.asdict(self)


def json_schema() -> dict:
    """The JSON schema of a version 2 (streaming) contract file (draft 2020-12), generated from the dataclasses."""
    return schema_of(StreamContract, VERSION)


def read_contract(path: str | Path) -> ModelContract | StreamContract:
    """A contract file of either version: ``version = 2`` is a :class:`StreamContract`, anything else is read
    as version 1 (:class:`~ser_export.model_contract.ModelContract`, unchanged)."""
    data = read_mapping(path)
    if data.get("version") == VERSION:
        return StreamContract.from_mapping(data, str(path))
    return ModelContract.from_mapping(data, str(path))


__all__ = ["StreamContract", "Signal", "State", "Constant", "Decision", "Score", "Sequence", "Variant", "Reference",
           "json_schema", "read_contract", "VERSION"]
