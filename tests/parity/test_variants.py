"""Variants in the gate: judged against the float parent under their tolerance class; a tampered variant
(one weight scaled, checksum forged) is refused with exit 1; a variant that is not its parent's, exit 2."""
import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ser_export.export.variants import VARIANTS
from tests.e2e import run_cli
from tests.parity import tamper

pytestmark = pytest.mark.node

RUNTIMES = "pytorch,onnxruntime-python,onnxruntime-web-wasm"


def _verify(release, *extra, runtimes=RUNTIMES):
    report = release / "report.json"
    proc = run_cli("verify", str(release), "--runtimes", runtimes, "--report", str(report), "--examples", "8",
                   "--no-shrink", *extra)
    return proc, (json.loads(report.read_text()) if report.exists() else None)


def _model(data, name):
    return next(m for m in data["models"] if m["arch"] == name)


def test_the_build_lists_each_variant_with_its_parent_class_backends_and_figures(quick_release):
    manifest = json.loads((quick_release["out"] / "manifest.json").read_text())
    for arch, entry in manifest["models"].items():
        assert set(entry["variants"]) == set(VARIANTS)
        for name, v in entry["variants"].items():
            path = quick_release["out"] / v["file"]
            assert path.stat().st_size == v["bytes"] and v["file"] in manifest["files"]
            assert v["parent_sha256"] == entry["sha256"] and v["tolerance_class"] == name
            assert v["bytes"] < entry["bytes"] * (0.55 if name == "fp16" else 0.30)  # int8s: 27 % (AlexNet)
            assert v["declared_backends"] and set(v["declared_backends"]) <= set(manifest["build"]["target_backends"])
            for backend in set(manifest["build"]["target_backends"]) - set(v["declared_backends"]):
                assert v["backends"][backend]["findings"], f"{arch}.{name}: {backend} left out without the lint's reason"
            held = v["vs_parent"]["heldout"]
            assert held["n"] == entry["held_out"]["test"]["n"]
            assert abs(held["parent_accuracy"] - entry["held_out"]["test"]["accuracy"]) < 0.1
            assert v["vs_parent"]["gate_cases"]["n"] > 0 and "onnxruntime-python" in v["gate_runtimes"]
            assert f"`{v['file']}` ({arch} {name})" in (quick_release["out"] / "MODEL_CARD.md").read_text()
            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            assert json.loads(meta["variant"])["parent_sha256"] == entry["sha256"]
            assert meta["labels"] == json.dumps(manifest["labels"], separators=(",", ":")) or \
                json.loads(meta["labels"]) == manifest["labels"]


def test_variants_pass_against_their_parent_and_across_runtimes(quick_release, tmp_path):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r", variants=("fp16", "int8")).parent
    proc, data = _verify(release)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("alexnet.fp16", "alexnet.int8"):
        m = _model(data, name)
        stages = {(r["stage"], r["runner"]) for r in m["results"] if r["applicable"]}
        assert ("vs_parent[top1]", "onnxruntime-python") in stages
        assert ("vs_parent[accuracy,heldout]", "onnxruntime-python") in stages  # held-out clips regenerated
        assert ("logits", "onnxruntime-web-wasm") in stages  # the same numbers on every runtime: default bounds
        assert any(not r["applicable"] and r["runner"] == "pytorch" for r in m["results"])


@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_a_tampered_variant_with_a_forged_checksum_fails_with_exit_1(quick_release, tmp_path, variant):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r", variants=(variant,)).parent
    path = release / f"voice_emotion_cnn.{variant}.onnx"
    model = onnx.load(str(path))
    # the output layer's weight (as tamper.change_weight scales in the parent): a layer before a
    # normalisation would be scaled back
    name = "classifier.5.weight" + (".fp16" if variant == "fp16" else ".scale")
    init = next(t for t in model.graph.initializer if t.name == name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.asarray(3, numpy_helper.to_array(init).dtype),
                                          init.name))
    onnx.save(model, str(path))
    tamper.resign(release, path.name)  # the checksum is forged: only the comparison with the parent can tell
    proc, data = _verify(release, runtimes="onnxruntime-python")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    failed = [r for r in _model(data, f"alexnet.{variant}")["results"] if not r["passed"]]
    assert any(r["stage"].startswith("vs_parent") for r in failed), failed
    assert all(r["passed"] for r in _model(data, "alexnet")["results"])


def test_a_variant_that_names_another_parent_exits_2(quick_release, tmp_path):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r", variants=("fp16",)).parent
    path = release / "voice_emotion_cnn.fp16.onnx"
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "variant":
            info = json.loads(entry.value)
            info["parent_sha256"] = "0" * 64
            entry.value = json.dumps(info)
    onnx.save(model, str(path))
    tamper.resign(release, path.name)
    proc, data = _verify(release, runtimes="onnxruntime-python")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "variant of voice_emotion_cnn.onnx" in _model(data, "alexnet.fp16")["error"]


def test_a_variant_file_missing_from_the_release_exits_2(quick_release, tmp_path):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r", variants=("int8",)).parent
    (release / "voice_emotion_cnn.int8.onnx").unlink()
    proc, data = _verify(release, runtimes="onnxruntime-python")
    assert proc.returncode == 2
    assert "no such file" in _model(data, "alexnet.int8")["error"]


def test_the_variants_of_a_parent_that_fails_its_checksum_are_listed_as_not_checked(quick_release, tmp_path):
    release = tamper.copy_release(quick_release["out"], tmp_path / "r", variants=("fp16", "int8")).parent
    tamper.change_weight(release / "voice_emotion_cnn.onnx")  # the parent's checksum no longer matches
    proc, data = _verify(release, runtimes="onnxruntime-python")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("alexnet.fp16", "alexnet.int8"):
        (result,) = _model(data, name)["results"]
        assert not result["applicable"] and "its parent is not the file the manifest names" in result["detail"]
