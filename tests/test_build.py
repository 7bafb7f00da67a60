"""``python -m ser_export build --quick`` end to end, on the real CLI."""
import hashlib
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export import contract
from ser_export.export.metadata import read_metadata
from ser_export.export.release import read_manifest
from ser_export.manifest import same_but_timings, with_timings_of
from tests.e2e import run_cli


def test_release_has_models_manifest_card_and_plots(quick_release):
    out = quick_release["out"]
    manifest = read_manifest(out)
    from ser_export.manifest import Manifest

    assert Manifest.read(out).raw == manifest  # what the build writes is what the layout declares
    assert set(manifest["models"]) == {"alexnet", "resnet18"}
    for arch, m in manifest["models"].items():
        path = out / m["file"]
        assert m["file"] == contract.MODEL_FILES[arch]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == m["sha256"]
        assert path.stat().st_size == m["bytes"]
        assert m["opset"] == 13 and all(b["compatible"] for b in m["backends"].values())
        assert set(m["held_out"]["test"]["per_class"]) == set(manifest["labels"])
        assert m["release_check"]["onnxruntime_vs_pytorch"]["top1_agreement"] == 1.0
        for png in m["plots"].values():
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        onnx.checker.check_model(str(path))
        assert read_metadata(path)["labels"] == list(contract.labels_for("emotions7"))
        # the post-processing: in the metadata (what predict and the JS read) and in the manifest, the same
        meta_pp = read_metadata(path)["postprocessing"]
        assert meta_pp["temperature"] == m["postprocessing"]["temperature"] > 0
        assert meta_pp["vad"] == m["postprocessing"]["vad"] and meta_pp["vad"]["sha256"] == manifest["vad"]["sha256"]
        assert meta_pp["confidence"] == m["postprocessing"]["confidence"]
        assert meta_pp["ood"]["threshold"] == m["postprocessing"]["ood"]["threshold"]
        assert len(meta_pp["ood"]["mean"]) == 2 * m["frontend"]["n_mels"]
        ev = m["postprocessing"]["evaluation"]
        assert ev["ood_set"]["non_speech"]["n"] > 0 and ev["held_out_test"]["n"] == m["held_out"]["test"]["n"]
        assert set(ev["ood_auroc"]["held_out_vs"]) == {"logmel_band_mahalanobis", "max_probability", "energy"}
        assert m["plots"]["reliability"] == f"{path.stem}_reliability.png"
    assert hashlib.sha256((out / "silero_vad.onnx").read_bytes()).hexdigest() == manifest["vad"]["sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "synthetic speech" in card.lower() and "voice_emotion_cnn_confusion.png" in card
    assert "## What the models say about inputs they never saw" in card and "voice_emotion_cnn_reliability.png" in card
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest["files"])
    assert manifest["libraries"]["torch"] == "2.13.0+cpu" or manifest["libraries"]["torch"].startswith("2.13.0")


def test_released_model_runs_in_onnxruntime(quick_release, rng):
    path = quick_release["out"] / "voice_emotion_cnn.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": rng.standard_normal((2, 46305)).astype(np.float32)})[0]
    assert logits.shape == (2, 7) and np.all(np.isfinite(logits))


def test_a_rebuild_without_cache_leaves_the_release_byte_for_byte_as_it_was(quick_release, tmp_path):
    """Same seed, fresh features and training, into a copy of the release: byte-identical models, and the
    manifest (whose timings alone differ) and every other file left as they were (issue 13: a rebuild that
    changes nothing leaves nothing changed)."""
    again = tmp_path / "again"
    shutil.copytree(quick_release["out"], again)
    proc = run_cli("build", "--quick", "--out", str(again), "--no-cache", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "its manifest is kept" in proc.stderr
    before = {p.name: p.read_bytes() for p in quick_release["out"].iterdir()}
    after = {p.name: p.read_bytes() for p in again.iterdir()}
    assert sorted(after) == sorted(before)
    assert [n for n in before if after[n] != before[n]] == []


@settings(max_examples=50, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["a", "b", "seconds", "ms_per_case"]), inner, max_size=4)),
       st.floats(0, 1e6))
def test_only_timings_may_differ_for_the_previous_manifest_to_be_kept(tree, seconds):
    """A copy whose timing fields are changed is the same release and takes the previous timings; a copy with
    any other field changed is not."""
    new = {"models": tree, "seconds": seconds}
    previous = json.loads(json.dumps({"models": tree, "seconds": seconds + 1}))
    assert same_but_timings(new, previous), f"counterexample {new}"
    kept = with_timings_of(new, previous)
    assert json.dumps(kept, sort_keys=True) == json.dumps(previous, sort_keys=True), f"counterexample {new}"
    assert not same_but_timings({**new, "libraries": {"onnx": "1"}}, previous), f"counterexample {new}"
    assert not same_but_timings(new, None)


def test_build_with_bad_data_argument_fails_cleanly(tmp_path):
    proc = run_cli("build", "--quick", "--data", "ravdess=" + str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ravdess: data directory") and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_unknown_verify_runtime_is_refused_before_any_work(tmp_path, capsys):
    from ser_export import cli

    code = cli.main(["build", "--quick", "--verify-runtimes", "pytorch,onnxruntime-gpu", "--out", str(tmp_path / "o"),
                     "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --verify-runtimes: unknown runtimes ['onnxruntime-gpu']")
    assert "\n" not in err and not (tmp_path / "o").exists() and not (tmp_path / "c").exists()
