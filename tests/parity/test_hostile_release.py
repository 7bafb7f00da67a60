"""The gate on broken and hostile releases, drawn by hypothesis: exit 1 or 2, one line, nothing read
outside the release folder, nothing written inside it.

Each draw copies the committed AlexNet (and its manifest entry) into ``ROOT/release`` beside a decoy
``ROOT/decoy.bin`` that holds exactly the bytes an external-data reference to it would ask for (so a
gate that followed the reference would find a complete, valid model), corrupts the copy one way,
and runs ``verify`` in this process with a Python audit hook recording every file opened.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ser_export import cli
from ser_export.io import sha256_file
from ser_export.manifest import LAYOUT, Opt, spec_at
from tests.e2e import ROOT
from tests.parity import tamper

MODEL = "voice_emotion_cnn.onnx"
OPENED: list[str] = []
_RECORDING = [False]


def _audit(event: str, args) -> None:
    if _RECORDING[0] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A one-model copy of the committed release, and the raw bytes of its first initializer."""
    src = tmp_path_factory.mktemp("pristine")
    tamper.copy_release(ROOT / "saved_models", src / "release", only=MODEL)
    first = onnx.load(str(src / "release" / MODEL)).graph.initializer[0]
    return src / "release", first.raw_data


# ------------------------------------------------------------------ corruptions ----
def _manifest(release: Path) -> dict:
    return json.loads((release / "manifest.json").read_text())


def _write_manifest(release: Path, data: dict) -> None:
    (release / "manifest.json").write_text(json.dumps(data))


def _paths(value, prefix=""):
    """Every dotted field path of a JSON value (list items as ``[i]``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{prefix}.{k}" if prefix else k
            yield p, v
            yield from _paths(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            p = f"{prefix}[{i}]"
            yield p, v
            yield from _paths(v, p)


def _set(data, path: str, value=None, delete=False):
    import re

    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node = data
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    key = int(last[1:-1]) if last.startswith("[") else last
    if delete:
        del node[key]
    else:
        node[key] = value


OTHER_TYPES = [None, True, 7, 2.5, "text", [1], {"k": 1}]


def truncate(rng, release, decoy):
    data = (release / MODEL).read_bytes()
    cut = rng.randrange(0, len(data))
    (release / MODEL).write_bytes(data[:cut])
    return f"model truncated to {cut} bytes"


def flip_header(rng, release, decoy):
    data = bytearray((release / MODEL).read_bytes())
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(0, 256)] ^= 1 << rng.randrange(8)
    (release / MODEL).write_bytes(bytes(data))
    return "bytes flipped in the header"


def flip_anywhere(rng, release, decoy):
    data = bytearray((release / MODEL).read_bytes())
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(0, len(data))] ^= 1 << rng.randrange(8)
    (release / MODEL).write_bytes(bytes(data))
    return "bytes flipped anywhere"


def delete_entry(rng, release, decoy):
    data = _manifest(release)
    required = [p for p, _ in _paths(data)
                if p.rsplit(".", 1)[0] != p and _is_required(p)] + ["models.alexnet", "files[0]"]
    path = rng.choice(required)
    if path == "files[0]":
        path = f"files[{rng.randrange(len(data['files']))}]"
    _set(data, path, delete=True)
    _write_manifest(release, data)
    return f"manifest entry {path} deleted"


def _is_required(path: str) -> bool:
    parent, _, key = path.rpartition(".")
    spec = spec_at(parent) if parent else LAYOUT
    while isinstance(spec, Opt):
        spec = spec.spec
    return key in getattr(spec, "required", {})


def duplicate_entry(rng, release, decoy):
    data = _manifest(release)
    how = rng.choice(["model", "file", "key"])
    if how == "model":
        data["models"]["alexnet_again"] = data["models"]["alexnet"]
        _write_manifest(release, data)
    elif how == "file":
        data["files"].append(rng.choice(data["files"]))
        _write_manifest(release, data)
    else:  # the same key twice in one object (json.dumps cannot write that: edit the text)
        text = json.dumps(data)
        key = rng.choice(['"sha256": ', '"format": ', '"file": ', '"label_set": '])  # string values
        i = text.index(key)
        end = text.index('"', text.index('"', i + len(key)) + 1) + 1  # the end of the value
        text = text[:i] + text[i:end] + ", " + text[i:]
        (release / "manifest.json").write_text(text)
    return f"manifest entry duplicated ({how})"


def retype_field(rng, release, decoy):
    data = _manifest(release)
    candidates = []
    for path, value in _paths(data):
        spec = spec_at(path)
        if spec is None:
            continue
        wrong = [v for v in OTHER_TYPES if type(v) is not type(value) and not spec.allows(v)]
        if wrong:
            candidates.append((path, wrong))
    path, wrong = rng.choice(candidates)
    _set(data, path, rng.choice(wrong))
    _write_manifest(release, data)
    return f"manifest field {path} changed to another type"


def external_data(rng, release, decoy):
    model = onnx.load(str(release / MODEL))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    where = rng.choice(["dotdot", "absolute", "symlink"])
    location = {"dotdot": "../decoy.bin", "absolute": str(decoy), "symlink": "weights.bin"}[where]
    if where == "symlink":
        (release / "weights.bin").symlink_to(decoy)
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    onnx.save(model, str(release / MODEL))
    data = _manifest(release)
    data["models"]["alexnet"]["sha256"] = sha256_file(release / MODEL)  # signed: only the guard can stop it
    _write_manifest(release, data)
    return f"external data at {where}"


def model_directory(rng, release, decoy):
    (release / MODEL).unlink()
    (release / MODEL).mkdir()
    return "model replaced by a directory"


def manifest_symlink(rng, release, decoy):
    outside = release.parent / "manifest-outside.json"
    shutil.move(release / "manifest.json", outside)
    (release / "manifest.json").symlink_to(outside)
    return "manifest is a symlink out of the release"


def vad_symlink(rng, release, decoy):
    """The voice-activity model moved out and linked back: the same bytes, so only the guard stops it."""
    vad = release / _manifest(release)["vad"]["file"]
    outside = release.parent / "vad-outside.onnx"
    shutil.move(vad, outside)
    vad.symlink_to(outside)
    return "voice-activity model is a symlink out of the release"


def vad_flip(rng, release, decoy):
    vad = release / _manifest(release)["vad"]["file"]
    data = bytearray(vad.read_bytes())
    data[rng.randrange(0, len(data))] ^= 1 << rng.randrange(8)
    vad.write_bytes(bytes(data))
    return "bytes flipped in the voice-activity model"


CORRUPTIONS = [truncate, flip_header, flip_anywhere, delete_entry, duplicate_entry, retype_field, external_data,
               model_directory, manifest_symlink, vad_symlink, vad_flip]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), p.is_symlink(), p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@settings(max_examples=max(50, settings.default.max_examples), deadline=None,
          # capsys is read out every draw; the gate draws its own cases with hypothesis inside
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.nested_given])
@given(corruption=st.sampled_from(CORRUPTIONS), seed=st.integers(0, 2**32 - 1))
def test_every_broken_release_is_refused_in_one_line_reading_nothing_outside(pristine, capsys, corruption, seed):
    release_src, tensor_bytes = pristine
    with tempfile.TemporaryDirectory(prefix="ser_export_hostile_") as tmp:
        root = Path(tmp)
        release = root / "release"
        shutil.copytree(release_src, release)
        decoy = root / "decoy.bin"
        decoy.write_bytes(tensor_bytes)  # what a followed reference would find: a complete model
        what = corruption(random.Random(seed), release, decoy)
        before = _snapshot(release)
        OPENED.clear()
        _RECORDING[0] = True
        try:
            code = cli.main(["verify", str(release), "--runtimes", "onnxruntime-python", "--examples", "1",
                             "--no-shrink", "--counterexamples", str(root / "ce")])
        finally:
            _RECORDING[0] = False
        out, err = capsys.readouterr()
        print(f"draw: {what}: exit {code}: {err.strip()}", file=sys.__stderr__)
        assert code in (1, 2), (what, code, out[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, err)
        named = [str(release / MODEL), str(release / "manifest.json"), MODEL, "manifest.json", "silero_vad.onnx"]
        assert any(n in lines[0] for n in named), (what, lines[0])
        assert "Traceback" not in out + err
        real_root, real_release = os.path.realpath(root), os.path.realpath(release)
        outside = [p for p in OPENED if p.startswith(real_root + os.sep) and not p.startswith(real_release + os.sep)]
        assert not outside, (what, outside)
        assert decoy.read_bytes() == tensor_bytes
        assert _snapshot(release) == before, (what, "the gate wrote inside the release folder")
