"""Temporary copies of a release model that expose inner tensors as extra graph outputs.

The release file is never modified; ORT-python and the Node runners load the same
copy, so every runtime computes exactly the same graph.
"""
from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def float_tensors(model: onnx.ModelProto) -> list[str]:
    """Every node output (in graph order) whose inferred type is float32."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    return [o for n in model.graph.node for o in n.output if o and types.get(o) == TensorProto.FLOAT]


def write_probe(model: onnx.ModelProto | Path, out_path: Path, extra_outputs: list[str]) -> Path:
    """Write ``model`` (a model, or a probe file written before) to ``out_path`` with
    ``extra_outputs`` added as graph outputs; the copy holds all its data (no external files)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    produced = {o for n in copy.graph.node for o in n.output}
    for name in extra_outputs:
        if name in have:
            continue
        if name not in produced:
            raise ValueError(f"{copy.graph.name or 'the model'} has no tensor named {name!r}")
        copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    onnx.save(copy, str(out_path))
    return out_path
