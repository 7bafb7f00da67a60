"""The release's voice-activity model through the stream stages: one instance of :mod:`parity.stream_check`.

A release ships Silero VAD (``vad`` in its manifest) and runs it in Python (:mod:`ser_export.vad`) and in
the package (``postprocess.mjs``), both through the one chunk loop.  The gate checks the release's file
(its checksum the manifest's) by the stream contract the manifest records (``vad.contract``, made by
:meth:`ser_export.vad.VadParams.stream_contract` from the models' parameters, the decision threshold the
release's) on the gate's runtimes (onnxruntime-python and every JS runtime with the ``stream`` capability
whose backend the contract targets), against the TorchScript model of the installed ``silero-vad`` wheel
(``silero_vad.jit``, the package version the manifest names): per-chunk error, drift on the long stream,
decisions and segments, the state after the last chunk between runtimes, judged by
:mod:`parity.stream_judge` under the shipped stream tolerances.  No rule of its own here.

A release whose manifest records no contract (one made before it) is checked by checksum only, and says so.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Mapping

from ser_export.export.model_file import ReleaseFileError, read_release_file
from ser_export.manifest import Manifest
from ser_export.vad import packaged_vad_path
from ser_export.vad_release import release_contract

from . import judge
from .config import RUNNER_BACKENDS, GateConfig, make_runners
from .report import ModelReport
from .runners import Runner, RunnerError
from .runners.torch_module import TorchModuleRunner
from .stream_check import PYTHON, StreamCheck, check_stream

#: The report's name for the release's VAD.
ARCH = "silero-vad"
#: The reference: the TorchScript model beside the ONNX file in the silero-vad wheel.
REFERENCE_FILE = "silero_vad.jit"


def check_release_vad(release_dir: Path, manifest: Manifest, runners: dict[str, Runner], cfg: GateConfig,
                      check: StreamCheck) -> ModelReport:
    """The release's VAD: its checksum, then (with a recorded contract) the stream stages on every stream-capable
    runtime of ``runners`` (onnxruntime-python is added to it when absent: the baseline runtime of the state).
    Could-not-check reasons go to the report's ``error``."""
    vad = manifest.raw["vad"]
    contract = release_contract(manifest)
    mr = ModelReport(arch=ARCH, file=vad["file"], sha256_expected=vad["sha256"],
                     kind="stream" if contract is not None else "file")
    path = Path(release_dir) / vad["file"]
    try:
        mr.sha256_actual = hashlib.sha256(read_release_file(path, release_dir)).hexdigest()
    except ReleaseFileError as exc:
        mr.error = str(exc)
        return mr
    if contract is None:
        mr.results.append(judge.not_applicable(ARCH, "stream", "-", "the manifest records no vad.contract (a "
                                               "release made before it): checked by checksum only"))
        return mr
    if not mr.checksum_ok:  # another file than the one released: nothing to run
        return mr
    if not cfg.runs_once_per_model:
        mr.kind = "file"
        mr.results.append(judge.not_applicable(ARCH, "stream", "-", f"the VAD's streams are judged in shard 1/"
                                               f"{cfg.shard.count}"))
        return mr
    installed = _installed_version()
    if installed != vad["version"]:
        mr.error = (f"{vad['file']}: the release's VAD is silero-vad {vad['version']}, the installed reference "
                    f"({REFERENCE_FILE}) is silero-vad {installed or 'not installed'}: not checked")
        return mr
    if PYTHON not in runners:
        runners[PYTHON] = make_runners(dataclasses.replace(cfg, runtimes=(PYTHON,)))[PYTHON]
    able: dict[str, Runner] = {}
    for name, runner in runners.items():
        backend = RUNNER_BACKENDS.get(name)
        if name == "pytorch" or "stream" not in runner.capabilities:
            continue  # the classifier's PyTorch rebuild; the VAD's reference is its TorchScript file
        if backend is not None and backend not in contract.targets:
            mr.results.append(judge.not_applicable(ARCH, "stream", name, f"the release runs its VAD on "
                                                   f"{', '.join(contract.targets)} (vad.contract.targets), not "
                                                   f"{backend}"))
            continue
        able[name] = runner
    reference = TorchModuleRunner(str(packaged_vad_path().with_name(REFERENCE_FILE)), threads=cfg.threads,
                                  reference=contract.reference)
    check = dataclasses.replace(check, shrink=cfg.shrink and check.shrink, localize=cfg.localize and check.localize,
                                counterexample_dir=cfg.counterexample_dir)
    try:
        check_stream(path, contract, {"pytorch": reference, **able}, "pytorch", _tolerances(cfg), check, mr)
    except RunnerError as exc:
        mr.error = str(exc)
    finally:
        reference.deactivate()
    return mr


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None


def _tolerances(cfg: GateConfig) -> Mapping:
    from ser_export import tolerances as tolerances_mod

    return cfg.tolerances if cfg.tolerances is not None else tolerances_mod.load()
