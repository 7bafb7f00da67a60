"""The pinned release toolchain (``constraints/release.txt``) and how the installed one differs from it.

The constraints file is the one source of the pins: pip installs with it (``-c``), the build
checks the installed versions against it before training, and the committed release's test
checks that the manifest records the same versions.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import SerExportError

#: The constraints file, at the root of the checkout ser_export runs from.
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints" / "release.txt"


def read_pins(path: Path = CONSTRAINTS) -> dict[str, SpecifierSet]:
    """``{distribution name (canonical): specifier}`` of every line of a pip constraints file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SerExportError(f"{path}: cannot read the pinned toolchain ({exc.strerror or exc}); run from a "
                             f"ser_export checkout, or pass --allow-unpinned") from None
    pins: dict[str, SpecifierSet] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise SerExportError(f"{path}:{number}: not a pip constraint ({exc})") from None
        if len(req.specifier) != 1 or next(iter(req.specifier)).operator != "==":
            raise SerExportError(f"{path}:{number}: {req.name} must be pinned to one version (==X.Y.Z)")
        pins[canonicalize_name(req.name)] = req.specifier
    return pins


def pinned_version(spec: SpecifierSet) -> str:
    """The version an ``==X.Y.Z`` specifier pins."""
    return next(iter(spec)).version


def same_release(a: str, b: str) -> bool:
    """Whether two version strings name the same release (``v0.8.1`` == ``0.8.1``; ``2.13.0+cpu`` == ``2.13.0``:
    a local build label is not another release)."""
    try:
        va, vb = Version(a.lstrip("v")), Version(b.lstrip("v"))
    except InvalidVersion:
        return a == b
    return va.public == vb.public


def differences(path: Path = CONSTRAINTS) -> list[str]:
    """How the installed distributions differ from the pins, one phrase each (empty: the pinned toolchain)."""
    out = []
    for name, spec in read_pins(path).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            out.append(f"{name} is not installed ({path.name} pins {pinned_version(spec)})")
            continue
        if not same_release(installed, pinned_version(spec)):
            out.append(f"{name} {installed} is installed, {path.name} pins {pinned_version(spec)}")
    return out


def package_version(name: str) -> str:
    """The installed version of distribution ``name`` (``"unknown"`` when it is not installed)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def library_versions() -> dict[str, str]:
    """The versions of the libraries that make a release (the manifest's ``libraries``): Python, ser_export,
    torch, onnx, onnxruntime, onnxsim, NumPy, SciPy, librosa and, once the JS harness is installed,
    onnxruntime-web."""
    import json
    import platform

    import librosa
    import numpy as np
    import onnx
    import onnxruntime
    import onnxsim
    import scipy
    import torch

    from . import __version__
    from .jsenv import HARNESS_DIR

    versions = {"python": platform.python_version(), "ser_export": __version__, "torch": torch.__version__,
                "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "onnxsim": getattr(onnxsim, "__version__", "unknown"), "numpy": np.__version__,
                "scipy": scipy.__version__, "librosa": librosa.__version__}
    pkg = HARNESS_DIR / "node_modules" / "onnxruntime-web" / "package.json"
    if pkg.exists():
        versions["onnxruntime-web"] = json.loads(pkg.read_text())["version"]
    return versions
