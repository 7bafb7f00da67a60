"""What a gate run checks: its configuration, its cases and the runners it starts.

The gate's bottom floor: :class:`GateConfig` (runtimes, cases, seed, tolerances, shard),
:class:`Cases` (the rendered waveforms and their librosa reference), :func:`make_runners`,
:func:`baseline_of` and :data:`RUNNER_BACKENDS`.  The other gate modules import from here;
this one imports none of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ser_export.frontend.reference import features_reference

from .cases import N, CaseSpec, draw_cases, render
from .runners import BASELINE, RUNNERS, Runner, RunnerError
from .shard import Shard

if TYPE_CHECKING:
    from ser_export.model_contract import FrontEnd

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

    def reference(self, fe: FrontEnd | None) -> np.ndarray | None:
        """The librosa reference of these cases for the front-end ``fe`` (a model's
        :attr:`~parity.subject.ModelUnderTest.feature_frontend`; ``None``: no reference), computed once per
        front-end: both of our models share it."""
        if fe is None:
            return None
        if fe not in self._references:
            self._references[fe] = features_reference(self.waveforms, fe)
        return self._references[fe]

    @classmethod
    def from_specs(cls, specs: Sequence[CaseSpec], sample_rate: int | None = None, n_samples: int | None = None,
                   rms: float = 1.0, all_in_contract: bool = False) -> "Cases":
        """Render ``specs`` (at our models' rate and length unless given); ``all_in_contract``: the
        model takes any waveform (no normalisation), so every case is checked end to end."""
        kw = {} if sample_rate is None else {"sample_rate": sample_rate, "n_samples": n_samples, "rms": rms}
        empty = np.zeros((0, N if n_samples is None else n_samples), np.float32)  # a shard with no case
        return cls(list(specs), np.stack([render(s, **kw) for s in specs]) if specs else empty,
                   [s.label() for s in specs],
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


def baseline_of(runners: Mapping[str, Runner]) -> str | None:
    """The runner every other is compared with: PyTorch when it runs, else onnxruntime-python."""
    return next((n for n in (BASELINE, "onnxruntime-python") if n in runners), None)


#: The onnxruntime-web backend each runner exercises (the operator lint's columns); others have none.
RUNNER_BACKENDS = {"onnxruntime-web-wasm": "wasm", "chromium-wasm": "wasm", "chromium-webgl": "webgl",
                   "chromium-webgpu": "webgpu"}
