"""The pinned release toolchain: constraints/release.txt is the manifest's versions, the build refuses another
toolchain unless --allow-unpinned, and then the manifest says so."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ser_export import toolchain
from ser_export.build import BuildOptions, run_build
from ser_export.errors import SerExportError
from ser_export.manifest import Manifest
from tests.e2e import ROOT

MANIFEST = json.loads((ROOT / "saved_models" / "manifest.json").read_text())


def test_the_pins_are_the_versions_the_committed_manifest_records():
    pins = {name: toolchain.pinned_version(spec) for name, spec in toolchain.read_pins().items()}
    assert {"torch", "onnx", "onnxsim", "onnxruntime", "numpy", "scipy", "librosa", "soundfile"} <= set(pins)
    recorded = {name: MANIFEST["libraries"][name] for name in pins if name in MANIFEST["libraries"]}
    assert {"torch", "onnx", "onnxsim", "onnxruntime", "numpy", "scipy", "librosa"} <= set(recorded)
    differ = {n: (pins[n], v) for n, v in recorded.items() if not toolchain.same_release(v, pins[n])}
    assert not differ, f"constraints/release.txt and the manifest disagree: {differ}"
    assert MANIFEST["vad"]["version"] == pins["silero-vad"]


def test_ci_installs_with_the_pins():
    assert "-c constraints/release.txt" in (ROOT / ".ci" / "run").read_text()
    assert "-c constraints/release.txt" in (ROOT / "README.md").read_text()
    assert "PIP_CONSTRAINT = {toxinidir}/constraints/release.txt" in (ROOT / "tox.ini").read_text()


@given(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)), st.sampled_from(["", "+cpu", "+cu121"]),
       st.booleans())
def test_a_local_label_or_a_v_prefix_is_the_same_release(parts, local, prefix):
    v = ".".join(map(str, parts))
    assert toolchain.same_release(("v" if prefix else "") + v + local, v), f"counterexample {v}{local}"
    bumped = ".".join(map(str, (*parts[:2], parts[2] + 1)))
    assert not toolchain.same_release(v + local, bumped), f"counterexample {v}{local} vs {bumped}"


def test_differences_name_each_package_and_both_versions(tmp_path):
    pins = tmp_path / "release.txt"
    pins.write_text("# comment\nonnx==0.0.1  # too old\nnumpy==" + toolchain.version("numpy") +
                    "\nno-such-package-xyz==1.0\n")
    diff = toolchain.differences(pins)
    assert diff == [f"onnx {toolchain.version('onnx')} is installed, release.txt pins 0.0.1",
                    "no-such-package-xyz is not installed (release.txt pins 1.0)"]


@pytest.mark.parametrize("line, message", [("onnx>=1.0", "must be pinned to one version"),
                                           ("onnx==1.0,==1.1", "must be pinned to one version"),
                                           ("onnx ===", "not a pip constraint")])
def test_a_constraint_that_pins_nothing_is_refused_naming_the_line(tmp_path, line, message):
    pins = tmp_path / "release.txt"
    pins.write_text("torch==2.13.0\n" + line + "\n")
    with pytest.raises(SerExportError, match=rf"release.txt:2: .*{message}"):
        toolchain.read_pins(pins)


def test_the_build_refuses_an_unpinned_toolchain_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "differences", lambda path=None: ["onnx 9.9.9 is installed, release.txt pins 1.23.2"])
    with pytest.raises(SerExportError, match=r"not the pinned one \(onnx 9.9.9 is installed.*--allow-unpinned"):
        run_build(BuildOptions(out_dir=tmp_path / "out", profile="quick"))
    assert not (tmp_path / "out").exists()


def test_allow_unpinned_builds_and_the_manifest_records_it(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "differences", lambda path=None: ["onnx 9.9.9 is installed, release.txt pins 1.23.2"])
    manifest = run_build(BuildOptions(out_dir=tmp_path / "out", profile="quick", archs=("alexnet",), variants=(),
                                      verify_examples=2, verify_runtimes=("pytorch", "onnxruntime-python"),
                                      cache_dir=tmp_path / "cache", progress=False, allow_unpinned=True))
    assert manifest["build"]["unpinned"] == ["onnx 9.9.9 is installed, release.txt pins 1.23.2"]
    assert Manifest.read(tmp_path / "out").raw["build"]["unpinned"] == manifest["build"]["unpinned"]
