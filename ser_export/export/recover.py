"""Rebuild the exact PyTorch model from a release ONNX file (metadata + named initializers)."""
from __future__ import annotations

import os

import onnx
import torch
from onnx import numpy_helper

from ..errors import ExportError
from ..models import VoiceEmotionCnn
from .metadata import frontend_from_metadata, read_metadata


def model_from_onnx(model: "onnx.ModelProto | str | os.PathLike") -> VoiceEmotionCnn:
    """The ``VoiceEmotionCnn`` whose export is ``model``, in eval mode.

    Raises :class:`ExportError` when a ``state_dict`` tensor is missing from the
    file's initializers (a model not written by ser_export's export).
    """
    if not isinstance(model, onnx.ModelProto):
        from .model_file import open_model

        model = open_model(model).proto
    meta = read_metadata(model)
    for key in ("arch", "labels", "frontend"):
        if key not in meta:
            raise ExportError(f"model metadata has no {key!r}: not a ser_export release model")
    net = VoiceEmotionCnn(meta["arch"], labels=meta["labels"], frontend=frontend_from_metadata(meta))
    inits = {t.name: t for t in model.graph.initializer}
    extras = meta.get("state_dict_extras") or {}
    aliases, fills = extras.get("aliases", {}), extras.get("fills", {})
    state = {}
    missing = []
    for name, current in net.state_dict().items():
        source = aliases.get(name, name)
        if name.endswith("num_batches_tracked"):
            state[name] = current
        elif source in inits:
            state[name] = torch.from_numpy(numpy_helper.to_array(inits[source]).copy())
        elif name in fills:
            state[name] = torch.full(fills[name]["shape"], fills[name]["value"], dtype=current.dtype)
        else:
            missing.append(name)
    if missing:
        raise ExportError(f"cannot rebuild the PyTorch model: {len(missing)} tensors missing, e.g. {missing[:3]}")
    net.load_state_dict(state)
    return net.eval()


def require_recoverable(proto: onnx.ModelProto, model: VoiceEmotionCnn) -> None:
    """Raise :class:`ExportError` unless :func:`model_from_onnx` gives back ``model``'s exact weights."""
    rebuilt = model_from_onnx(proto).state_dict()
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):  # a training counter, not used in eval
            continue
        if not torch.equal(rebuilt[name], tensor):
            raise ExportError(f"the exported file does not hold {name} exactly; PyTorch cannot be rebuilt from it")
