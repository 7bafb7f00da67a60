"""The gate a build runs on its staged files (:func:`parity.release.run_release_gate`), on the committed AlexNet
and its variants: figures for the manifest when they pass, the release refused when the model is changed.
onnxruntime-python only, 3 cases: about 10 s each.  And the variants the build makes
(:func:`ser_export.export.variants.make_variants`, the committed files' bytes) judged against their parent
(:func:`parity.release.judge_variants`)."""
from __future__ import annotations

import json

import pytest

from parity.release import judge_variants, run_release_gate
from ser_export.errors import ReleaseCheckError
from tests.e2e import ROOT
from tests.parity import tamper

MODEL = "voice_emotion_cnn.onnx"


def _gate(release, variants=()):
    entry = json.loads((release / "manifest.json").read_text())["models"]["alexnet"]
    staged = {name: (release / v["file"], v) for name, v in (entry.get("variants") or {}).items() if name in variants}
    return run_release_gate({"alexnet": release / MODEL}, entry["labels"], {"alexnet": entry["golden"]},
                            ("onnxruntime-python",), 3, 0, None, lambda _line: None, {"alexnet": staged})


def test_the_committed_model_and_its_variants_pass_with_their_figures(tmp_path):
    release = tamper.copy_release(ROOT / "saved_models", tmp_path / "r", variants=("fp16", "int8")).parent
    figures = _gate(release, ("fp16", "int8"))
    assert set(figures) == {"alexnet", "alexnet.fp16", "alexnet.int8"}
    assert figures["alexnet"]["passed"] is True and figures["alexnet"]["cases"] == 3
    assert figures["alexnet"]["runners"]["onnxruntime-python"]["golden_logits_max_abs"] < 1e-3
    for name in ("alexnet.fp16", "alexnet.int8"):
        assert figures[name]["n"] == 3 and figures[name]["runtimes"] == ["onnxruntime-python"]
        assert 0 < figures[name]["top1_agreement"] <= 1


def test_a_changed_model_is_refused(tmp_path):
    release = tamper.copy_release(ROOT / "saved_models", tmp_path / "r").parent
    tamper.change_weight(release / MODEL)
    with pytest.raises(ReleaseCheckError, match=r"^alexnet: release refused by the parity gate: .*golden_logits"):
        _gate(release)


def _made(parent_path):
    import hashlib

    import onnx

    from ser_export.export.optables import load_tables
    from ser_export.export.variants import make_variants

    raw = parent_path.read_bytes()
    return make_variants(onnx.load_from_string(raw), hashlib.sha256(raw).hexdigest(), MODEL, "alexnet",
                         ("fp16", "int8"), ("wasm", "webgl", "webgpu"), load_tables())


def _test_split(n=12):
    import numpy as np

    from ser_export.data.dataset import FeatureSet

    rng = np.random.default_rng(0)
    return FeatureSet(features=(rng.standard_normal((n, 1, 128, 91)) * 20 - 40).astype(np.float32),
                      targets=rng.integers(0, 7, n), speakers=[f"s:{i}" for i in range(n)],
                      augmented=np.arange(n) % 4 == 3, vad_frames=np.zeros((n, 4), np.float32))


def test_the_variants_made_are_the_committed_ones_and_pass_against_their_parent():
    import onnx

    release = ROOT / "saved_models"
    entry = json.loads((release / "manifest.json").read_text())["models"]["alexnet"]
    made = _made(release / MODEL)
    for name, v in made.items():
        declared = entry["variants"][name]
        assert v.blob == (release / declared["file"]).read_bytes()
        assert list(v.declared_backends) == declared["declared_backends"] and v.lint.ops == declared["ops"]
    figures = judge_variants(onnx.load(str(release / MODEL)), made, "alexnet", _test_split())
    assert set(figures) == {"fp16", "int8"}
    for f in figures.values():
        assert f["heldout"]["n"] == 9 and f["heldout"]["top1_agreement"] > 0.8


def test_a_variant_that_strays_from_its_parent_is_refused(tmp_path):
    import onnx

    release = tamper.copy_release(ROOT / "saved_models", tmp_path / "r").parent
    made = _made(release / MODEL)
    tamper.change_weight(release / MODEL, factor=3.0)  # the parent changed after its variants were made
    with pytest.raises(ReleaseCheckError, match=r"^alexnet fp16 variant: release refused: "):
        judge_variants(onnx.load(str(release / MODEL)), made, "alexnet", _test_split())
