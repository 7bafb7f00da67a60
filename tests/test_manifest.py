"""The manifest layout: the committed release's manifest fits it, and every kind of damage is named."""
import json

import pytest

from ser_export.manifest import Manifest, ManifestError, spec_at
from tests.e2e import ROOT

COMMITTED = json.loads((ROOT / "saved_models" / "manifest.json").read_text())


def _write(tmp_path, data):
    (tmp_path / "manifest.json").write_text(json.dumps(data) if not isinstance(data, str) else data)
    return tmp_path


def test_committed_manifest_fits_the_layout():
    m = Manifest.read(ROOT / "saved_models")
    assert set(m.models) == {"alexnet", "resnet18"} and m.models["alexnet"].file == "voice_emotion_cnn.onnx"
    assert len(m.models["alexnet"].sha256) == 64 and m.labels == tuple(COMMITTED["labels"])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["models"]["alexnet"].__setitem__("sha256", 5), "manifest.models.alexnet.sha256 must be a string"),
    (lambda d: d["models"]["alexnet"].__setitem__("sha256", "ab"), "models.alexnet.sha256 is not 64 hexadecimal"),
    (lambda d: d["models"]["alexnet"].pop("golden"), "manifest.models.alexnet.golden is missing"),
    (lambda d: d["models"]["alexnet"].__setitem__("file", "../x.onnx"), "is not a file of the release"),
    (lambda d: d["models"]["alexnet"]["frontend"].__setitem__("n_fft", 2048.5), "frontend.n_fft must be an integer"),
    (lambda d: d.__setitem__("extra", 1), "manifest.extra is not a field of the manifest layout"),
    (lambda d: d.__setitem__("format_version", 2), "format_version is 2"),
    (lambda d: d.__setitem__("files", [f for f in d["files"] if f != "manifest.json"]), "does not list manifest.json"),
    (lambda d: d["models"]["resnet18"].__setitem__("labels", d["labels"][::-1]), "labels differ from the release"),
    (lambda d: d["models"].clear(), "models is empty"),
])
def test_each_kind_of_damage_is_one_line_naming_the_field(tmp_path, edit, message):
    data = json.loads(json.dumps(COMMITTED))
    edit(data)
    with pytest.raises(ManifestError) as info:
        Manifest.read(_write(tmp_path, data))
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith(str(tmp_path / "manifest.json"))
    assert info.value.exit_code == 2


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"), ('{"a": NaN}', "NaN is not JSON"), ("[1, 2]", "must hold a JSON object"),
    ('{"format": "x", "format": "y"}', "key 'format' appears twice"), (b"\xff\xfe", "not UTF-8"),
])
def test_not_json_or_repeated_keys(tmp_path, text, message):
    path = tmp_path / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ManifestError, match=message):
        Manifest.read(tmp_path)


def test_a_manifest_that_is_a_directory_or_missing(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").mkdir()
    with pytest.raises(ManifestError, match="is a directory"):
        Manifest.read(tmp_path)


def test_spec_at_follows_the_layout():
    assert spec_at("models.alexnet.sha256").allows("ab") and not spec_at("models.alexnet.sha256").allows(1)
    assert spec_at("models.alexnet.training.history[3].lr").allows(0.1)
    assert spec_at("models.alexnet.nope") is None


def _assembled(data: dict, **change) -> dict:
    """The committed manifest put together again by :func:`ser_export.manifest.assemble` from its parts, as the
    build does (``change``: fields of the build record to replace)."""
    import dataclasses

    from ser_export import manifest as layout

    models = {}
    for arch, e in data["models"].items():
        t = e["training"]
        variants = {name: layout.VariantRecord(
            **{k: v[k] for k in ("file", "bytes", "parent_sha256", "tolerance_class", "precision", "method", "ops",
                                 "backends", "declared_backends", "sha256")},
            vs_parent={k: x for k, x in v["vs_parent"].items() if k != "gate_cases"},
        ).after_gate({**v["vs_parent"]["gate_cases"], "runtimes": v["gate_runtimes"]})
            for name, v in (e.get("variants") or {}).items()}
        models[arch] = layout.ModelRecord(
            **{k: e[k] for k in ("file", "sha256", "bytes", "arch", "description", "opset", "ops", "backends",
                                 "labels", "frontend", "release_check", "golden", "plots", "parity")},
            training=layout.TrainingRecord(**{k: t[k] for k in ("config", "profile", "epochs_run", "best_epoch",
                                                                "stopped_early", "history")}),
            test_report=e["held_out"]["test"], val_report={**e["held_out"]["val"], "not_written": 1},
            postprocessing=layout.postprocessing_entry(
                {k: v for k, v in e["postprocessing"].items() if k != "evaluation"} | {"ood": {
                    **e["postprocessing"]["ood"], "mean": [0.0]}}, e["postprocessing"]["evaluation"]),
            variants=variants)
    build = dataclasses.replace(layout.BuildRecord(**data["build"]), **change)
    out = layout.assemble(contract=data["contract"], labels=data["labels"], label_set=data["label_set"],
                          training_data=data["training_data"], tolerances=data["tolerances"],
                          libraries=data["libraries"], build=build, models=models, vad=layout.VadRecord(**data["vad"]))
    return dict(out, files=data["files"])


def test_the_assembly_writes_the_committed_manifest_byte_for_byte():
    """``assemble`` is the one place the build's manifest is put together: from the committed release's parts it
    gives the committed file's bytes (written as ReleaseWriter writes it), fits the layout, and keeps the order
    the build has always used (the model card renders in it)."""
    path = ROOT / "saved_models" / "manifest.json"
    again = _assembled(COMMITTED)
    assert json.dumps(again, indent=2, sort_keys=True) + "\n" == path.read_text()
    Manifest.from_dict(json.loads(json.dumps(again)))
    assert list(again) == ["format", "format_version", "contract", "labels", "label_set", "training_data",
                           "tolerances", "libraries", "build", "models", "vad", "files"]
    assert list(again["models"]["alexnet"]) == [
        "file", "sha256", "bytes", "arch", "description", "opset", "ops", "backends", "input", "output", "labels",
        "frontend", "training", "held_out", "release_check", "golden", "plots", "postprocessing", "parity",
        "variants"]
    assert list(again["models"]["alexnet"]["variants"]["fp16"]) == [
        "file", "bytes", "parent_sha256", "tolerance_class", "precision", "method", "ops", "backends",
        "declared_backends", "vs_parent", "sha256", "gate_runtimes"]
    assert list(again["models"]["alexnet"]["variants"]["fp16"]["vs_parent"]) == ["heldout", "gate_cases"]


def test_the_build_record_leaves_out_what_it_lacks():
    env = {"version": 1, "env": {}, "intra_op_threads": 1, "interop_threads": 1, "comparable": True}
    build = _assembled(COMMITTED, numeric_env=env, unpinned=["torch 2.0 is installed"])["build"]
    assert list(build)[-2:] == ["numeric_env", "unpinned"] and build["unpinned"] == ["torch 2.0 is installed"]
    bare = _assembled(COMMITTED, numeric_env=None, unpinned=None)["build"]  # a release built before either
    assert "unpinned" not in bare and "numeric_env" not in bare
