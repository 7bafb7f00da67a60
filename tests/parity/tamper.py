"""Deliberately broken copies of a release, for testing the gate."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ser_export.io import sha256_file


def copy_release(src: Path, dst: Path, only: str = "voice_emotion_cnn.onnx", variants: tuple[str, ...] = ()) -> Path:
    """A copy of the release with one model and the named ``variants`` of it (keeps the tests fast)."""
    dst.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["models"] = {a: m for a, m in manifest["models"].items() if m["file"] == only}
    for m in manifest["models"].values():
        m["variants"] = {k: v for k, v in m.get("variants", {}).items() if k in variants}
        for v in m["variants"].values():
            shutil.copy(src / v["file"], dst / v["file"])
        if not m["variants"]:
            del m["variants"]
    shutil.copy(src / only, dst / only)
    if "vad" in manifest:  # the voice-activity model the models' post-processing runs
        shutil.copy(src / manifest["vad"]["file"], dst / manifest["vad"]["file"])
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst / only


def resign(release: Path, model_file: str) -> None:
    """Update the manifest's sha256 so only the parity stages can notice the change (a forged parent's variants
    name its new sha256 in the manifest, as a forger would write; their files' metadata still names the old)."""
    manifest = json.loads((release / "manifest.json").read_text())
    for m in manifest["models"].values():
        for entry in [m, *m.get("variants", {}).values()]:
            if entry["file"] == model_file:
                entry["sha256"] = sha256_file(release / model_file)
                entry["bytes"] = (release / model_file).stat().st_size
        if m["file"] == model_file:
            for v in m.get("variants", {}).values():
                v["parent_sha256"] = m["sha256"]
    (release / "manifest.json").write_text(json.dumps(manifest))


def change_weight(path: Path, name: str = "classifier.5.weight", factor: float = 1.5) -> None:
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == name:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), name))
            break
    else:
        raise KeyError(name)
    onnx.save(model, str(path))


def wrong_pad_mode(path: Path) -> None:
    model = onnx.load(str(path))
    (pad,) = [n for n in model.graph.node if n.op_type == "Pad"]
    for attr in pad.attribute:
        if attr.name == "mode":
            attr.s = b"reflect"
    onnx.save(model, str(path))


def batch_global_reference(path: Path) -> None:
    """The original's defect: the dB reference is the max over the whole batch."""
    model = onnx.load(str(path))
    (reduce,) = [n for n in model.graph.node if n.op_type == "ReduceMax"]
    for attr in reduce.attribute:
        if attr.name == "axes":
            attr.CopyFrom(helper.make_attribute("axes", [0, 1, 2]))
    onnx.save(model, str(path))


def swap_labels(path: Path) -> None:
    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == "labels":
            labels = json.loads(entry.value)
            labels[0], labels[1] = labels[1], labels[0]
            entry.value = json.dumps(labels)
    onnx.save(model, str(path))


def gain_envelope(path: Path, depth: float = 0.5) -> None:
    """A slow gain envelope (``1 + depth * sin``, one period over the window) multiplied into the waveform right
    after the graph's input: every stage downstream of the front-end sees another signal."""
    model = onnx.load(str(path))
    graph = model.graph
    name = graph.input[0].name
    n = graph.input[0].type.tensor_type.shape.dim[-1].dim_value
    envelope = (1 + depth * np.sin(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(envelope, "tamper_envelope"))
    for node in graph.node:
        node.input[:] = ["tamper_enveloped" if i == name else i for i in node.input]
    graph.node.insert(0, helper.make_node("Mul", [name, "tamper_envelope"], ["tamper_enveloped"]))
    onnx.save(model, str(path))
