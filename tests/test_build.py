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


def test_rebuilds_on_one_core_and_under_a_hostile_environment_give_the_same_bytes(quick_release, tmp_path):
    """The same seed, fresh features and training, two more quick builds side by side (issues 13 and 25):

    - one pinned to one core (``taskset -c 0``) into a copy of the release: every model byte-identical, and the
      manifest (whose timings alone differ) and every other file left as they were (a rebuild that changes
      nothing leaves nothing changed);
    - one whose caller asks ATen and oneDNN for other instruction sets and OpenMP for two threads, which the
      declared numeric environment (ser_export/numenv.py) overrides: the same model bytes and the same manifest
      but for timings.

    (Before numenv, both builds gave other model bytes on this AVX-512 machine.)"""
    import os
    import subprocess
    import sys

    from tests.e2e import ROOT

    def start(out, prefix=(), **env):
        cmd = [*prefix, sys.executable, "-m", "ser_export", "build", "--quick", "--out", str(out), "--no-cache",
               "--no-progress"]
        return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore", **env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    plain = quick_release["out"]
    shutil.copytree(plain, tmp_path / "one_core")
    one_core = start(tmp_path / "one_core", prefix=("taskset", "-c", "0"))
    hostile = start(tmp_path / "hostile", ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41",
                    OMP_NUM_THREADS="2")
    before = read_manifest(plain)
    assert before["build"]["numeric_env"]["comparable"] is True, before["build"]["numeric_env"]
    files = {p.name: p.read_bytes() for p in plain.iterdir()}
    for folder, proc in (("one_core", one_core), ("hostile", hostile)):
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"{folder}: {err[-2000:]}"
        out = tmp_path / folder
        assert same_but_timings(read_manifest(out), before), f"{folder}: the manifest differs from the plain build's"
        for f in sorted(n for n in files if n.endswith(".onnx")):
            assert (out / f).read_bytes() == files[f], f"{folder}: {f} differs from the plain build's"
        if folder == "one_core":
            assert "its manifest is kept" in err
            after = {p.name: p.read_bytes() for p in out.iterdir()}
            assert sorted(after) == sorted(files) and [n for n in files if after[n] != files[n]] == []
        else:  # the build says what it overrode, in one line
            assert "ATEN_CPU_CAPABILITY=avx2 (was default)" in err and "ONEDNN_MAX_CPU_ISA=AVX2 (was SSE41)" in err


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
