"""Where the JS harness is found and installed (ser_export/jsenv.py): a clone's js_harness/ in place, the
wheel's copy into a per-user cache keyed by its lock file, never anything under the current directory."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from ser_export import jsenv
from ser_export.errors import ToolMissingError


def _harness_sources(folder, dependencies=None):
    """A harness folder: package.json, its lock file (``dependencies``: name -> (version, tarball URL)) and a
    runner that prints where its node_modules are."""
    folder.mkdir(parents=True)
    deps = {name: version for name, (version, _) in (dependencies or {}).items()}
    (folder / "package.json").write_text(json.dumps({"name": "h", "version": "1.0.0", "private": True,
                                                     "dependencies": deps}))
    packages = {"": {"name": "h", "version": "1.0.0", "dependencies": deps}}
    for name, (version, url) in (dependencies or {}).items():
        packages[f"node_modules/{name}"] = {"version": version, "resolved": url}
    (folder / "package-lock.json").write_text(json.dumps({"name": "h", "version": "1.0.0", "lockfileVersion": 3,
                                                          "requires": True, "packages": packages}))
    (folder / "runner.mjs").write_text("console.log('runner');\n")
    (folder / "lib").mkdir()
    (folder / "lib" / "jsonl.mjs").write_text("export const x = 1;\n")
    return folder


def _wheel_layout(monkeypatch, tmp_path, **deps):
    """jsenv as installed from the wheel: no checkout beside the package, the sources as package data."""
    site = tmp_path / "site-packages"
    packaged = _harness_sources(site / "ser_export" / "js_harness", deps.get("dependencies"))
    monkeypatch.setattr(jsenv, "_CHECKOUT", site)
    monkeypatch.setattr(jsenv, "_PACKAGED", packaged)
    for name in ("SER_EXPORT_JS_HARNESS", "SER_EXPORT_JS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return packaged


def test_a_clone_uses_its_own_js_harness_in_place(monkeypatch):
    monkeypatch.delenv("SER_EXPORT_JS_HARNESS", raising=False)
    h = jsenv.locate()
    assert h.in_place and h.root == jsenv._CHECKOUT / "js_harness" and not h.omit_dev


def test_the_wheel_installs_into_the_cache_keyed_by_its_lock_file(monkeypatch, tmp_path):
    packaged = _wheel_layout(monkeypatch, tmp_path)
    key = hashlib.sha256((packaged / "package-lock.json").read_bytes()).hexdigest()[:16]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    h = jsenv.locate()
    assert h.install == tmp_path / "xdg" / "ser_export" / "js" / key and h.omit_dev and not h.in_place
    assert h.root.parent == h.install and h.root.name.startswith("harness-")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert jsenv.locate().install == tmp_path / "home" / ".cache" / "ser_export" / "js" / key
    monkeypatch.setenv("SER_EXPORT_JS_DIR", str(tmp_path / "mine"))
    assert jsenv.locate().install == tmp_path / "mine"
    (packaged / "runner.mjs").write_text("console.log('another version of the runner');\n")
    again = jsenv.locate()  # other sources, one lock file: another copy of the sources, the same install
    assert again.install == tmp_path / "mine" and again.root.name != h.root.name


def test_nothing_is_looked_up_under_the_current_directory(monkeypatch, tmp_path):
    _wheel_layout(monkeypatch, tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    here = _harness_sources(tmp_path / "cwd" / "js_harness")
    (tmp_path / "cwd" / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "cwd")
    h = jsenv.locate()
    assert here not in (h.sources, h.root, h.install) and tmp_path / "cwd" not in h.root.parents


def test_setup_installs_into_the_cache_once_and_never_writes_the_package(monkeypatch, tmp_path):
    packaged = _wheel_layout(monkeypatch, tmp_path)
    monkeypatch.setenv("SER_EXPORT_JS_DIR", str(tmp_path / "js"))
    h = jsenv.locate()
    monkeypatch.setattr(jsenv, "HARNESS", h)
    before = sorted(p.relative_to(packaged) for p in packaged.rglob("*"))
    assert not jsenv.harness_installed(h.root)
    ran = []
    real = jsenv._npm_ci
    monkeypatch.setattr(jsenv, "_npm_ci", lambda *a: (ran.append(a[0].install), real(*a)))
    jsenv.setup_harness(h.root, quiet=True)
    assert ran == [h.install] and jsenv.harness_installed(h.root)
    assert (h.root / "node_modules").is_symlink() and (h.root / "node_modules").resolve() == h.install / "node_modules"
    assert (h.root / "lib" / "jsonl.mjs").read_text() == (packaged / "lib" / "jsonl.mjs").read_text()
    assert sorted(p.relative_to(packaged) for p in packaged.rglob("*")) == before  # the package is never written
    jsenv.ensure_harness(h.root)
    jsenv.setup_harness(h.root, quiet=True)
    assert ran == [h.install]  # installed: nothing runs again
    lock = json.loads((packaged / "package-lock.json").read_text())
    lock["name"] = "h2"
    (packaged / "package-lock.json").write_text(json.dumps(lock))
    monkeypatch.setattr(jsenv, "HARNESS", jsenv.locate())  # SER_EXPORT_JS_DIR: the same folder, a new lock file
    assert not jsenv.harness_installed(jsenv.HARNESS.root)
    jsenv.setup_harness(jsenv.HARNESS.root, quiet=True)
    assert ran == [h.install, h.install] and jsenv.harness_installed(jsenv.HARNESS.root)


def test_first_use_installs_with_a_progress_line(monkeypatch, tmp_path, capfd):
    _wheel_layout(monkeypatch, tmp_path)
    monkeypatch.setenv("SER_EXPORT_JS_DIR", str(tmp_path / "js"))
    monkeypatch.setattr(jsenv, "HARNESS", jsenv.locate())
    jsenv.ensure_harness(jsenv.HARNESS.root)
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"setting up the JS harness in {tmp_path / 'js'}" in err, err
    assert "--omit=dev" in err and jsenv.harness_installed(jsenv.HARNESS.root)


def test_without_the_registry_one_line_says_what_to_run(monkeypatch, tmp_path, capfd):
    _wheel_layout(monkeypatch, tmp_path, dependencies={
        "left-pad": ("1.3.0", "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz")})
    monkeypatch.setenv("SER_EXPORT_JS_DIR", str(tmp_path / "js"))
    for key, value in (("npm_config_registry", "http://127.0.0.1:9/"), ("npm_config_cache", str(tmp_path / "npm")),
                       ("npm_config_fetch_retries", "0"), ("npm_config_offline", "false")):
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(jsenv, "HARNESS", jsenv.locate())
    with pytest.raises(ToolMissingError) as info:
        jsenv.ensure_harness(jsenv.HARNESS.root)
    message = str(info.value)
    assert "\n" not in message and "run `ser-export setup-js`" in message and "npm ci failed" in message, message
    assert not jsenv.harness_installed(jsenv.HARNESS.root)
    assert not os.path.exists(jsenv.HARNESS.root)


def test_two_setups_of_one_clone_at_once_run_npm_ci_once(monkeypatch, tmp_path):
    """tox runs its environments in parallel (`tox -p`), each starting with `setup-js` on the same clone: one
    installs while the other waits, then finds the install done (without the lock both ran npm ci into one
    node_modules)."""
    import threading
    import time

    folder = _harness_sources(tmp_path / "clone" / "js_harness")
    ran, active, overlap = [], [], []

    def fake_npm_ci(h, tool, quiet):
        active.append(1)
        overlap.append(len(active) > 1)
        time.sleep(0.3)
        (h.install / "node_modules").mkdir(exist_ok=True)
        (h.install / "node_modules" / jsenv._STAMP).write_text(jsenv._digest(h.install / "package-lock.json") + "\n")
        ran.append(h.install)
        active.pop()

    monkeypatch.setattr(jsenv, "_npm_ci", fake_npm_ci)
    threads = [threading.Thread(target=jsenv.setup_harness, args=(folder,), kwargs={"quiet": True})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ran == [folder] and not any(overlap) and jsenv.harness_installed(folder)
