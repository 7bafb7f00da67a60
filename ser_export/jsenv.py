"""Find a working node/npm and install the JS harness.

The harness (the runners, the Chromium page, ``lib/``, the demo, the ``ser-export-web`` package
source, ``package.json`` and its lock file) is found in this order, never under the current
directory:

1. ``$SER_EXPORT_JS_HARNESS``: a harness folder, installed in place;
2. a clone's ``js_harness/`` (beside the package, with the checkout's ``pyproject.toml``):
   ``npm ci`` installs in place, as the tests and CI expect;
3. the wheel's copy (package data ``ser_export/js_harness``), which is never written to: its
   runtime npm dependencies (``npm ci --omit=dev`` from the shipped lock file) go into a per-user
   cache keyed by the lock file's hash, ``$SER_EXPORT_JS_DIR`` or
   ``${XDG_CACHE_HOME:-~/.cache}/ser_export/js/<hash>``, and the runners run from a copy of the
   shipped sources beside them (``harness-<hash of the sources>/``, its ``node_modules`` a link
   to the cache's), so two versions of the tool with one lock file share the install.

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
import tempfile
from pathlib import Path

from .errors import ToolMissingError

MIN_NODE = (18, 4)

#: The checkout this package runs from, if it is one (an editable install or ``python -m`` in a clone).
_CHECKOUT = Path(__file__).resolve().parent.parent
#: Where the wheel keeps the harness's sources (pyproject.toml maps ``js_harness/`` there).
_PACKAGED = Path(__file__).resolve().parent / "js_harness"
#: Marks a ``node_modules`` that ``npm ci`` filled from the lock file whose sha256 it holds.
_STAMP = ".ser_export_lock"


@dataclasses.dataclass(frozen=True)
class Harness:
    """Where the JS harness's sources are, where ``npm ci`` installs and where the runners run.

    Parameters
    ----------
    sources : Path
        The harness as shipped (``package.json``, the lock file, the runners).
    root : Path
        The folder the runners run from, with ``node_modules`` beside them (``sources`` itself when
        installed in place).
    install : Path
        The folder ``npm ci`` runs in (holds ``node_modules``).
    omit_dev : bool
        Whether ``npm ci`` leaves the devDependencies out (the per-user cache: only what runs).
    """

    sources: Path
    root: Path
    install: Path
    omit_dev: bool

    @property
    def in_place(self) -> bool:
        return self.root == self.sources

    @classmethod
    def in_folder(cls, folder: Path) -> "Harness":
        """A harness installed in place in ``folder`` (a clone's ``js_harness/``)."""
        folder = Path(folder)
        return cls(sources=folder, root=folder, install=folder, omit_dev=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources_digest(sources: Path) -> str:
    """sha256 over the shipped files' paths and bytes (what a copy in the cache must hold)."""
    h = hashlib.sha256()
    for path in sorted(p for p in sources.rglob("*") if p.is_file() and "node_modules" not in p.parts
                       and "__pycache__" not in p.parts):
        h.update(path.relative_to(sources).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def cache_dir(lock_digest: str) -> Path:
    """The per-user install of the npm dependencies for a lock file: ``$SER_EXPORT_JS_DIR``, else
    ``${XDG_CACHE_HOME:-~/.cache}/ser_export/js/<first 16 hex digits of its sha256>``."""
    env = os.environ.get("SER_EXPORT_JS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root).expanduser().resolve() / "ser_export" / "js" / lock_digest[:16]


def locate() -> Harness:
    """The harness this process uses (see the module's docstring for the order)."""
    env = os.environ.get("SER_EXPORT_JS_HARNESS")
    if env:
        return Harness.in_folder(Path(env).resolve())
    clone = _CHECKOUT / "js_harness"
    if (clone / "package-lock.json").is_file() and (_CHECKOUT / "pyproject.toml").is_file():
        return Harness.in_folder(clone)
    lock = _PACKAGED / "package-lock.json"
    if not lock.is_file():  # a broken install: setup_harness names the missing file
        return Harness.in_folder(_PACKAGED)
    install = cache_dir(_digest(lock))
    return Harness(sources=_PACKAGED, root=install / f"harness-{_sources_digest(_PACKAGED)[:16]}", install=install,
                   omit_dev=True)


#: The harness this process uses, and the folder its runners run from (``HARNESS.root``).
HARNESS = locate()
HARNESS_DIR = HARNESS.root


def _harness(root: Path) -> Harness:
    """The :class:`Harness` whose runners run from ``root``: :data:`HARNESS`, or one installed in place."""
    return HARNESS if Path(root) == HARNESS.root else Harness.in_folder(root)


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


def _modules_ready(folder: Path) -> bool:
    """Whether ``folder/node_modules`` was filled by ``npm ci`` from ``folder``'s lock file as it is now."""
    stamp, lock = folder / "node_modules" / _STAMP, folder / "package-lock.json"
    return stamp.is_file() and lock.is_file() and stamp.read_text().strip() == _digest(lock)


def harness_installed(harness: Path = HARNESS_DIR) -> bool:
    """Whether the runners in ``harness`` can run: ``npm ci`` ran for the lock file they ship with."""
    return (Path(harness) / "runner.mjs").is_file() and _modules_ready(Path(harness))


def setup_harness(harness: Path = HARNESS_DIR, force: bool = False, quiet: bool = False) -> NodeTool:
    """Install the npm dependencies of the harness whose runners run from ``harness`` (when its lock file
    changed, or ``force``); for the wheel's harness, into the per-user cache, with a copy of its sources.

    Returns the node used; :class:`ToolMissingError` (one line) when there is none or ``npm ci`` fails.
    """
    h = _harness(harness)
    tool = find_node()
    if not (h.sources / "package-lock.json").exists():
        raise ToolMissingError(f"{h.sources}/package-lock.json is missing; the JS harness cannot be installed")
    if harness_installed(h.root) and not force:
        return tool
    import fcntl  # one process installs, the others wait (tox's parallel envs, the per-user cache)

    if h.in_place:  # the lock lives outside the checkout: npm ci replaces node_modules, git ignores nothing else
        key = hashlib.sha256(str(h.install.resolve()).encode()).hexdigest()[:16]
        with open(Path(tempfile.gettempdir()) / f"ser_export-js-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if force or not harness_installed(h.root):
                _npm_ci(h, tool, quiet)
        return tool
    h.install.mkdir(parents=True, exist_ok=True)
    with open(h.install / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not (_modules_ready(h.install) and _digest(h.install / "package-lock.json")
                         == _digest(h.sources / "package-lock.json")):
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(h.sources / name, h.install / name)
            _npm_ci(h, tool, quiet)
        if not h.root.is_dir():
            _copy_sources(h)
    return tool


def _npm_ci(h: Harness, tool: NodeTool, quiet: bool) -> None:
    if not tool.npm:
        raise ToolMissingError(f"node {tool.node} has no npm beside it; `pip install nodejs-bin` provides one")
    env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip", npm_config_fund="false",
               npm_config_audit="false", npm_config_update_notifier="false")
    # node from nodejs-bin needs its own bin dir first on PATH for npm's scripts
    env["PATH"] = str(Path(tool.node).parent) + os.pathsep + env.get("PATH", "")
    args = ["ci", "--no-audit", "--no-fund"] + (["--omit=dev"] if h.omit_dev else [])
    if not quiet:
        print(f"setting up the JS harness in {h.install} with npm {' '.join(args)} (node {tool.version} from "
              f"{tool.source}; once per lock file)", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([*tool.npm, *args], cwd=h.install, env=env, capture_output=True, text=True,
                              timeout=900)
    except subprocess.TimeoutExpired:
        raise ToolMissingError(f"npm ci in {h.install} did not finish within 900 s") from None
    if proc.returncode != 0:
        tail = [line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:]]
        raise ToolMissingError(f"npm ci failed in {h.install}: {' | '.join(tail)}")
    (h.install / "node_modules").mkdir(exist_ok=True)  # npm makes none for a lock file without packages
    (h.install / "node_modules" / _STAMP).write_text(_digest(h.install / "package-lock.json") + "\n")


def _copy_sources(h: Harness) -> None:
    """``h.root``: the shipped sources and a link to the install's ``node_modules``, made whole, then renamed."""
    tmp = Path(tempfile.mkdtemp(prefix=".harness-", dir=h.install))
    try:
        shutil.copytree(h.sources, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules",
                                                                                           "__pycache__"))
        os.symlink(os.path.relpath(h.install / "node_modules", tmp), tmp / "node_modules")
        os.replace(tmp, h.root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not h.root.is_dir():
            raise


def ensure_harness(harness: Path = HARNESS_DIR) -> None:
    """The harness installed, by :func:`setup_harness` with one progress line the first time it is used;
    :class:`ToolMissingError` saying what to run when it cannot be (no node, no npm registry)."""
    if harness_installed(harness):
        return
    try:
        setup_harness(harness)
    except ToolMissingError as exc:
        raise ToolMissingError(f"the JS harness is not installed ({exc}); run `ser-export setup-js` where the npm "
                               f"registry can be reached, or set SER_EXPORT_JS_DIR to a folder where it ran") from None


def ort_web_dir(harness: Path = HARNESS_DIR) -> Path:
    """The installed onnxruntime-web package (installing the harness the first time);
    :class:`ToolMissingError` if absent."""
    ensure_harness(harness)
    path = Path(harness) / "node_modules" / "onnxruntime-web"
    if not (path / "package.json").exists():
        raise ToolMissingError(
            f"onnxruntime-web is not installed in {harness}; run `ser-export setup-js`"
        )
    return path
