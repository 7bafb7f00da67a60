"""The gate a build runs on its staged files (:func:`parity.release.run_release_gate`), on the committed AlexNet
and its variants: figures for the manifest when they pass, the release refused when the model is changed.
onnxruntime-python only, 3 cases: about 10 s each."""
from __future__ import annotations

import json

import pytest

from parity.release import run_release_gate
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
