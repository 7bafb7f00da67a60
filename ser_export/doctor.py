"""``ser-export doctor``: whether each runtime of the gate can run here, and why not, one line each.

Every line is found, never assumed: the Python requirements from the installed distribution's own
metadata, torch and onnxruntime by importing them, node by :func:`ser_export.jsenv.find_node`, the
harness's install by :func:`ser_export.jsenv.harness_installed`, onnxruntime-web/-node and node's
versions from a running harness (``info``), Chromium by :func:`parity.runners.node.find_chromium` and
its ``--version``, and WebGL and WebGPU as each browser runner's page reports them (its ``info``:
the renderer, the adapter).  The doctor installs nothing (``setup-js`` does).

Examples
--------
>>> diagnosis = diagnose(required=("onnxruntime-python",), runtimes=("onnxruntime-python",))
>>> diagnosis.findings[0].name
'python'
"""
from __future__ import annotations

import dataclasses
import platform
import subprocess
import sys
from importlib import metadata

from . import __version__

#: Runtimes that must run for the doctor to pass: those ``verify`` uses by default, and onnxruntime-web's wasm
#: backend in Chromium (the browser every model is shipped for: a contract's default target).  The others are
#: listed as well; ``--runtimes`` names the ones that must run instead.
DEFAULT_REQUIRED = ("pytorch", "onnxruntime-python", "onnxruntime-web-wasm", "onnxruntime-node", "chromium-wasm")
#: Seconds a harness probe may take before it counts as not running.
PROBE_TIMEOUT_S = 120.0


@dataclasses.dataclass(frozen=True)
class Finding:
    """Whether one thing can run here: ``name`` (``python`` or a runtime), ``ok`` and what was found or why not."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'cannot run'}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """Every finding, and the names that must be ok (``python`` always is one)."""

    version: str
    findings: tuple[Finding, ...]
    required: tuple[str, ...]

    @property
    def failed(self) -> list[str]:
        return [f.name for f in self.findings if not f.ok and (f.name == "python" or f.name in self.required)]

    @property
    def exit_code(self) -> int:
        """0 when everything required can run, else 2 (the gate's "could not check")."""
        return 2 if self.failed else 0

    def lines(self) -> list[str]:
        verdict = (f"doctor: every required runtime can run here ({', '.join(self.required)})" if not self.failed
                   else f"doctor: {', '.join(self.failed)} cannot run here (required: {', '.join(self.required)})")
        return [f"ser_export {self.version}", *(f.line() for f in self.findings), verdict]


def python_finding(dist: str = "ser_export") -> Finding:
    """Python's version and every requirement of the installed ``dist`` (no extra), with its installed version."""
    from packaging.requirements import Requirement

    head = f"python {platform.python_version()} ({sys.executable})"
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return Finding("python", True, f"{head}; {dist} is not installed (a source tree): requirements not checked")
    found, missing = [], []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{req.name} is not installed ({dist} requires {req})")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{req.name} {have} is installed ({dist} requires {req})")
        found.append(f"{req.name} {have}")
    if missing:
        return Finding("python", False, f"{head}; " + "; ".join(missing))
    return Finding("python", True, f"{head}; {', '.join(found)}")


def _pytorch() -> Finding:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return Finding("pytorch", False, f"torch cannot be imported ({type(exc).__name__}: {exc})")
    return Finding("pytorch", True, f"torch {torch.__version__}")


def _onnxruntime_python() -> Finding:
    try:
        import onnxruntime
    except Exception as exc:  # noqa: BLE001
        return Finding("onnxruntime-python", False, f"onnxruntime cannot be imported ({type(exc).__name__}: {exc})")
    providers = onnxruntime.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        return Finding("onnxruntime-python", False, f"onnxruntime {onnxruntime.__version__} has no "
                                                    f"CPUExecutionProvider ({', '.join(providers)})")
    return Finding("onnxruntime-python", True, f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)")


def chromium_version(path: str) -> str:
    """What ``chromium --version`` prints; :class:`OSError` or :class:`subprocess.SubprocessError` when it fails."""
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise subprocess.SubprocessError(f"exit code {proc.returncode}: {proc.stderr.strip()[-200:]}")
    return proc.stdout.strip() or "version unknown"


def _harness_info(name: str) -> dict:
    """What runtime ``name``'s harness reports of itself (``info``: versions, the page's renderer and adapter)."""
    from parity.runners import RUNNERS

    runner = RUNNERS[name](timeout_s=PROBE_TIMEOUT_S)
    try:
        return runner.harness_info()
    finally:
        runner.deactivate()


def _js_runtime(name: str, chromium: tuple[str, str] | str | None) -> Finding:
    """A runtime of the JS harness: node, the harness's install, then (in Chromium) the browser and its page.
    ``chromium``: :func:`_chromium`'s answer (``(path, version)``, or why there is none)."""
    from parity.runners import RunnerError

    from .errors import ToolMissingError
    from .jsenv import HARNESS, find_node, harness_installed

    try:
        tool = find_node()
    except ToolMissingError as exc:
        return Finding(name, False, str(exc))
    node = f"node {tool.version} ({tool.source}: {tool.node})"
    if not harness_installed(HARNESS.root):
        return Finding(name, False, f"{node}; the JS harness is not installed in {HARNESS.install}: run "
                                    f"`ser-export setup-js`")
    if name.startswith("chromium-") and not isinstance(chromium, tuple):
        return Finding(name, False, f"{chromium}")
    try:
        info = _harness_info(name)
    except RunnerError as exc:
        return Finding(name, False, f"{node}; {exc}")
    harness = f"harness {HARNESS.install}"
    if not name.startswith("chromium-"):
        return Finding(name, True, f"{info.get('runtime')} {info.get('version')} in {node}; {harness}")
    path, version = chromium
    where = f"onnxruntime-web {info.get('version')} in {version} ({path}); {harness}"
    if name == "chromium-webgl":
        renderer = info.get("webglRenderer")
        if not renderer or str(renderer).startswith("error"):
            return Finding(name, False, f"Chromium gives no WebGL context ({renderer or 'none'}); {where}")
        return Finding(name, True, f"WebGL renderer {renderer}; {where}")
    if name == "chromium-webgpu":
        adapter = info.get("webgpuAdapter")
        if not adapter or not adapter.get("available"):
            why = "no navigator.gpu" if adapter is None else (adapter.get("error") or "requestAdapter() gave none")
            return Finding(name, False, f"Chromium reports no WebGPU adapter ({why}); {where}")
        described = "/".join(str(adapter.get(k)) for k in ("vendor", "architecture") if adapter.get(k))
        return Finding(name, True, f"WebGPU adapter {described or 'unnamed'}"
                                   + (f" ({adapter['description']})" if adapter.get("description") else "")
                                   + f"; {where}")
    return Finding(name, True, f"{where}; cross-origin isolated: {info.get('crossOriginIsolated')}")


def _chromium() -> tuple[str, str] | str:
    """``(path, version)`` of the Chromium the browser runners use, or one line saying why there is none."""
    from parity.runners import RunnerError
    from parity.runners.node import find_chromium

    try:
        path = find_chromium()
    except RunnerError as exc:
        return str(exc)
    try:
        return path, chromium_version(path)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"chromium at {path} does not run ({exc})"


def diagnose(required: tuple[str, ...] = DEFAULT_REQUIRED, runtimes: tuple[str, ...] | None = None) -> Diagnosis:
    """Find out which runtimes can run here.

    Parameters
    ----------
    required : tuple of str
        Runtime names that must run for :attr:`Diagnosis.exit_code` to be 0 (``python`` always must).
    runtimes : tuple of str, optional
        The runtimes to look at (default: every runner ``verify --runtimes`` takes, in its order).
    """
    from parity.runners import RUNNERS

    unknown = sorted(set(required) - set(RUNNERS))
    if unknown:
        raise ValueError(f"unknown runtimes {unknown}; choose from {', '.join(RUNNERS)}")
    runtimes = tuple(RUNNERS) if runtimes is None else runtimes
    findings = [python_finding()]
    chromium = _chromium() if any(n.startswith("chromium-") for n in runtimes) else None
    for name in runtimes:
        if name == "pytorch":
            findings.append(_pytorch())
        elif name == "onnxruntime-python":
            findings.append(_onnxruntime_python())
        else:
            findings.append(_js_runtime(name, chromium))
    return Diagnosis(version=__version__, findings=tuple(findings), required=tuple(required))
