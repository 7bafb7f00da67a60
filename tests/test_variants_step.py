"""``python -m ser_export variants RELEASE``: the variants remade from a release's float models are the bytes its
build made (the calibration is deterministic and comes from the same data stage), the manifest is the build's but
for timings and the gate it is told to run, the float files stay as they are, and a float model that is not the
manifest's leaves the release untouched."""
import hashlib
import json
import shutil

from ser_export.export.variants import VARIANTS, variant_file
from ser_export.manifest import Manifest, without_timings
from tests.e2e import run_cli
from tests.parity import tamper


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _but_the_gate_s(manifest: dict) -> dict:
    """``manifest`` without its timings and without what the command is told differently from the build (the gate's
    runtimes and cases: each variant's ``gate_runtimes`` and ``vs_parent.gate_cases``)."""
    out = without_timings(json.loads(json.dumps(manifest)))
    for entry in out["models"].values():
        for v in entry["variants"].values():
            v.pop("gate_runtimes")
            v["vs_parent"].pop("gate_cases")
    return out


def test_the_variants_step_remakes_the_build_s_variant_bytes_and_keeps_every_float_file(quick_release, tmp_path):
    built = quick_release["out"]
    release = tmp_path / "release"
    shutil.copytree(built, release)
    for arch, entry in json.loads((built / "manifest.json").read_text())["models"].items():
        for name in entry["variants"]:
            (release / variant_file(entry["file"], name)).write_bytes(b"stale")  # made again, not copied
    proc = run_cli("variants", str(release), "--cache-dir", str(quick_release["cache"]),
                   "--verify-runtimes", "onnxruntime-python", "--verify-examples", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, after = _digests(built), _digests(release)
    assert {k: v for k, v in after.items() if k not in ("manifest.json", "MODEL_CARD.md")} == \
        {k: v for k, v in before.items() if k not in ("manifest.json", "MODEL_CARD.md")}
    manifest = Manifest.read(release)
    for arch, entry in manifest.models.items():
        assert list(entry.raw["variants"]) == list(VARIANTS)
        for name, v in entry.raw["variants"].items():
            assert v["sha256"] == before[v["file"]] and v["gate_runtimes"] == ["onnxruntime-python"]
        assert "int8s.onnx: " in proc.stdout
    card = (release / "MODEL_CARD.md").read_text()
    assert card.replace("\n", "").count("(alexnet int8s)") == 1
    # every figure the build wrote, the held-out ones (vs_parent.heldout) to the last digit, is the step's: both
    # compute them through the same code with the same settings, so a fresh build rewrites the same manifest
    built_manifest = json.loads((built / "manifest.json").read_text())
    assert _but_the_gate_s(manifest.raw) == _but_the_gate_s(built_manifest)


def test_a_float_model_that_is_not_the_manifest_s_is_refused_and_the_release_left_as_it_was(quick_release, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(quick_release["out"], release)
    tamper.change_weight(release / "voice_emotion_cnn.onnx")  # a valid model, not the one the manifest names
    before = _digests(release)
    proc = run_cli("variants", str(release), "--cache-dir", str(quick_release["cache"]),
                   "--verify-runtimes", "onnxruntime-python", "--verify-examples", "3")
    assert proc.returncode != 0 and "is not the manifest's" in proc.stderr
    assert len([ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error")]) == 1
    assert _digests(release) == before
