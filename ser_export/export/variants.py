"""Reduced-precision variants of a release model: ``fp16`` and ``int8`` weights, ``int8s`` arithmetic; front-end
untouched.

A variant is made from its float32 parent's ONNX graph (never retrained):

- ``fp16``: every float32 initializer of the classifier (the nodes downstream of the
  log-mel features output) is stored as float16 and cast back to float32 by a ``Cast``
  node, so the arithmetic stays float32 (onnxruntime folds the casts when the session is
  created); the in-graph front-end's constants stay float32 (the dB stage keeps its
  precision).
- ``int8``: weight-only.  The classifier's ``Conv``, ``Gemm`` and ``MatMul`` weights are
  stored as symmetric int8 with one scale per output channel (onnxruntime.quantization's
  ``quantize_data``) and restored by ``DequantizeLinear``; activations and arithmetic stay
  float32.  Chosen by measurement (issue 12's note) on the release it was chosen on:
  ``quantize_dynamic`` (int8 activations at run time) agreed with the parent on 100.0 % /
  99.1 % of the held-out clips but on only 50.5 % of the gate's cases for AlexNet (max
  logit change 12.7: noise and tones push activations outside what per-tensor 8 bits
  resolve); static QDQ calibrated on training clips agreed on 96.4 % of AlexNet's held-out
  clips.  Weight-only keeps the error to the weights' rounding on every input.
- ``int8s`` (int8 *static*: weights and activations in 8 bits with scales fixed before run time, so the
  classifier's arithmetic runs in int8; ``s`` tells it from the weight-only ``int8`` and from dynamic
  quantisation): QDQ static quantisation of the classifier (:mod:`ser_export.export.calibrate`), batch
  norms folded into their ``Conv``, weights int8 per output channel, activations uint8 per tensor,
  ``Gemm`` outputs left float (the logits are never rounded), the layer norm between the two ``Gemm``
  float; onnxruntime fuses the QDQ groups into ``QLinearConv`` (tests/export/test_int8s.py), in
  onnxruntime-web's wasm as in onnxruntime-python (the same graph optimiser).  Calibration: MinMax on
  256 clips taken evenly from the build's training split (training speakers only, recorded and
  augmented copies), single-threaded and unoptimised, so a fresh build makes the same bytes.  Chosen
  by measurement (``python -m tests.measure_int8s``, the committed release of d317215; the test split's
  224 clips of the 2 held-out speakers, and 200 gate cases):

  ========  ===========================  ================  ==============  ============  ============
  model     design                       held-out top-1    accuracy        gate cases    int8 MACs
                                         agreement         (parent)        agreement,
                                                                           max change
  ========  ===========================  ================  ==============  ============  ============
  AlexNet   MinMax, all int8             98.7 %            78.6 (79.9) %   98.5 %, 2.50  100 %
  AlexNet   Percentile 99.999, all int8  98.7 %            78.6 (79.9) %   97.0 %, 2.45  100 %
  AlexNet   MinMax, first Conv float     99.6 %            80.4 (79.9) %   99.5 %, 2.50  95.8 %
  AlexNet   + last Gemm float (chosen)   100.0 %           79.9 (79.9) %   100.0 %, 2.50 95.8 %
  AlexNet   chosen, recorded clips only  99.1 %            79.9 (79.9) %   98.0 %, 2.37  95.8 %
  ResNet18  MinMax, all int8             98.2 %            82.1 (83.5) %   89.5 %, 4.71  100 %
  ResNet18  Percentile, first Conv float 99.6 %            83.0 (83.5) %   90.5 %, 6.66  97.8 %
  ResNet18  MinMax, first Conv float     99.6 %            83.0 (83.5) %   98.0 %, 4.81  97.8 %
  ResNet18  + last Gemm float (chosen)   99.6 %            83.0 (83.5) %   97.5 %, 4.81  97.8 %
  ResNet18  chosen, recorded clips only  100.0 %           83.5 (83.5) %   90.0 %, 4.58  97.8 %
  ========  ===========================  ================  ==============  ============  ============

  Entropy gave MinMax's figures on every row; 64 clips moved ResNet18's gate cases to 90.5 %, 1024 did
  not beat 256; per-tensor weights cost ResNet18 0.9 points; leaving the residual ``Add``s and the pooling
  float changed no figure.
  Quantising the first ``Conv`` rounds the log-mel dB input to the uint8 grid (about 0.3 dB a step): the
  front-end's dynamic range is the point of the dB scale, so it stays float (4 % of the MACs).  The
  augmented copies (noise, pitch, stretch) widen the calibrated ranges towards the gate's noise and tone
  cases.  The largest logit changes are on inputs no speech calibrates for: ResNet18's 4.8 on a 9.6 kHz
  chirp, AlexNet's 2.5 on near-silence (the ``int8s`` tolerance class leaves 6.0).

Each variant keeps the parent's metadata and adds ``variant`` (JSON: name, precision,
tolerance class, method, the parent's sha256), so the gate and the runtimes know what
they hold.  Which backends a variant declares comes from the operator lint, not from here.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..contract import FEATURES_NAME
from ..errors import ExportError
from .calibrate import StaticInt8Spec, quantize_classifier
from .lint import LintReport, lint_model, require_compatible
from .onnx_export import serialize

#: The variants the build makes, in order, and the tolerance class each is judged by
#: (``tolerances.json``'s ``classes``).
VARIANTS = ("fp16", "int8", "int8s")
TOLERANCE_CLASS = {"fp16": "fp16", "int8": "int8", "int8s": "int8s"}
#: The ``int8s`` variant's quantisation and calibration, chosen by measurement (``python -m tests.measure_int8s``;
#: the module docstring).
INT8S_SPEC = StaticInt8Spec(method="minmax", per_channel=True, clips=256, keep_float=("first_conv", "last_gemm"),
                            augmented=True)
PRECISION = {"fp16": "float16 weights, float32 arithmetic", "int8": "int8 weights (per output channel), float32 arithmetic",
             "int8s": "int8 weights (per output channel) and uint8 activations, int8 arithmetic in the classifier"}
METHOD = {"fp16": "classifier initializers stored as float16, Cast to float32 in the graph; front-end float32",
          "int8": "weight-only: classifier Conv/Gemm/MatMul weights symmetric int8 per output channel "
                  "(onnxruntime.quantization quantize_data), DequantizeLinear to float32; front-end float32",
          "int8s": "static QDQ (onnxruntime.quantization QDQQuantizer), batch norms folded into their Conv, "
                   f"{INT8S_SPEC.describe()}; front-end float32"}
#: The variants made from calibration clips (:func:`make_variant`'s ``calibration``).
CALIBRATED = ("int8s",)
#: The metadata key a variant carries.
METADATA_KEY = "variant"


def variant_file(parent_file: str, name: str) -> str:
    """``voice_emotion_cnn.onnx`` -> ``voice_emotion_cnn.fp16.onnx``."""
    stem = parent_file[:-5] if parent_file.endswith(".onnx") else parent_file
    return f"{stem}.{name}.onnx"


def classifier_nodes(model: onnx.ModelProto, features: str) -> list[onnx.NodeProto]:
    """The nodes downstream of tensor ``features`` (the graph is in topological order)."""
    reach, out = {features}, []
    for node in model.graph.node:
        if any(i in reach for i in node.input):
            out.append(node)
            reach.update(node.output)
    if not out:
        raise ExportError(f"no node reads {features!r}: cannot tell the classifier from the front-end")
    return out


def _front_end_inputs(model: onnx.ModelProto, classifier: list[onnx.NodeProto]) -> set[str]:
    ids = {id(n) for n in classifier}
    return {i for n in model.graph.node if id(n) not in ids for i in n.input}


def to_fp16(model: onnx.ModelProto, features: str) -> onnx.ModelProto:
    """``model`` with its classifier's float32 initializers stored as float16 (see the module docstring)."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    graph = out.graph
    classifier = classifier_nodes(out, features)
    used = {i for n in classifier for i in n.input}
    front = _front_end_inputs(out, classifier)
    casts, kept = [], []
    for t in graph.initializer:
        if t.name in used and t.name not in front and t.data_type == TensorProto.FLOAT:
            half = numpy_helper.to_array(t).astype(np.float16)
            if not np.isfinite(half).all():
                raise ExportError(f"initializer {t.name!r} overflows float16 (|w| > 65504)")
            kept.append(numpy_helper.from_array(half, f"{t.name}.fp16"))
            casts.append(helper.make_node("Cast", [f"{t.name}.fp16"], [t.name], name=f"{t.name}.cast",
                                          to=TensorProto.FLOAT))
        else:
            kept.append(t)
    if not casts:
        raise ExportError("the classifier has no float32 initializers to store as float16")
    _replace(graph, kept, casts)
    return out


def _replace(graph: onnx.GraphProto, initializers: list, first_nodes: list) -> None:
    """Set ``graph``'s initializers and put ``first_nodes`` (which make the weights the rest reads) first."""
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(first_nodes + nodes)


def _quantize_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 ``(q, scale)`` of ``w``, one scale per slice along ``axis``, by onnxruntime's
    :func:`onnxruntime.quantization.quant_utils.quantize_data` (``w ~ q * scale``)."""
    from onnx import TensorProto as TP
    from onnxruntime.quantization.quant_utils import quantize_data

    moved = np.moveaxis(w, axis, 0)
    qs, scales = [], []
    for row in moved:
        _zero, scale, q = quantize_data(row.ravel(), TP.INT8, True)[-3:]
        qs.append(np.asarray(q, np.int8).reshape(row.shape))
        scales.append(np.float32(scale if float(scale) > 0 else 1.0))
    return np.moveaxis(np.stack(qs), 0, axis), np.asarray(scales, np.float32)


#: Operators whose weight (input 1) the int8 variant stores in 8 bits, and the axis of its output channels.
WEIGHT_AXIS = {"Conv": 0, "Gemm": None, "MatMul": 1}


def to_int8(model: onnx.ModelProto, features: str) -> onnx.ModelProto:
    """``model`` with the classifier's ``Conv``/``Gemm``/``MatMul`` weights in int8 (see the module docstring).

    Weight-only: each weight becomes an int8 initializer and a per-output-channel scale, and a
    ``DequantizeLinear`` restores float32 weights; activations and arithmetic stay float32."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    graph = out.graph
    classifier = classifier_nodes(out, features)
    front = _front_end_inputs(out, classifier)
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    dq_nodes, replaced = [], {}
    for node in classifier:
        if node.op_type not in WEIGHT_AXIS or len(node.input) < 2:
            continue
        name = node.input[1]
        t = inits.get(name)
        if t is None or name in front or name in replaced or t.data_type != TensorProto.FLOAT or readers[name] != 1:
            continue
        w = numpy_helper.to_array(t)
        axis = WEIGHT_AXIS[node.op_type]
        if node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axis = 0 if trans_b else 1
        if w.ndim < 2:
            continue
        q, scale = _quantize_per_channel(w, axis)
        replaced[name] = [numpy_helper.from_array(q, f"{name}.int8"), numpy_helper.from_array(scale, f"{name}.scale")]
        dq_nodes.append(helper.make_node("DequantizeLinear", [f"{name}.int8", f"{name}.scale"], [name],
                                         name=f"{name}.dequantize", axis=axis))
    if not dq_nodes:
        raise ExportError("the classifier has no Conv/Gemm/MatMul weights to store in int8")
    kept = [t for t in graph.initializer if t.name not in replaced] + [x for pair in replaced.values() for x in pair]
    _replace(graph, kept, dq_nodes)
    return out


def to_int8s(model: onnx.ModelProto, features: str, calibration: np.ndarray,
             spec: StaticInt8Spec = INT8S_SPEC) -> onnx.ModelProto:
    """``model`` with its classifier statically quantised (int8 weights and uint8 activations, QDQ), calibrated on
    ``calibration`` (log-mel features of training-speaker clips, :func:`ser_export.export.calibrate.calibration_clips`;
    shape ``(n, 1, n_mels, n_frames)``); the front-end stays float32 (see the module docstring)."""
    from ..contract import OUTPUT_NAME

    return quantize_classifier(model, features, OUTPUT_NAME, calibration, spec)


MAKERS = {"fp16": to_fp16, "int8": to_int8, "int8s": to_int8s}


@dataclasses.dataclass(frozen=True)
class VariantInfo:
    """What a variant's ``variant`` metadata says."""

    name: str
    parent_sha256: str
    tolerance_class: str
    precision: str
    method: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


def make_variant(parent: onnx.ModelProto, name: str, parent_sha256: str, features: str,
                 calibration: np.ndarray | None = None) -> onnx.ModelProto:
    """The ``name`` variant of ``parent`` (float32, with metadata), with ``variant`` metadata added.

    ``calibration``: the calibration clips' log-mel features (shape ``(n, 1, n_mels, n_frames)``), needed by the
    variants of :data:`CALIBRATED` and ignored by the others."""
    if name not in MAKERS:
        raise ExportError(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    if name in CALIBRATED:
        if calibration is None:
            raise ExportError(f"the {name} variant needs calibration clips (the training split's features)")
        out = MAKERS[name](parent, features, calibration)
    else:
        out = MAKERS[name](parent, features)
    for entry in list(out.metadata_props):  # the quantiser may add its own; the parent's are kept below
        if entry.key not in {e.key for e in parent.metadata_props}:
            out.metadata_props.remove(entry)
    info = VariantInfo(name, parent_sha256, TOLERANCE_CLASS[name], PRECISION[name], METHOD[name])
    for entry in list(out.metadata_props):
        if entry.key == METADATA_KEY:
            out.metadata_props.remove(entry)
    out.metadata_props.add(key=METADATA_KEY, value=info.to_json())
    try:
        onnx.checker.check_model(out)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{name} variant is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    return out


def classifier_model(model: onnx.ModelProto, features: str, output: str) -> onnx.ModelProto:
    """The sub-graph from ``features`` to ``output`` (to score cached log-mel features)."""
    from onnx.utils import Extractor

    extracted = Extractor(model).extract_model([features], [output])
    return extracted


def session(model: onnx.ModelProto | bytes, threads: int = 1):
    from ..ortsession import cpu_session

    return cpu_session(model if isinstance(model, bytes) else model.SerializeToString(), threads=threads)


def run_batches(sess, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """The first output of ``sess`` on ``x`` (first axis batched)."""
    name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    parts = [sess.run([out], {name: np.ascontiguousarray(x[i:i + batch])})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


@dataclasses.dataclass(frozen=True)
class MadeVariant:
    """One variant of a release model, made, linted and serialised (not yet judged against its parent).

    ``declared_backends``: the build's targets whose operator lint it passes (never empty)."""

    name: str
    file: str
    parent_sha256: str
    proto: onnx.ModelProto = dataclasses.field(repr=False)
    blob: bytes = dataclasses.field(repr=False)
    lint: LintReport = dataclasses.field(repr=False)
    declared_backends: tuple[str, ...] = ()

    @property
    def tolerance_class(self) -> str:
        return TOLERANCE_CLASS[self.name]


def make_variants(parent: onnx.ModelProto, parent_sha256: str, parent_file: str, arch: str,
                  names: Sequence[str], backends: Sequence[str], tables,
                  calibration: np.ndarray | None = None) -> dict[str, MadeVariant]:
    """Each of ``names`` made of ``parent`` (:func:`make_variant`, ``calibration`` for those of
    :data:`CALIBRATED`), linted on the build's target ``backends`` with the operator ``tables`` and serialised:
    ``name -> MadeVariant``.  A variant declares the targets whose lint it passes; one that passes none is
    refused (:func:`ser_export.export.lint.require_compatible`)."""
    out = {}
    for name in names:
        child = make_variant(parent, name, parent_sha256, FEATURES_NAME, calibration)
        lint = lint_model(child, backends, tables)
        declared = tuple(b for b in backends if lint.compatible(b))
        if not declared:
            require_compatible(lint, backends, what=f"{arch} {name} variant")
        out[name] = MadeVariant(name, variant_file(parent_file, name), parent_sha256, child, serialize(child), lint,
                                declared)
    return out


__all__ = ["VARIANTS", "TOLERANCE_CLASS", "CALIBRATED", "INT8S_SPEC", "METADATA_KEY", "variant_file",
           "classifier_nodes", "to_fp16", "to_int8", "to_int8s",
           "make_variant", "classifier_model", "session", "run_batches", "VariantInfo",
           "MadeVariant", "make_variants"]
