import hashlib
import json

import pytest

from ser_export.export.release import MANIFEST, ReleaseWriter, read_manifest


def _release(out, files, manifest_extra=None):
    with ReleaseWriter(out) as w:
        for name, data in files.items():
            w.add(name, data)
        w.commit({"format": "ser_export-manifest", **(manifest_extra or {})})


def test_commit_writes_all_files_and_manifest(tmp_path):
    _release(tmp_path, {"a.onnx": b"model-a", "card.md": b"# card"})
    m = read_manifest(tmp_path)
    assert m["files"] == ["a.onnx", "card.md", MANIFEST]
    assert (tmp_path / "a.onnx").read_bytes() == b"model-a"
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "a.onnx").stat().st_mode & 0o044  # readable by others, like a normal file


def test_failure_before_commit_leaves_previous_release_intact(tmp_path):
    _release(tmp_path, {"a.onnx": b"old"})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError, match="training diverged"):
        with ReleaseWriter(tmp_path) as w:
            w.add("a.onnx", b"new, half-finished")
            raise RuntimeError("training diverged")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_stale_files_of_the_previous_release_are_removed(tmp_path):
    _release(tmp_path, {"a.onnx": b"1", "old_plot.png": b"p"})
    (tmp_path / "user_notes.txt").write_text("not ours")
    _release(tmp_path, {"a.onnx": b"2"})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.onnx", MANIFEST, "user_notes.txt"]


def test_bad_names_are_refused(tmp_path):
    with ReleaseWriter(tmp_path) as w:
        with pytest.raises(ValueError):
            w.add("../escape", b"x")
        w.add("a", b"x")
        with pytest.raises(ValueError, match="twice"):
            w.add("a", b"y")


def test_add_returns_sha256(tmp_path):
    with ReleaseWriter(tmp_path) as w:
        assert w.add("x", b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_a_failing_check_replaces_nothing(tmp_path):
    _release(tmp_path, {"a.onnx": b"old"})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def refuse(manifest):
        assert manifest["files"] == ["a.onnx", MANIFEST]
        raise ValueError("layout says no")

    with pytest.raises(ValueError, match="layout says no"):
        with ReleaseWriter(tmp_path) as w:
            w.add("a.onnx", b"new")
            w.commit({"format": "ser_export-manifest"}, check=refuse)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
