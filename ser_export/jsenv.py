"""Find a working node/npm and install the JS harness (``js_harness/``).

Node is looked for in this order: ``$SER_EXPORT_NODE``, ``node`` on ``PATH``
(version 18.4 or newer) and the node that the ``nodejs-bin`` wheel ships
(``python -m nodejs``), so a machine with only Python can run the harness.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import ToolMissingError

MIN_NODE = (18, 4)



def _harness_dir() -> Path:
    """``$SER_EXPORT_JS_HARNESS``, else ``js_harness/`` beside the package (a checkout or
    an editable install), else ``./js_harness``."""
    env = os.environ.get("SER_EXPORT_JS_HARNESS")
    if env:
        return Path(env).resolve()
    beside = Path(__file__).resolve().parent.parent / "js_harness"
    return beside if (beside / "package.json").exists() else Path.cwd() / "js_harness"


#: The harness directory.
HARNESS_DIR = _harness_dir()


@dataclasses.dataclass(frozen=True)
class NodeTool:
    """A node executable and how to run npm with it."""

    node: str
    version: str
    source: str  # "env", "path" or "nodejs-bin"
    npm: tuple[str, ...]


def _version(node: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.stdout.strip())
    return tuple(int(x) for x in m.groups()) if m and out.returncode == 0 else None


def _nodejs_bin() -> tuple[str, tuple[str, ...]] | None:
    try:
        import nodejs  # the nodejs-bin wheel
    except ImportError:
        return None
    root = Path(nodejs.__file__).parent
    node = root / "bin" / "node"
    npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if not node.exists():
        return None
    return str(node), (str(node), str(npm_cli))


def find_node() -> NodeTool:
    """The first working node (>= 18.4) with its npm; :class:`ToolMissingError` if none."""
    tried = []
    candidates: list[tuple[str, str, tuple[str, ...] | None]] = []
    env = os.environ.get("SER_EXPORT_NODE")
    if env:
        candidates.append((env, "env", None))
    on_path = shutil.which("node")
    if on_path:
        candidates.append((on_path, "path", None))
    bundled = _nodejs_bin()
    if bundled:
        candidates.append((bundled[0], "nodejs-bin", bundled[1]))
    for node, source, npm in candidates:
        version = _version(node)
        if version is None:
            tried.append(f"{node} (does not run)")
            continue
        if version[:2] < MIN_NODE:
            tried.append(f"{node} (v{'.'.join(map(str, version))} < 18.4)")
            continue
        if npm is None:
            sibling = Path(node).with_name("npm")
            npm = (str(sibling),) if sibling.exists() else ((shutil.which("npm"),) if shutil.which("npm") else ())
            if not npm and bundled:
                npm = bundled[1]
        return NodeTool(node=node, version="v" + ".".join(map(str, version)), source=source, npm=npm)
    raise ToolMissingError(
        "no usable node found (tried: " + (", ".join(tried) or "nothing on PATH") +
        "); install Node.js >= 18.4 or `pip install nodejs-bin`"
    )


def _lock_digest(harness: Path) -> str:
    return hashlib.sha256((harness / "package-lock.json").read_bytes()).hexdigest()


def harness_installed(harness: Path = HARNESS_DIR) -> bool:
    """Whether ``npm ci`` has run for the current lock file."""
    stamp = harness / "node_modules" / ".ser_export_lock"
    return stamp.exists() and stamp.read_text().strip() == _lock_digest(harness)


def setup_harness(harness: Path = HARNESS_DIR, force: bool = False, quiet: bool = False) -> NodeTool:
    """Run ``npm ci`` in the harness (when the lock file changed or ``force``)."""
    tool = find_node()
    if not (harness / "package-lock.json").exists():
        raise ToolMissingError(f"{harness}/package-lock.json is missing; the JS harness cannot be installed")
    if harness_installed(harness) and not force:
        return tool
    if not tool.npm:
        raise ToolMissingError(f"node {tool.node} has no npm beside it; `pip install nodejs-bin` provides one")
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip", npm_config_fund="false",
               npm_config_audit="false", npm_config_update_notifier="false")
    # node from nodejs-bin needs its own bin dir first on PATH for npm's scripts
    env["PATH"] = str(Path(tool.node).parent) + os.pathsep + env.get("PATH", "")
    if not quiet:
        print(f"setting up {harness} with npm ci (node {tool.version} from {tool.source})", file=sys.stderr)
    proc = subprocess.run([*tool.npm, "ci", "--no-audit", "--no-fund"], cwd=harness, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ToolMissingError(f"npm ci failed in {harness}: {' | '.join(tail)}")
    (harness / "node_modules" / ".ser_export_lock").write_text(_lock_digest(harness) + "\n")
    return tool


def ort_web_dir(harness: Path = HARNESS_DIR) -> Path:
    """The installed onnxruntime-web package; :class:`ToolMissingError` if absent."""
    path = harness / "node_modules" / "onnxruntime-web"
    if not (path / "package.json").exists():
        raise ToolMissingError(
            f"onnxruntime-web is not installed in {harness}; run `python -m ser_export setup-js`"
        )
    return path
