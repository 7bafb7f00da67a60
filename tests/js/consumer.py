"""A consumer project: the ser-export-web package packed and installed as a web developer gets it."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ser_export.jsenv import HARNESS_DIR, find_node

PACKAGE_DIR = HARNESS_DIR / "packages" / "ser-export-web"


def _npm(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    tool = find_node()
    env = dict(os.environ, npm_config_fund="false", npm_config_audit="false", npm_config_update_notifier="false",
               PATH=os.pathsep.join([str(Path(tool.node).parent), os.environ.get("PATH", "")]))
    proc = subprocess.run([*tool.npm, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"npm {' '.join(args)} failed: {proc.stderr[-2000:]}"
    return proc


def make_consumer(root: Path) -> Path:
    """An empty project in ``root/app`` with the packed tarball installed (``npm pack``, then ``npm install`` of
    the tarball and of the harness's onnxruntime-web version, which npm's cache holds after ``npm ci``)."""
    packed = _npm(["pack", str(PACKAGE_DIR), "--pack-destination", str(root), "--json"], cwd=root)
    tarball = root / json.loads(packed.stdout)[0]["filename"]
    files = sorted(f["path"] for f in json.loads(packed.stdout)[0]["files"])
    # what a consumer needs: the manifest, the types, the licence, the README and every module of src/
    needed = {"package.json", "index.d.ts", "LICENSE", "README.md"}
    needed |= {p.relative_to(PACKAGE_DIR).as_posix() for p in (PACKAGE_DIR / "src").glob("*.mjs")}
    assert "src/index.mjs" in needed and needed <= set(files), sorted(needed - set(files))
    assert not any(f.startswith(("test", "node_modules")) for f in files), files
    app = root / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "consumer", "private": True, "type": "module"}))
    version = json.loads((HARNESS_DIR / "node_modules" / "onnxruntime-web" / "package.json").read_text())["version"]
    _npm(["install", "--prefer-offline", "--no-audit", "--no-fund", str(tarball), f"onnxruntime-web@{version}"],
         cwd=app)
    return app
