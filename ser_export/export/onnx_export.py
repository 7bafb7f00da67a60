"""torch -> ONNX (legacy exporter) -> onnxsim -> graph clean-up -> onnx.checker.

Only the legacy TorchScript exporter (``dynamo=False``) writes opset 13 in torch
2.13; the dynamo exporter starts at opset 18, and from opset 17 ``LayerNorm``
becomes one ``LayerNormalization`` node, which WebGL lacks.

The release graph keeps every trained tensor under its ``state_dict`` name (or, for the
few the simplifier merges, records in the metadata how to restore them): the
model is exported in eval mode without the exporter's Conv+BatchNorm fusion
(``TrainingMode.PRESERVE``) and onnxsim's (``skip_fuse_bn``).  onnxruntime fuses
them again when it loads the model, so nothing is lost at run time, and the exact
PyTorch model can be rebuilt from the release file alone
(:func:`ser_export.export.recover.model_from_onnx`), which is what lets the parity
suite run PyTorch on the committed models.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

import onnx
import torch

from .. import contract
from ..errors import ExportError

#: The legacy exporter supports opsets up to this.
MAX_LEGACY_OPSET = 20


def constants_to_initializers(model: onnx.ModelProto) -> int:
    """Turn ``Constant`` nodes holding a tensor into initializers; returns how many.

    onnxruntime's C++ loader does this itself, but the WebGL backend's table has
    no ``Constant`` kernel, so the release graph carries none.
    """
    graph = model.graph
    keep, moved = [], 0
    for node in graph.node:
        value = None
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1:
            attr = node.attribute[0]
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                value = attr.t
        if value is None:
            keep.append(node)
            continue
        tensor = onnx.TensorProto()
        tensor.CopyFrom(value)
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        moved += 1
    del graph.node[:]
    graph.node.extend(keep)
    return moved


#: Metadata key describing ``state_dict`` tensors the graph does not hold by name.
STATE_EXTRAS_KEY = "state_dict_extras"


def record_missing_parameters(proto: onnx.ModelProto, model: torch.nn.Module) -> dict:
    """Make every ``state_dict`` tensor recoverable from the file without unused initializers.

    The simplifier drops tensors it does not need by name: exact duplicates (e.g. a
    ResNet downsample BN bias, which receives the same gradients as the ``bn2`` bias
    beside it and so stays equal to it) and identity values (untrained affines).
    Each missing tensor is recorded in the metadata as an alias of an identical
    initializer or as a constant fill; only a tensor that is neither is attached as
    an (unused) initializer, which onnxruntime would warn about at load.
    """
    from onnx import numpy_helper

    present = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    by_shape: dict[tuple, list[str]] = {}
    for name, value in present.items():
        by_shape.setdefault((value.dtype.str, value.shape), []).append(name)
    extras: dict = {"aliases": {}, "fills": {}}
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked") or name in present:
            continue
        value = tensor.detach().cpu().numpy()
        twin = next((n for n in by_shape.get((value.dtype.str, value.shape), [])
                     if np.array_equal(present[n], value)), None)
        if twin is not None:
            extras["aliases"][name] = twin
        elif value.size and np.all(value == value.flat[0]):
            extras["fills"][name] = {"value": float(value.flat[0]), "shape": list(value.shape)}
        else:
            proto.graph.initializer.append(numpy_helper.from_array(value, name))
    if extras["aliases"] or extras["fills"]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = STATE_EXTRAS_KEY, contract.dumps_canonical(extras)
    return extras


def drop_trailing_empty_inputs(model: onnx.ModelProto) -> int:
    """Remove trailing ``''`` inputs (e.g. ``Pad(x, pads, '')``); returns how many."""
    dropped = 0
    for node in model.graph.node:
        while node.input and node.input[-1] == "":
            node.input.pop()
            dropped += 1
    return dropped


@contextlib.contextmanager
def _also_returning_features(model: torch.nn.Module):
    """Make ``model(x)`` return ``(logits, logmel)`` while exporting (names stay the same)."""
    if not hasattr(model, "features") or not hasattr(model, "classify"):
        yield False
        return

    def forward(x):
        feats = model.features(x)
        return model.classify(feats), feats

    model.forward = forward
    try:
        yield True
    finally:
        del model.forward


def export_onnx(model: torch.nn.Module, opset: int = contract.DEFAULT_OPSET,
                simplify: bool = True) -> onnx.ModelProto:
    """Export ``model`` (waveform ``(batch, N_SAMPLES)`` -> logits) to a checked ONNX model.

    The graph input is ``input`` ``(batch, 46305)`` float32 with a symbolic batch
    axis; the outputs are ``output`` ``(batch, n_labels)`` logits and, for a
    ``VoiceEmotionCnn``, ``logmel`` ``(batch, 1, n_mels, n_frames)`` features.
    """
    if not 7 <= opset <= MAX_LEGACY_OPSET:
        raise ExportError(f"opset {opset} is not supported by the legacy exporter (7..{MAX_LEGACY_OPSET})")
    model = model.eval()
    dummy = torch.zeros(2, contract.N_SAMPLES, dtype=torch.float32)
    dummy[:, ::97] = 1.0
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), _also_returning_features(model) as two:
            warnings.simplefilter("ignore")
            outputs = [contract.OUTPUT_NAME] + ([contract.FEATURES_NAME] if two else [])
            torch.onnx.export(
                model, (dummy,), buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                training=torch.onnx.TrainingMode.PRESERVE,
                input_names=[contract.INPUT_NAME], output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [contract.INPUT_NAME, *outputs]},
            )
    except Exception as exc:  # the exporter raises many types
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {exc}") from exc
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        import onnxsim

        try:
            simplified, ok = onnxsim.simplify(proto, skip_fuse_bn=True)
        except Exception as exc:
            raise ExportError(f"onnxsim failed: {exc}") from exc
        if not ok:
            raise ExportError("onnxsim could not validate the simplified model")
        proto = simplified
        drop_simplifier_metadata(proto)
    constants_to_initializers(proto)
    drop_trailing_empty_inputs(proto)
    record_missing_parameters(proto, model)
    _sort_initializers(proto)
    proto.producer_name = "ser_export"
    from .. import __version__

    proto.producer_version = __version__
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejected the exported model: {str(exc).splitlines()[0]}") from exc
    return proto


def drop_simplifier_metadata(model: onnx.ModelProto) -> None:
    """Remove the ``onnxsim.*`` ``metadata_props`` that onnxsim 0.8 writes about its own run.

    They list the nodes it removed and its settings (about 5 KB): nothing a
    runtime reads, and they change with the onnxsim version, so an unchanged
    model would get new bytes.  The manifest records the onnxsim version instead.
    """
    keep = [e for e in model.metadata_props if not e.key.startswith("onnxsim.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


def _sort_initializers(model: onnx.ModelProto) -> None:
    """Initializers in first-use order (stable bytes whatever order the passes left)."""
    order = {}
    for node in model.graph.node:
        for name in node.input:
            order.setdefault(name, len(order))
    inits = sorted(model.graph.initializer, key=lambda t: (order.get(t.name, len(order)), t.name))
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Set ``metadata`` in the model's ``metadata_props`` (other keys kept; sorted by key)."""
    merged = {e.key: e.value for e in model.metadata_props}
    merged.update({k: str(v) for k, v in metadata.items()})
    del model.metadata_props[:]
    for key in sorted(merged):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, merged[key]


def serialize(model: onnx.ModelProto) -> bytes:
    """Deterministic serialisation."""
    return model.SerializeToString(deterministic=True)

