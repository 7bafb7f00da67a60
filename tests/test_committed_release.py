"""The committed release is what the current code exports.

Training takes ten minutes, exporting seconds: this rebuilds each committed model's
graph from its own weights with today's exporter and compares the bytes.  A change
to the front-end, the exporter or its clean-up passes that is not followed by a
rebuild of ``saved_models/`` fails here, instead of leaving a release that
``python -m ser_export build`` can no longer reproduce.
"""
from __future__ import annotations

import hashlib
import os

import onnx
import pytest

from ser_export import contract
from ser_export.export.onnx_export import export_onnx, serialize
from ser_export.export.recover import model_from_onnx
from ser_export.export.release import read_manifest
from tests.e2e import ROOT

RELEASE = ROOT / "saved_models"
MANIFEST = read_manifest(RELEASE)

#: The libraries whose version decides the exported bytes (torch's exporter, onnx, onnxsim).
EXPORT_TOOLCHAIN = ("torch", "onnx", "onnxsim")


def _toolchain_differences() -> list[str]:
    from ser_export.toolchain import library_versions

    now, then = library_versions(), MANIFEST["libraries"]
    return [f"{name} {then.get(name)} (release) vs {now[name]} (installed)"
            for name in EXPORT_TOOLCHAIN if then.get(name) != now[name]]


def _skip_or_fail(differences: list[str], env) -> None:
    """Another exporter may write other (equally valid) bytes: only the same toolchain is compared.  Off CI a
    different toolchain skips; under ``CI=true``, which installs the pins, it fails."""
    if not differences:
        return
    why = "the release was exported with another toolchain: " + "; ".join(differences)
    if env.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why + " (CI installs constraints/release.txt: update the pins and rebuild the release)")
    pytest.skip(why)


def test_under_ci_another_toolchain_fails_instead_of_skipping():
    diff = ["onnx 1.99.0 (release) vs 1.23.2 (installed)"]
    _skip_or_fail([], {"CI": "true"})
    with pytest.raises(pytest.fail.Exception, match="onnx 1.99.0"):
        _skip_or_fail(diff, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception, match="onnx 1.99.0"):
        _skip_or_fail(diff, {})


@pytest.mark.parametrize("arch", sorted(MANIFEST["models"]))
def test_committed_model_is_what_the_current_exporter_writes(arch):
    _skip_or_fail(_toolchain_differences(), os.environ)
    entry = MANIFEST["models"][arch]
    path = RELEASE / entry["file"]
    blob = path.read_bytes()
    committed = onnx.load_from_string(blob)
    opset = next(o.version for o in committed.opset_import if o.domain in ("", "ai.onnx"))

    fresh = export_onnx(model_from_onnx(committed), opset=opset)
    made = {e.key: e.value for e in fresh.metadata_props}
    kept = {e.key: e.value for e in committed.metadata_props}
    # what the exporter itself records (e.g. state_dict aliases) must match the committed file ...
    assert {k: kept.get(k) for k in made} == made
    # ... and with the build's metadata copied over, every byte must be the same.
    del fresh.metadata_props[:]
    fresh.metadata_props.extend(committed.metadata_props)
    assert serialize(fresh) == blob, (
        f"{path.name} is not what the current exporter writes from its own weights: "
        "rebuild the release (python -m ser_export build) and commit it")


def test_manifest_lists_the_contract_and_both_models_with_their_checksums():
    assert MANIFEST["contract"]["n_samples"] == contract.N_SAMPLES
    assert MANIFEST["contract"]["sample_rate"] == contract.SAMPLE_RATE
    assert {m["file"] for m in MANIFEST["models"].values()} == set(contract.MODEL_FILES.values())
    for entry in MANIFEST["models"].values():
        blob = (RELEASE / entry["file"]).read_bytes()
        assert len(blob) == entry["bytes"], entry["file"]
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"], f"{entry['file']}: sha256 differs from the manifest"


@pytest.mark.parametrize("arch", sorted(MANIFEST["models"]))
def test_committed_models_name_no_emotion_for_noise_a_chord_or_clicks(arch, tmp_path):
    """Issue 10's table on the committed models: no emotion above 0.8 (here: none at all)."""
    from ser_export.predict import predict_file
    from tests.nonspeech import write_nonspeech

    for name, wav in write_nonspeech(tmp_path).items():
        pred = predict_file(wav, RELEASE / MANIFEST["models"][arch]["file"])
        assert pred.postprocessing and pred.verdict in ("no_speech", "uncertain"), (name, pred.verdicts)
        confident = [p.max() for p, v in zip(pred.window_probabilities, pred.verdicts) if v == "classified"]
        assert all(p < 0.8 for p in confident), (name, confident)
