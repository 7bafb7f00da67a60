"""The first graph node whose output diverges on a stream's failing chunk.

A stateful model is probed on its shrunk stream (which ends at the first failing chunk): a
copy exposing every float intermediate is run chunk by chunk through ``Runner.run_stream``
(so the states are carried as in the real run, on any runtime that runs streams), and the
values of the last chunk are compared in graph order, as :func:`parity.localize.first_divergence`
does for one input.  Branches of ``If`` nodes (Silero's ``sr == 16000``) are inlined first, the
branch each one takes on that stream, so their nodes are seen too.  Two sides: the same model on
two runtimes, or a model and its float parent (a variant, or a copy with one weight changed) on
one runtime; tensors are matched by name.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper

from .localize import _relative_error
from .probe import float_tensors, write_probe
from .runners.base import Runner
from .runners.stream_loop import drive_stream, output_names

#: Most rounds of ``If`` inlining (nested branches).
MAX_DEPTH = 6


def _conditions(model: onnx.ModelProto, protocol: Mapping, y: np.ndarray) -> dict[str, bool]:
    """The value of each top-level ``If`` condition on the last chunk of stream ``y`` (onnxruntime-python)."""
    from ser_export.ortsession import cpu_session

    conds = [n.input[0] for n in model.graph.node if n.op_type == "If"]
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    for c in conds:
        if c not in have:
            copy.graph.output.append(helper.make_tensor_value_info(c, TensorProto.BOOL, None))
    with tempfile.TemporaryDirectory(prefix="ser_export_localize_") as tmp:
        path = Path(tmp) / "conds.onnx"
        onnx.save(copy, str(path))
        session = cpu_session(str(path), threads=1)
    names = output_names(protocol)
    last: dict[str, np.ndarray] = {}

    def step(feed):
        values = dict(zip(names + conds, session.run(names + conds, feed)))
        last.update({c: values[c] for c in conds})
        return values

    drive_stream(step, protocol, y)
    return {c: bool(np.asarray(last[c]).reshape(-1)[0]) for c in conds}


def inline_branches(model: onnx.ModelProto, protocol: Mapping, y: np.ndarray) -> onnx.ModelProto:
    """``model`` with every ``If`` replaced by the nodes of the branch it takes on stream ``y`` (the branch's
    outputs tied to the ``If``'s by ``Identity`` nodes), repeated for nested ones."""
    for _ in range(MAX_DEPTH):
        if not any(n.op_type == "If" for n in model.graph.node):
            break
        taken = _conditions(model, protocol, y)
        nodes = []
        for n in model.graph.node:
            if n.op_type != "If":
                nodes.append(n)
                continue
            branch = next(a.g for a in n.attribute if a.name == ("then_branch" if taken[n.input[0]] else "else_branch"))
            nodes += list(branch.node)
            model.graph.initializer.extend(branch.initializer)
            nodes += [helper.make_node("Identity", [b.name], [o], name=f"{n.name or 'If'}/{o}")
                      for b, o in zip(branch.output, n.output)]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return model


def _probe_values(model_path: Path, runner: Runner, protocol: Mapping, y: np.ndarray, tmp: Path,
                  tag: str) -> tuple[dict[str, np.ndarray], dict[str, onnx.NodeProto], list[str]]:
    """Every float intermediate of ``model_path`` on the last chunk of ``y``, on ``runner``."""
    model = inline_branches(onnx.load(str(model_path)), protocol, y)
    names = float_tensors(model)
    probe = write_probe(model, tmp / f"{tag}.onnx", names)
    wanted = [n for n in names if n not in output_names(protocol)]
    wire = dict(protocol, outputs=list(protocol["outputs"]) + wanted)
    got = runner.run_stream(probe, wire, [y]).outputs[0]
    producer = {o: n for n in model.graph.node for o in n.output}
    return {n: got[n][-1] for n in names if n in got}, producer, names


def first_divergence_on_chunk(model_path: Path, protocol: Mapping, y: np.ndarray, runner: Runner, other: Runner,
                              relative_tol: float, parent_path: Path | None = None,
                              parent_protocol: Mapping | None = None) -> dict:
    """The first node whose output on the last chunk of ``y`` differs beyond ``relative_tol``.

    ``model_path`` on ``other`` vs ``model_path`` on ``runner`` or, with ``parent_path``, ``model_path`` vs
    ``parent_path`` (run with ``parent_protocol``, default ``protocol``) both on ``runner``.  Returns ``{"node", "op_type", "output", "relative_error", "checked",
    "between", "chunk"}`` (``node`` None when none differs); a ``Constant`` node that differs is named as
    ``weight`` and the first computing node after it is the divergence.
    """
    with tempfile.TemporaryDirectory(prefix="ser_export_localize_") as tmp:
        tmp = Path(tmp)
        ours, producer, names = _probe_values(model_path, runner if parent_path else other, protocol, y, tmp, "ours")
        if parent_path is not None:
            ref, _, ref_names = _probe_values(parent_path, runner, parent_protocol or protocol, y, tmp, "parent")
            between = f"{Path(model_path).name} vs its parent {Path(parent_path).name} on {runner.name}"
        else:
            ref, _, ref_names = _probe_values(model_path, runner, protocol, y, tmp, "ref")
            between = f"{other.name} vs {runner.name}"
    common = [n for n in names if n in set(ref_names) and n in ours and n in ref]
    chunk = int(-(-len(y) // int(protocol["signal"]["chunk"]))) - 1
    weight = None
    for name in common:
        err = _relative_error(ours[name], ref[name])
        if err > relative_tol:
            node = producer[name]
            if node.op_type == "Constant":
                weight = weight or name
                continue
            return {"node": node.name or f"{node.op_type} -> {name}", "op_type": node.op_type, "output": name,
                    "relative_error": err, "checked": len(common), "between": between, "chunk": chunk,
                    **({"weight": weight} if weight else {})}
    return {"node": None, "checked": len(common), "between": between, "chunk": chunk,
            **({"weight": weight} if weight else {})}
