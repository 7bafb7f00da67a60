"""Name the first graph node whose output diverges between two runtimes.

When a stage fails, the worst case is run once more through a probe copy that
exposes every float intermediate; the node outputs are compared in graph order
(which is topological) and the first one whose error, relative to the
reference's magnitude, exceeds the threshold is reported.  Against PyTorch the
same is done per module, mapping ONNX scopes (``/resnet18/layer1/layer1.0/conv1/Conv``)
to module paths (``resnet18.layer1.0.conv1``) with forward hooks.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from .probe import float_tensors, write_probe
from .runners.base import Runner


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.isfinite(a64).all() or not np.isfinite(b64).all():
        return float("inf") if not (np.isfinite(a64) == np.isfinite(b64)).all() else 0.0
    scale = max(float(np.abs(b64).max()), 1e-6)
    return float(np.abs(a64 - b64).max()) / scale


def first_divergence(model_path: Path, waveform: np.ndarray, reference: Runner, other: Runner,
                     relative_tol: float) -> dict:
    """Run ``waveform`` through both runners with every intermediate exposed.

    Returns ``{"node", "op_type", "output", "relative_error", "checked"}`` for the
    first node beyond ``relative_tol`` (``node`` is None when none is).
    """
    model = onnx.load(str(model_path))
    names = float_tensors(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    with tempfile.TemporaryDirectory(prefix="ser_export_localize_") as tmp:
        probe = write_probe(model_path, Path(tmp) / "all.onnx", names)
        outputs = {}
        for key, runner in (("ref", reference), ("other", other)):
            runner.activate(probe, names)
            outputs[key] = runner.infer(waveform[None])
    for name in names:
        err = _relative_error(outputs["other"][name], outputs["ref"][name])
        if err > relative_tol:
            node = producer[name]
            return {"node": node.name, "op_type": node.op_type, "output": name, "relative_error": err,
                    "checked": len(names), "between": f"{other.name} vs {reference.name}"}
    return {"node": None, "checked": len(names), "between": f"{other.name} vs {reference.name}"}


def scope_to_module(node_name: str) -> str | None:
    """``/resnet18/layer1/layer1.0/conv1/Conv`` -> ``resnet18.layer1.0.conv1``."""
    parts = [p for p in node_name.split("/") if p][:-1]
    return ".".join(p.split(".")[-1] for p in parts) if parts else None


def first_divergence_vs_pytorch(model_path: Path, waveform: np.ndarray, runner: Runner, net: torch.nn.Module,
                                relative_tol: float) -> dict:
    """Per leaf module: its PyTorch output vs the ONNX tensor its scope ends with."""
    model = onnx.load(str(model_path))
    names = set(float_tensors(model))
    last_in_scope: dict[str, str] = {}
    for node in model.graph.node:
        module = scope_to_module(node.name)
        if module:
            for o in node.output:
                if o in names:
                    last_in_scope[module] = o
    leaves = {n: m for n, m in net.named_modules() if n and not list(m.children()) and n in last_in_scope}
    captured: dict[str, np.ndarray] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(
        n, out.detach().numpy() if isinstance(out, torch.Tensor) else None)) for n, m in leaves.items()]
    try:
        with torch.no_grad():
            net(torch.from_numpy(waveform[None]))
    finally:
        for h in hooks:
            h.remove()
    wanted = sorted({last_in_scope[n] for n in leaves})
    with tempfile.TemporaryDirectory(prefix="ser_export_localize_") as tmp:
        probe = write_probe(model_path, Path(tmp) / "mods.onnx", wanted)
        runner.activate(probe, wanted)
        ort_out = runner.infer(waveform[None])
    order = [n for n, _ in net.named_modules() if n in leaves]
    for module in order:
        ours = captured.get(module)
        if ours is None:
            continue
        theirs = ort_out[last_in_scope[module]]
        if theirs.shape != ours.shape:
            continue  # fused or reshaped differently: not comparable
        err = _relative_error(theirs, ours)
        if err > relative_tol:
            return {"module": module, "output": last_in_scope[module], "relative_error": err,
                    "checked": len(order), "between": f"{runner.name} vs pytorch"}
    return {"module": None, "checked": len(order), "between": f"{runner.name} vs pytorch"}


def first_divergence_vs_export(model_path: Path, x: np.ndarray, net: torch.nn.Module, input_name: str,
                               output_names: list[str], relative_tol: float) -> dict:
    """Node by node against the user's own module, exported here the same way.

    ``net`` is exported with ``torch.onnx.export`` (same input and output names, the
    model's opset); tensors with the same name in both graphs are compared in the
    model's graph order through onnxruntime-python, and the first node whose output
    differs beyond ``relative_tol`` is named.  Useful when the module's functional code
    (padding, STFT arithmetic) has no submodule to hook.  Tensors whose names do not
    match (another exporter or opset) are skipped; ``checked`` says how many matched.
    """
    from ser_export.ortsession import cpu_session

    model = onnx.load(str(model_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    with tempfile.TemporaryDirectory(prefix="ser_export_localize_") as tmp:
        ref_path = Path(tmp) / "reference.onnx"
        dims = {input_name: {0: "batch"}, **{o: {0: "batch"} for o in output_names}}
        with torch.no_grad():
            torch.onnx.export(net.eval(), (torch.from_numpy(np.ascontiguousarray(x[None], np.float32)),),
                              str(ref_path), input_names=[input_name], output_names=output_names,
                              dynamic_axes=dims, opset_version=opset, dynamo=False)
        reference = onnx.load(str(ref_path))
        ours_names = float_tensors(model)
        common = [n for n in ours_names if n in set(float_tensors(reference))]
        outs = {}
        for key, m, path in (("ours", model, Path(tmp) / "ours.onnx"), ("ref", reference, Path(tmp) / "ref.onnx")):
            write_probe(m, path, common)
            session = cpu_session(str(path), threads=1, optimize=False)
            outs[key] = dict(zip(common, session.run(common, {input_name: np.ascontiguousarray(x[None], np.float32)})))
    producer = {o: n for n in model.graph.node for o in n.output}
    between = "onnxruntime-python: the model vs pytorch's export of the --torch module"
    for name in common:
        err = _relative_error(outs["ours"][name], outs["ref"][name])
        if err > relative_tol:
            node = producer[name]
            return {"node": node.name, "op_type": node.op_type, "output": name, "relative_error": err,
                    "checked": len(common), "between": between}
    return {"node": None, "checked": len(common), "between": between}
