"""The declared numeric environment of a build: the same floats on every x86-64 machine with AVX2.

PyTorch, oneDNN, MKL, OpenBLAS and NumPy each pick their CPU kernels by the processor's instruction
set, and PyTorch splits its reductions by the number of intra-op threads, which defaults to the
machine's core count.  ``torch.use_deterministic_algorithms(True)`` makes a run repeatable on one
machine, not across machines: a release trained on an AVX-512 machine is not the bytes an AVX2
machine trains.  The build therefore caps every library at AVX2 and fixes the thread counts
(:data:`ENV`, :data:`INTRA_OP_THREADS`, :data:`INTEROP_THREADS`) before torch and NumPy are first
imported: the command line re-executes itself with that environment (:func:`reexec_if_needed`),
whatever the caller's environment said.

A machine that cannot meet it (not x86-64, or no AVX2/FMA) builds with its own kernels after a
one-line warning, and the manifest records that its bytes are not comparable
(:func:`record`: ``comparable: false`` and the reason).

What the record does not cover: onnxruntime (used for the post-processing's VAD, the checks and the
``int8s`` variant's calibration) has no instruction-set cap; its outputs enter the release only
through thresholded decisions, statistics rounded in the metadata (the variants' figures to 4
significant digits, :func:`parity.release.figure`), and the ``int8s`` files' quantisation scales,
which come from calibrated ranges snapped outward to a 4-significant-bit grid first
(:func:`ser_export.export.calibrate.snap_range`; its module docstring gives the odds that another
machine's kernels still move a byte).
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Mapping, MutableMapping

#: Version of the declared environment (recorded; a change of :data:`ENV` is a new version).
VERSION = 1

#: The environment every build runs under, set before torch and NumPy are imported.
ENV: Mapping[str, str] = {
    # PyTorch's own vectorised kernels (ATen's CPU dispatch): at most AVX2
    "ATEN_CPU_CAPABILITY": "avx2",
    # oneDNN's convolution/matmul kernels: at most AVX2
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # MKL's conditional numerical reproducibility: the AVX2 branch, strict (gemm is bitwise the same
    # for any thread count and alignment); and no wider instructions than AVX2
    "MKL_CBWR": "AVX2,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    # NumPy's OpenBLAS: the Haswell (AVX2 + FMA) kernels, whatever the CPU
    "OPENBLAS_CORETYPE": "Haswell",
    # NumPy's own SIMD dispatch: nothing above x86-64-v3 (AVX2); AVX-512 SVML gives other last bits
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    # one thread everywhere: no reduction is split by the machine's core count
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
}

#: PyTorch's intra-op and inter-op thread counts during the build (``torch.set_num_threads``).
INTRA_OP_THREADS = 1
INTEROP_THREADS = 1

#: Set in the re-executed process: the environment was applied there (its value: :data:`VERSION`).
MARKER = "SER_EXPORT_NUMERIC_ENV"

#: The CPU flags the declared kernels need.
REQUIRED_FLAGS = ("avx2", "fma")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags (Linux's ``/proc/cpuinfo``; ``None`` where it cannot be read)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return None


def unmet(machine: str | None = None, flags: set[str] | None = None) -> str | None:
    """Why this machine cannot run the declared environment (``None``: it can).

    ``machine`` and ``flags`` default to this machine's (``platform.machine()``, ``/proc/cpuinfo``).
    """
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in ("x86_64", "amd64"):
        return f"the CPU is {machine}, not x86-64"
    flags = _cpu_flags() if flags is None else flags
    if flags is None:
        return "the CPU's instruction sets cannot be read (no /proc/cpuinfo)"
    missing = [f for f in REQUIRED_FLAGS if f not in flags]
    if missing:
        return f"the CPU has no {'/'.join(m.upper() for m in missing)}"
    return None


def target_environment(environ: Mapping[str, str], reason: str | None) -> dict[str, str]:
    """``environ`` with the declared variables set (the thread counts alone where ``reason`` says the
    machine cannot meet the rest), and :data:`MARKER`."""
    env = dict(environ)
    threads = {k: v for k, v in ENV.items() if k.endswith(("_NUM_THREADS", "_DYNAMIC"))}
    env.update(ENV if reason is None else threads)
    env[MARKER] = str(VERSION)
    return env


def overridden(environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The caller's variables that the declared environment replaces: ``name -> (theirs, ours)``."""
    return {k: (environ[k], v) for k, v in ENV.items() if k in environ and environ[k] != v}


def reexec_if_needed(environ: MutableMapping[str, str] | None = None, argv: list[str] | None = None) -> None:
    """Re-execute this command under the declared environment unless it already runs under it.

    Must run before torch or NumPy is imported (their kernels are chosen then).  ``argv``: the
    interpreter's own command line (``sys.orig_argv``), re-run as it was given.
    """
    environ = os.environ if environ is None else environ
    if environ.get(MARKER) == str(VERSION):
        return
    reason = unmet()
    env = target_environment(environ, reason)
    changed = overridden(environ) if reason is None else {}
    if changed:
        print("numeric environment: the build sets " + ", ".join(f"{k}={ours} (was {theirs})"
                                                               for k, (theirs, ours) in sorted(changed.items())),
              file=sys.stderr, flush=True)
    argv = list(sys.orig_argv if argv is None else argv)
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def activate() -> None:
    """Set PyTorch's thread counts (inside the build, after torch is imported, before any work)."""
    import torch

    if torch.get_num_threads() != INTRA_OP_THREADS:
        torch.set_num_threads(INTRA_OP_THREADS)
    try:
        if torch.get_num_interop_threads() != INTEROP_THREADS:
            torch.set_num_interop_threads(INTEROP_THREADS)
    except RuntimeError:  # already started by earlier parallel work in this process
        pass


def effective_problems(environ: Mapping[str, str] | None = None) -> list[str]:
    """How this process departs from the declared environment (empty: it runs under it)."""
    import torch

    environ = os.environ if environ is None else environ
    out = [f"{k}={environ.get(k)!r} (declared {v!r})" for k, v in ENV.items() if environ.get(k) != v]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        out.append(f"PyTorch runs its {capability} kernels (declared AVX2)")
    if torch.get_num_threads() != INTRA_OP_THREADS:
        out.append(f"PyTorch uses {torch.get_num_threads()} intra-op threads (declared {INTRA_OP_THREADS})")
    if torch.get_num_interop_threads() != INTEROP_THREADS:
        out.append(f"PyTorch uses {torch.get_num_interop_threads()} inter-op threads (declared {INTEROP_THREADS})")
    return out


def record(environ: Mapping[str, str] | None = None, reason: str | None = None) -> dict:
    """The manifest's ``build.numeric_env``: the declared environment and whether this process ran under it.

    The same dict on every machine that meets it (nothing machine-specific is recorded then); where
    it does not, ``comparable`` is false and ``reason`` says why.
    """
    reason = unmet() if reason is None else reason
    if reason is None:
        problems = effective_problems(environ)
        if problems:
            reason = "the build did not run under the declared environment: " + "; ".join(problems)
    rec = {"version": VERSION, "env": dict(ENV), "intra_op_threads": INTRA_OP_THREADS,
           "interop_threads": INTEROP_THREADS, "comparable": reason is None}
    if reason is not None:
        rec["reason"] = reason
    return rec
