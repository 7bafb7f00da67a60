"""``build --quick --data ...`` on generated trees of every corpus format, as users run it.

Each tree has the corpus's layout, naming, sample rate, sample format and channel count
(``tests/corpus_trees.py``); the builds run the real CLI in a subprocess, and their
releases must pass ``verify``.  Bad corpora must give one line naming the path, never a
traceback, and leave the previous release as it was.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from ser_export import cli, contract
from ser_export.export.release import read_manifest
from tests import corpus_trees
from tests.conftest import write_wav
from tests.e2e import run_cli

pytestmark = pytest.mark.node

#: Every build gates 2 cases; single-corpus builds train the AlexNet only and gate it on the Python
#: runtimes (the mixed build trains both models and gates them on every default runtime).
FAST = ("--quick", "--no-progress", "--verify-examples", "2")
SINGLE = ("--arch", "alexnet", "--verify-runtimes", "pytorch,onnxruntime-python")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    out = {name: make(root / name) for name, make in corpus_trees.MAKERS.items()}
    # what a real download holds besides the speech: a truncated copy, a song file, a readme
    rav = out["ravdess"]
    shutil.copy(rav / "Actor_01" / "03-01-05-01-01-01-01.wav", rav / "Actor_01" / "03-01-05-01-01-02-01.wav")
    corpus_trees.truncate(rav / "Actor_01" / "03-01-05-01-01-02-01.wav")
    shutil.copy(rav / "Actor_02" / "03-01-03-01-01-01-02.wav", rav / "Actor_02" / "03-02-03-01-01-01-02.wav")
    (rav / "README.txt").write_text("RAVDESS-shaped test tree\n")
    return out


def _build(tmp_path, *args):
    proc = run_cli("build", *FAST, "--cache-dir", str(tmp_path / "cache"), *args)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _verify_passes(release, capsys, runtimes=None):
    """``verify`` on the release (checksums, golden logits, parity), in this process.

    Single-corpus tests check on the Python runtimes only (those their builds gated on), to keep
    the suite short; the mixed build's release is checked on every default runtime.
    """
    code = cli.main(["verify", str(release), "--examples", "2", "--no-shrink",
                     "--counterexamples", str(release.parent / "ce"), *(["--runtimes", runtimes] if runtimes else [])])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "verify: PASSED" in out


def _corpus(manifest, name):
    return manifest["training_data"]["corpora"][name]


def test_ravdess_tree_with_ravdess8_keeps_calm_and_lists_skipped_files(trees, tmp_path, capsys):
    """48 kHz 16-bit stereo; a truncated WAV, a song file and a readme are skipped and listed."""
    out = tmp_path / "release"
    proc = _build(tmp_path, *SINGLE, "--label-set", "ravdess8", "--data", f"ravdess={trees['ravdess']}",
                  "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["labels"] == list(contract.labels_for("ravdess8")) and "calm" in manifest["labels"]
    info = _corpus(manifest, "ravdess")
    assert info["files"] == 35 and info["used"] == 32 and info["skipped_total"] == 3
    skipped = {s["file"]: s for s in info["skipped"]}
    assert skipped["Actor_01/03-01-05-01-01-02-01.wav"]["reason"] == "truncated"
    assert "declares" in skipped["Actor_01/03-01-05-01-01-02-01.wav"]["detail"]
    assert skipped["Actor_02/03-02-03-01-01-01-02.wav"]["reason"].startswith("not used by the convention")
    assert skipped["README.txt"]["reason"] == "not .wav/.flac"
    assert sorted(sum(info["speakers"].values(), [])) == ["01", "02", "03", "04"]
    assert all(info["clips"][split].get("calm") for split in ("train", "val", "test"))
    assert manifest["training_data"]["labels_without_data"] == []
    assert manifest["models"]["alexnet"]["output"]["shape"] == ["batch", 8]
    card = (out / "MODEL_CARD.md").read_text()
    assert "skipped `Actor_01/03-01-05-01-01-02-01.wav`: truncated (truncated WAV: its header declares" in card
    assert "32 of 35 files used; skipped 3" in card and "Trained on synthetic speech" not in card
    assert "truncated" in proc.stderr  # the build said so, too
    _verify_passes(out, capsys, runtimes="pytorch,onnxruntime-python")


@pytest.mark.parametrize("corpus, absent", [("emodb", "surprised"), ("jl", "disgusted")])
def test_single_corpus_builds_release_models_that_verify_passes(trees, tmp_path, capsys, corpus, absent):
    """EMO-DB (16 kHz mono, wav/03a01Fa.wav) and JL-corpus (44.1 kHz, female1_angry_1a_1.wav): each
    lacks one of our emotions, which the manifest and card record."""
    out = tmp_path / "release"
    proc = _build(tmp_path, *SINGLE, "--data", f"{corpus}={trees[corpus]}", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["training_data"]["labels_without_data"] == [absent]
    info = _corpus(manifest, corpus)
    assert info["used"] == sum(sum(c.values()) for c in info["clips"].values()) > 0
    assert all(info["speakers"][split] for split in ("train", "val", "test"))
    card = (out / "MODEL_CARD.md").read_text()
    assert f"**No clips of `{absent}`** in the data" in card and f"`{corpus}`: speakers train" in card
    if corpus == "jl":  # the secondary emotion the loader does not use is listed
        assert {s["file"] for s in info["skipped"]} == {f"{spk}_apologetic_1a_1.wav" for spk in
                                                       ("female1", "female2", "male1", "male2")}
    _verify_passes(out, capsys, runtimes="pytorch,onnxruntime-python")


def test_tess_alone_cannot_be_split_by_speaker(trees, tmp_path, capsys):
    """TESS has two speakers: no speaker-independent validation and test set; one line says so
    (before any feature is made)."""
    code = cli.main(["build", *FAST, "--data", f"tess={trees['tess']}", "--out", str(tmp_path / "o"),
                     "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: cannot split by speaker: tess: 2 speakers (OAF 14 clips, YAF 14 clips); holding out validation "
        "and test speakers needs a corpus with at least 3 speakers (add speakers, or another corpus with --data)")
    assert not (tmp_path / "o").exists() and not (tmp_path / "cache").exists()


def test_all_four_corpora_mixed_in_one_build(trees, tmp_path, capsys):
    """Four formats, rates and namings in one build of both models; TESS's two speakers train."""
    out = tmp_path / "release"
    data = [arg for name in ("ravdess", "emodb", "tess", "jl") for arg in ("--data", f"{name}={trees[name]}")]
    proc = _build(tmp_path, *data, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = read_manifest(out)
    assert set(manifest["models"]) == {"alexnet", "resnet18"}
    assert manifest["training_data"]["name"] == "emodb + jl + ravdess + tess"
    assert manifest["training_data"]["labels_without_data"] == []
    corpora = manifest["training_data"]["corpora"]
    assert set(corpora) == {"ravdess", "emodb", "tess", "jl"}
    assert corpora["tess"]["speakers"] == {"train": ["OAF", "YAF"], "val": [], "test": []}
    assert corpora["ravdess"]["skipped_by_reason"]["truncated"] == 1
    assert sum(corpora["ravdess"]["clips"]["train"].values()) + sum(corpora["ravdess"]["clips"]["val"].values()) \
        + sum(corpora["ravdess"]["clips"]["test"].values()) == corpora["ravdess"]["used"] == 32
    card = (out / "MODEL_CARD.md").read_text()
    for name in ("ravdess", "emodb", "tess", "jl"):
        assert f"- `{name}`: speakers train" in card
    test_n = manifest["models"]["resnet18"]["held_out"]["test"]["n"]
    assert test_n == sum(sum(c["clips"].get("test", {}).values()) for c in corpora.values())
    _verify_passes(out, capsys)


# ------------------------------------------------------------------ bad corpora ----
@pytest.fixture
def previous_release(tmp_path):
    """A release directory that a failing build must leave byte for byte and time for time as it was."""
    out = tmp_path / "previous"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"format": "ser_export-manifest", "files": ["model.onnx"]}))
    (out / "model.onnx").write_bytes(b"\x08\x07" * 1000)
    return out


def _snapshot(folder):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def _silent_tree(root):
    for name in ("03a01Fa.wav", "08a01Wa.wav", "10a01Ta.wav"):
        write_wav(root / name, [0.0] * 16000, sr=16000, subtype="PCM_16")
    return root


@pytest.mark.parametrize("case, corpus, expected", [
    ("missing", "ravdess", r"^error: ravdess: data directory {root} does not exist or is not a directory$"),
    ("empty", "emodb", r"^error: emodb: no usable audio files under {root} \(no files found\)$"),
    ("other naming", "ravdess", r"^error: ravdess: no usable audio files under {root} \(skipped 28 name breaks the "
                                r"convention; e\.g\. OAF_Pleasant_surprise/OAF_back_ps\.wav: name breaks the "
                                r"convention \(not a RAVDESS name .*\)\)$"),
    ("all silent", "emodb", r"^error: emodb: no usable audio files under {root} \(skipped 3 silent; e\.g\. "
                            r"03a01Fa\.wav: silent \(RMS 0 < 1e-06\)\)$"),
])
def test_bad_corpus_is_one_line_and_leaves_the_release(trees, tmp_path, capsys, previous_release, case, corpus,
                                                       expected):
    root = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "other naming": trees["tess"],
            "all silent": tmp_path / "silent"}[case]
    if case == "empty":
        root.mkdir()
    elif case == "all silent":
        _silent_tree(root)
    before = _snapshot(previous_release)
    code = cli.main(["build", "--quick", "--no-progress", "--data", f"{corpus}={root}", "--out",
                     str(previous_release), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    import re

    assert re.match(expected.format(root=re.escape(str(root))), err), err
    assert _snapshot(previous_release) == before
