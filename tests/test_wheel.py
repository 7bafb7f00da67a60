"""The wheel is the whole tool (issue 26): built from the tree, it ships the JS harness's sources and never
node_modules; its metadata matches the code; the sdist builds the same wheel; installed into a fresh venv
outside the repository with the pinned toolchain, it sets up its harness in a per-user cache and verifies
a model made by plain ``torch.onnx.export`` from an unrelated folder, and its doctor lists every runtime.

One venv serves every check of the module (building it is most of the module's time: measured in the
closing note of issue 26)."""
from __future__ import annotations

import ast
import csv
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.e2e import ROOT
from tests.parity import foreign_models

RUNTIMES = "onnxruntime-python,onnxruntime-web-wasm,onnxruntime-node"
FAST = ["--examples", "8", "--no-shrink"]


def _tracked() -> list[str]:
    """The checkout's files as a fresh clone would hold them (tracked, or new and not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return sorted(p for p in out.split("\0") if p and (ROOT / p).is_file())


def _clean_env(**extra) -> dict:
    """The environment of a user outside the repository: none of ours (SER_EXPORT_*, a venv, PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SER_EXPORT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONWARNINGS": "ignore", **extra}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the checkout's files, with installed node_modules where a clone has them (never shipped)."""
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked():
        if rel.startswith("saved_models/"):
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    for decoy in ("js_harness/node_modules/onnxruntime-web/package.json",
                  "js_harness/packages/ser-export-web/node_modules/x/index.mjs"):
        (src / decoy).parent.mkdir(parents=True, exist_ok=True)
        (src / decoy).write_text("{}\n")
    return src


def _pip_wheel(source: Path, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=900, cwd=out.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tree, tmp_path_factory) -> Path:
    return _pip_wheel(tree, tmp_path_factory.mktemp("dist"))


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode())


def test_the_wheel_ships_the_harness_sources_and_never_node_modules(wheel):
    names = _names(wheel)
    harness = {f"ser_export/{p}" for p in _tracked() if p.startswith("js_harness/")
               and not p.startswith("js_harness/test/")}
    assert "ser_export/js_harness/browser/page.html" in harness and "ser_export/js_harness/package-lock.json" in harness
    assert not harness - names, sorted(harness - names)
    assert not [n for n in names if "node_modules" in n or n.startswith("ser_export/js_harness/test/")]
    code = {p for p in _tracked() if p.endswith(".py") and p.split("/")[0] in ("ser_export", "parity")}
    assert not code - names, sorted(code - names)  # every module, in every (sub)package pyproject.toml lists


def _imported_top_level(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_the_metadata_matches_the_code(wheel):
    meta = _metadata(wheel)
    from ser_export import __version__

    assert meta["Version"] == __version__
    floor = SpecifierSet(meta["Requires-Python"])
    imported = _imported_top_level("ser_export") | _imported_top_level("parity")
    assert "tomllib" in imported and "3.10.13" not in floor and "3.11.0" in floor, meta["Requires-Python"]
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    runtime = {r.name for r in reqs if r.marker is None}
    assert "hypothesis" in runtime and "hypothesis" in imported  # parity/cases.py draws the cases with it
    test_extra = [r.name for r in reqs if r.marker is not None and r.marker.evaluate({"extra": "test"})]
    module = {"pyyaml": "yaml"}
    assert test_extra and not {module.get(n, n) for n in test_extra} & imported, test_extra  # test tools only


def _record(wheel: Path) -> dict[str, str]:
    """Path -> sha256 of every file in the wheel but its RECORD."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        rows = csv.reader(io.StringIO(z.read(name).decode()))
        return {row[0]: row[1] for row in rows if row and row[0] != name}


def test_the_sdist_builds_the_same_wheel(tree, wheel, tmp_path):
    sdist_dir = tmp_path / "sdist"
    proc = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
                                                 "print(b.build_sdist(sys.argv[1]))", str(sdist_dir)],
                          cwd=tree, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (sdist,) = sdist_dir.glob("*.tar.gz")
    import tarfile

    with tarfile.open(sdist) as t:
        members = t.getnames()
    assert not [m for m in members if "node_modules" in m], members
    again = _pip_wheel(sdist, tmp_path / "from-sdist")
    assert _record(again) == _record(wheel)


def _python310() -> str | None:
    found = sorted(glob.glob("/root/.pyenv/versions/3.10*/bin/python3.10")) + [shutil.which("python3.10")]
    for exe in filter(None, found):
        if subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                          capture_output=True).returncode == 0:
            return exe
    return None


def test_a_python_without_tomllib_refuses_the_wheel_cleanly(wheel, tmp_path):
    exe = _python310()
    if exe is None:
        pytest.skip("no Python 3.10 here (test_the_metadata_matches_the_code checks Requires-Python)")
    subprocess.run([exe, "-m", "venv", str(tmp_path / "py310")], check=True, timeout=300)
    proc = subprocess.run([str(tmp_path / "py310" / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300, env=_clean_env())
    assert proc.returncode != 0 and "requires a different Python" in proc.stderr, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "py310" / "bin" / "ser-export").exists()


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    """The wheel in a fresh venv (no system site-packages) with the pinned toolchain, its harness set up in
    ``XDG_CACHE_HOME`` by ``ser-export setup-js`` from an unrelated folder; the foreign models there."""
    root = tmp_path_factory.mktemp("user")
    env_dir, home, cache = root / "venv", root / "elsewhere", root / "cache"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    env = _clean_env(XDG_CACHE_HOME=str(cache), PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "-c",
                           str(ROOT / "constraints" / "release.txt"), str(wheel)],
                          capture_output=True, text=True, timeout=2400, env=env, cwd=home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    proc = subprocess.run([str(env_dir / "bin" / "ser-export"), "setup-js"], capture_output=True, text=True,
                          timeout=1200, env=env, cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lock = hashlib.sha256((ROOT / "js_harness" / "package-lock.json").read_bytes()).hexdigest()[:16]
    paths = foreign_models.build(home / "models")
    foreign_models.set_pad_mode(paths["kws"], home / "models" / "kws_constant.onnx")
    return {"bin": env_dir / "bin", "home": home, "env": env, "install": cache / "ser_export" / "js" / lock,
            "setup": proc, "models": home / "models"}


def _run(venv, *args, timeout=900, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv["bin"] / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                          env={**venv["env"], **env}, cwd=venv["home"])


def test_setup_js_installs_the_runtime_packages_into_the_user_cache(venv):
    install = venv["install"]
    assert str(install) in venv["setup"].stdout, venv["setup"].stdout
    modules = {p.name for p in (install / "node_modules").iterdir()}
    assert {"onnxruntime-web", "onnxruntime-node", "playwright-core"} <= modules and "typescript" not in modules
    proc = _run(venv, "python", "-c", "from ser_export.jsenv import HARNESS; print(HARNESS.sources); "
                                      "print(HARNESS.root)")
    sources, root = map(Path, proc.stdout.split())
    assert "site-packages" in sources.parts and root.parent == install and ROOT not in root.parents, proc.stdout
    proc = _run(venv, "ser-export", "setup-js")
    assert proc.returncode == 0 and "setting up" not in proc.stderr, proc.stderr  # once per lock file


def test_verify_a_foreign_model_from_an_unrelated_folder(venv):
    models = venv["models"]
    report = venv["home"] / "report.json"
    proc = _run(venv, "ser-export", "verify", str(models / "kws.onnx"), "--contract", str(models / "kws.toml"),
                "--runtimes", RUNTIMES, "--report", str(report), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    version = _run(venv, "ser-export", "--version").stdout.split()[-1]
    assert data["tool"] == {"name": "ser_export", "version": version}
    assert set(RUNTIMES.split(",")) <= set(data["runners"]) and "setting up" not in proc.stderr
    proc = _run(venv, "ser-export", "verify", str(models / "kws_constant.onnx"), "--contract",
                str(models / "kws.toml"), "--runtimes", RUNTIMES, *FAST)
    assert proc.returncode == 1 and "logmel_vs_librosa" in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.browser
def test_verify_a_foreign_model_in_chromium_from_an_unrelated_folder(venv):
    models = venv["models"]
    proc = _run(venv, "ser-export", "verify", str(models / "kws.onnx"), "--contract", str(models / "kws.toml"),
                "--runtimes", "onnxruntime-python,chromium-wasm", *FAST, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_doctor_lists_every_runtime_and_without_chromium_exits_2(venv):
    from parity.runners import RUNNERS

    proc = _run(venv, "ser-export", "doctor", "--runtimes", RUNTIMES)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line.split(":")[0] for line in lines[1:-1]] == ["python", *RUNNERS], lines
    assert f"harness {venv['install']}" in next(line for line in lines if line.startswith("onnxruntime-node:"))
    proc = _run(venv, "ser-export", "doctor", PATH=str(venv["bin"]))  # no chromium on PATH, SER_EXPORT_* unset
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == len(RUNNERS) + 3, lines  # the version, python, one line per runtime, the verdict
    assert next(line for line in lines if line.startswith("chromium-wasm:")).startswith(
        "chromium-wasm: cannot run: chromium not found"), lines
    assert lines[-1].startswith("doctor: chromium-wasm cannot run here"), lines


def test_first_use_without_the_registry_says_what_to_run(venv, tmp_path):
    models = venv["models"]
    proc = _run(venv, "ser-export", "verify", str(models / "kws.onnx"), "--contract", str(models / "kws.toml"),
                "--runtimes", "onnxruntime-node", *FAST, SER_EXPORT_JS_DIR=str(tmp_path / "js"),
                npm_config_registry="http://127.0.0.1:9/", npm_config_cache=str(tmp_path / "npm"),
                npm_config_fetch_retries="0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"setting up the JS harness in {tmp_path / 'js'}" in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "run `ser-export setup-js`" in errors[0], proc.stderr
