"""Static int8 quantisation of a release model's classifier, calibrated on training-speaker clips.

The ``int8s`` variant (:mod:`ser_export.export.variants`) runs the classifier's convolutions and
fully connected layers in int8 arithmetic: weights are int8 (one scale per output channel), and the
activations entering and leaving them are uint8 with one scale and zero point per tensor, fixed by
*calibration*: the ranges the float model's activations take on a set of training clips.  The graph
is written in the QDQ form (``QuantizeLinear`` -> ``DequantizeLinear`` -> ``Conv`` -> ``QuantizeLinear``),
which onnxruntime's graph optimiser (in onnxruntime-python and in onnxruntime-web's wasm build alike)
fuses into ``QLinearConv``/``QGemm`` kernels; a runtime that does not fuse runs the same arithmetic in
float with the rounding of the int8 grid.

Everything here is deterministic: the calibration clips are chosen by index from the training split in
its fixed (sorted) order, the calibration session runs single-threaded without graph optimisation, and
batch-norm folding is plain NumPy arithmetic; the same float model and clips give the same bytes.

The same bytes on any x86-64 machine, too.  The calibration session is onnxruntime's (MLAS), whose float
kernels are chosen by the processor (AVX2, AVX-512) with no cap like :mod:`ser_export.numenv`'s, so the
activations' minima and maxima may differ in their last bits from one machine to another (about 1e-7
relative).  They set the ``QuantizeLinear`` scales and zero points stored in the file, so each calibrated
range is snapped outward to a coarse grid (:func:`snap_range`) before any scale is computed: the minimum
down and the maximum up to :data:`RANGE_BITS` significant binary digits, a grid of 8 to 16 steps per
octave.  A change of ``d`` (relative) in an end crosses a grid point with probability ``d * |x| / step``,
at most ``d * 2**RANGE_BITS`` (1.6e-5 for ``d = 1e-6``, 1.6e-6 for the 1e-7 that float kernels differ by);
summed over the ends of the committed release's quantised tensors (:func:`range_ends`: 38 non-zero ends
for AlexNet, 90 for ResNet18), the chance that a machine's kernels move a byte of either file is under
2e-3 at ``d = 1e-6`` and under 2e-4 at ``d = 1e-7``.  The price: each range is widened by less than one
step, at most 1/8 (12.5 %) of its end (and by the factor of :func:`tensor_factor`, under 0.4 %), so an
activation's uint8 step is that much coarser; measured on the committed release's 224 held-out clips
(measured ranges -> snapped and spread, ``python -m ser_export variants saved_models``): AlexNet top-1
agreement with its parent 100.0 -> 99.6 %, accuracy 79.9 -> 80.4 % (parent 79.9 %); ResNet18 99.6 -> 99.6 %,
83.0 % both (parent 83.5 %).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from pathlib import Path
from typing import Collection, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ExportError

#: Calibration methods (onnxruntime.quantization's ``CalibrationMethod`` names, lower case).
METHODS = ("minmax", "percentile", "entropy")

#: Operators whose inputs and outputs are quantised (the rest of the classifier, e.g. the layer norm before
#: the last ``Gemm`` and the batch norms that follow a pooling, stays float32 between a ``DequantizeLinear``
#: and a ``QuantizeLinear``).
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Flatten")

#: Names of the classifier nodes a spec may keep in float (resolved on the graph by :func:`float_node_names`).
FLOAT_ROLES = ("first_conv", "last_gemm")


@dataclasses.dataclass(frozen=True)
class StaticInt8Spec:
    """How the classifier is quantised and calibrated.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    per_channel : bool
        One weight scale per output channel (else one per tensor).
    clips : int
        Calibration clips taken from the training split (:func:`calibration_clips`).
    keep_float : tuple of str
        Roles (:data:`FLOAT_ROLES`) of the nodes left in float32.
    ops : tuple of str
        The operators quantised (a subset of :data:`QUANTIZED_OPS`; ``Conv`` and ``Gemm`` at least).
    augmented : bool
        Whether the training split's augmented copies (noise, pitch, stretch, shifts of training clips) are
        among the clips chosen from, beside the recorded clips.
    percentile : float
        The ``percentile`` method's coverage, in per cent.
    """

    method: str = "minmax"
    per_channel: bool = True
    clips: int = 256
    keep_float: tuple[str, ...] = ()
    ops: tuple[str, ...] = QUANTIZED_OPS
    augmented: bool = True
    percentile: float = 99.999

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ExportError(f"unknown calibration method {self.method!r}; choose from {list(METHODS)}")
        bad = [r for r in self.keep_float if r not in FLOAT_ROLES]
        if bad:
            raise ExportError(f"unknown float-kept roles {bad}; choose from {list(FLOAT_ROLES)}")
        bad = [op for op in self.ops if op not in QUANTIZED_OPS]
        if bad or not {"Conv", "Gemm"} <= set(self.ops):
            raise ExportError(f"quantised operators {list(self.ops)}: choose Conv, Gemm and any of "
                              f"{list(QUANTIZED_OPS)}")
        if self.clips < 1:
            raise ExportError(f"calibration needs at least one clip, not {self.clips}")

    def describe(self) -> str:
        kept = ", ".join(self.keep_float) or "none"
        return (f"{self.method} calibration on {self.clips} training-speaker clips"
                f"{' (recorded and augmented)' if self.augmented else ' (recorded only)'}, "
                f"{'per-channel' if self.per_channel else 'per-tensor'} int8 weights, uint8 activations, "
                f"quantised: {', '.join(self.ops)}; kept float: {kept}; calibrated ranges snapped outward to "
                f"{RANGE_BITS} significant bits")


def calibration_clips(features: np.ndarray, speakers: Sequence[str], augmented: np.ndarray,
                      held_out_speakers: Collection[str], n: int, with_augmented: bool = True) -> np.ndarray:
    """The calibration clips: ``n`` training clips evenly spaced in the split's order.

    Parameters
    ----------
    features : np.ndarray [shape=(m, 1, n_mels, n_frames), dtype=float32]
        The training split's log-mel features (dB), in the build's order.
    speakers : sequence of str
        ``corpus:speaker`` of each clip.
    augmented : np.ndarray [shape=(m,), dtype=bool]
        Whether each clip is an augmented copy.
    held_out_speakers : collection of str
        The speakers of the validation and test splits: a clip of one of them is refused
        (:class:`ExportError`): the variant is judged on them and must not have seen them.
    n : int
        How many clips (all of them when the split has fewer).
    with_augmented : bool
        Choose among the augmented copies too (else among the recorded clips only).

    Returns
    -------
    np.ndarray [shape=(min(n, k), 1, n_mels, n_frames), dtype=float32]
    """
    leaked = sorted(set(speakers) & set(held_out_speakers))
    if leaked:
        raise ExportError(f"calibration clips of held-out speakers {leaked[:3]}: calibration must use training "
                          f"speakers only")
    pool = np.arange(len(speakers)) if with_augmented else np.flatnonzero(~np.asarray(augmented, bool))
    if pool.size == 0:
        raise ExportError("the training split has no clip to calibrate on")
    pick = np.unique(np.linspace(0, pool.size - 1, min(n, pool.size)).round().astype(np.int64))
    return np.ascontiguousarray(features[pool[pick]], np.float32)


def calibration_of(dataset, spec: StaticInt8Spec) -> np.ndarray:
    """:func:`calibration_clips` of a build's :class:`ser_export.data.dataset.Dataset` for ``spec``: its
    ``train`` split, the speakers of every other split (``val``, ``test``) held out."""
    train = dataset.splits["train"]
    held_out = {s for split, fs in dataset.splits.items() if split != "train" for s in fs.speakers}
    return calibration_clips(train.features, train.speakers, train.augmented, held_out, spec.clips, spec.augmented)


def fold_batch_norms(model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto]) -> onnx.ModelProto:
    """``model`` with each ``Conv`` among ``nodes`` whose only reader is a ``BatchNormalization`` merged with it
    (``W' = W * g / sqrt(v + eps)`` per output channel, ``b' = (b - m) * g / sqrt(v + eps) + beta``, in float64
    then float32), so the int8 convolution includes the normalisation.  Other nodes are untouched."""
    out = onnx.ModelProto.FromString(model.SerializeToString())
    graph = out.graph
    names = {n.name for n in nodes}
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    drop: set[str] = set()
    new_inits: list[onnx.TensorProto] = []
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.name not in names or conv.input[1] not in inits:
            continue
        after = readers.get(conv.output[0], [])
        if len(after) != 1 or after[0].op_type != "BatchNormalization" or len(after[0].output) != 1:
            continue
        bn = after[0]
        if not all(i in inits for i in bn.input[1:5]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 and conv.input[2]
             else np.zeros(w.shape[0]))
        k = gamma / np.sqrt(var + eps)
        wname, bname = f"{conv.name}.folded_weight", f"{conv.name}.folded_bias"
        new_inits.append(numpy_helper.from_array(
            (w * k.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32), wname))
        new_inits.append(numpy_helper.from_array(((b - mean) * k + beta).astype(np.float32), bname))
        x = conv.input[0]
        del conv.input[:]
        conv.input.extend([x, wname, bname])
        conv.output[0] = bn.output[0]
        drop.add(bn.output[0])
    if not drop:
        return out
    kept = [n for n in graph.node if not (n.op_type == "BatchNormalization" and n.output[0] in drop)]
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    kept_inits = [t for t in graph.initializer if t.name in used] + new_inits
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return out


def quantized_nodes(nodes: Sequence[onnx.NodeProto], ops: Collection[str] = QUANTIZED_OPS) -> list[onnx.NodeProto]:
    """The classifier ``nodes`` (in order) that are quantised: those of ``ops`` up to the first fully
    connected layer (the convolutional part, its residual ``Add``s and pooling), and every ``Gemm``/``MatMul``;
    whatever lies between and after the fully connected layers (a layer norm's ``Add``/``Mul``, say) stays
    float32."""
    out, dense = [], False
    for n in nodes:
        if n.op_type in ("Gemm", "MatMul"):
            dense = True
            out.append(n)
        elif n.op_type in ops and not dense:
            out.append(n)
    return out


def float_node_names(nodes: Sequence[onnx.NodeProto], roles: Sequence[str]) -> list[str]:
    """The names of the classifier ``nodes`` that ``roles`` (:data:`FLOAT_ROLES`) keep in float32."""
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    gemms = [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")]
    found = {"first_conv": convs[:1], "last_gemm": gemms[-1:]}
    return [name for r in roles for name in found[r]]


#: Significant binary digits a calibrated range's ends keep (:func:`snap_range`): 2**(RANGE_BITS - 1) to
#: 2**RANGE_BITS grid steps per octave.
RANGE_BITS = 4


def snap_range(lowest: np.ndarray, highest: np.ndarray, bits: int = RANGE_BITS) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated range widened outward to ``bits`` significant binary digits: ``lowest`` down, ``highest`` up.

    An end ``x = m * 2**e`` (``m`` in [0.5, 1)) becomes the next multiple of ``2**(e - bits)`` below (``lowest``)
    or above (``highest``) it, or ``x`` itself when it is one; 0 stays 0.  So last-bit differences between
    machines' kernels give the same ends, but for an end within ``|change|`` of a grid point (the module
    docstring gives the odds).

    Parameters
    ----------
    lowest, highest : np.ndarray [shape=() or (n,), dtype=float32]
        The calibrated minimum and maximum of a tensor (onnxruntime.quantization ``TensorData``'s).
    bits : int
        Significant binary digits kept, >= 1.

    Returns
    -------
    (np.ndarray, np.ndarray) [shapes and dtypes of the inputs]
        The snapped ends; each is exactly representable in float32 (at most ``bits + 1`` significant digits).
    """
    def snap(x: np.ndarray, rounding) -> np.ndarray:
        x64 = np.asarray(x, np.float64)
        _m, e = np.frexp(np.abs(x64))  # |x| = m * 2**e, m in [0.5, 1)
        step = np.ldexp(1.0, e - bits)
        return (rounding(x64 / step) * step).astype(np.asarray(x).dtype)

    if bits < 1:
        raise ValueError(f"bits must be >= 1, not {bits}")
    return snap(lowest, np.floor), snap(highest, np.ceil)


def range_ends(ranges) -> int:
    """How many ends of ``ranges`` (``TensorsData``) are not zero: those a machine's kernels could move."""
    return sum(int(np.count_nonzero(np.asarray(end))) for td in ranges.values() for end in td.range_value)


class _Clips:
    """onnxruntime.quantization's calibration reader over a fixed array, in order, one clip at a time."""

    def __init__(self, name: str, x: np.ndarray):
        self.name, self.x, self.i = name, x, 0

    def get_next(self):
        if self.i >= self.x.shape[0]:
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1:self.i]}

    def rewind(self) -> None:
        self.i = 0


def tensor_ranges(classifier: onnx.ModelProto, clips: np.ndarray, spec: StaticInt8Spec):
    """The ranges (onnxruntime.quantization ``TensorsData``) the quantiser computes its scales from:
    :func:`measured_ranges`, each snapped outward by :func:`snap_range` (so the same on any x86-64 machine)."""
    from onnxruntime.quantization.calibrate import TensorData, TensorsData

    measured = measured_ranges(classifier, clips, spec)
    snapped = {}
    for name, td in measured.items():
        fields = {k: v for k, v in td.to_dict().items() if k != "CLS"}
        lowest, highest = snap_range(td.lowest, td.highest)
        f = tensor_factor(name)
        fields["lowest"], fields["highest"] = ((np.asarray(lowest, np.float64) * f).astype(lowest.dtype),
                                               (np.asarray(highest, np.float64) * f).astype(highest.dtype))
        snapped[name] = TensorData(**fields)
    return TensorsData(measured.calibration_method, snapped)


def tensor_factor(name: str) -> float:
    """A fixed factor in [1, 1 + 2**-8) of tensor ``name`` (from its sha256) that :func:`tensor_ranges` multiplies
    both snapped ends of its range by.

    Snapped ends alone make the scales of two tensors a ratio of small integers (a residual ``Add``'s inputs
    1.3 and 0.45 times its output's scale, say), so the requantisation in ``QLinearAdd``/``QLinearConv``
    meets values within a rounding error of a half step far more often than with measured ranges, and
    onnxruntime-python's and onnxruntime-web's kernels round those differently: the quick build's ResNet18
    ``int8s`` gave logits 0.33 apart on the two runtimes for near-silence (0.03 with measured ranges).  The
    factor spreads the ratios again; it depends on the name only, so it is the same on every machine."""
    import hashlib

    u = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2 ** 32
    return 1.0 + u * 2.0 ** -8


def measured_ranges(classifier: onnx.ModelProto, clips: np.ndarray, spec: StaticInt8Spec):
    """The ranges (onnxruntime.quantization ``TensorsData``) of the quantised operators' float tensors on
    ``clips``, by ``spec.method``, as onnxruntime measures them; the calibration session is single-threaded
    and unoptimised (:func:`ser_export.ortsession.cpu_session`), so the ranges are the same on every run of
    one machine (not across machines: :func:`tensor_ranges` snaps them)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    from ..ortsession import cpu_session

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[spec.method]
    extra = {"percentile": spec.percentile} if spec.method == "percentile" else {}
    inferred = onnx.shape_inference.infer_shapes(classifier)
    with tempfile.TemporaryDirectory(prefix="ser_export.calibrate.") as tmp:
        src, aug = Path(tmp) / "classifier.onnx", Path(tmp) / "augmented.onnx"
        onnx.save_model(inferred, src)
        calibrator = create_calibrator(src, list(QUANTIZED_OPS), augmented_model_path=aug.as_posix(),
                                       calibrate_method=method, extra_options=extra)
        calibrator.infer_session = cpu_session(aug.read_bytes(), threads=1, optimize=False)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their progress
            calibrator.collect_data(_Clips(classifier.graph.input[0].name, clips))
            return calibrator.compute_data()


def quantize_classifier(model: onnx.ModelProto, features: str, output: str, clips: np.ndarray,
                        spec: StaticInt8Spec) -> onnx.ModelProto:
    """``model`` with its classifier (the nodes downstream of tensor ``features``) statically quantised.

    Parameters
    ----------
    model : onnx.ModelProto
        The float32 release model (front-end and classifier).
    features, output : str
        The log-mel features tensor (where the classifier starts) and the logits output.
    clips : np.ndarray [shape=(n, 1, n_mels, n_frames), dtype=float32]
        Calibration features (:func:`calibration_clips`).
    spec : StaticInt8Spec

    Returns
    -------
    onnx.ModelProto
        The QDQ model: the front-end's nodes as they were, the classifier's ``Conv`` (batch norms folded),
        ``Gemm`` and their activations quantised but for the nodes ``spec.keep_float`` names.
    """
    from onnx.utils import Extractor
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    from .variants import classifier_nodes

    folded = fold_batch_norms(model, classifier_nodes(model, features))
    nodes = classifier_nodes(folded, features)
    keep = set(float_node_names(nodes, spec.keep_float))
    quantize = [n.name for n in quantized_nodes(nodes, spec.ops) if n.name not in keep]
    if not any(n.op_type in ("Conv", "Gemm", "MatMul") and n.name in quantize for n in nodes):
        raise ExportError("the classifier has no Conv/Gemm/MatMul left to quantise")
    ranges = tensor_ranges(Extractor(folded).extract_model([features], [output]), clips, spec)
    inferred = onnx.shape_inference.infer_shapes(folded)
    quantizer = QDQQuantizer(inferred, spec.per_channel, False, QuantType.QInt8, QuantType.QUInt8, ranges,
                             quantize, list(keep), list(spec.ops),
                             {"ActivationSymmetric": False, "WeightSymmetric": True,
                              # the fully connected layers' outputs stay float: the logits are never rounded to
                              # the uint8 grid, and the layer norm between the two Gemms is float anyway
                              "OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]})
    quantizer.quantize_model()
    quantizer.model.topological_sort()
    out = quantizer.model.model
    del out.graph.value_info[:]
    _keep_float_output(out, features)
    return out


def _keep_float_output(model: onnx.ModelProto, features: str) -> None:
    """Give the graph output ``features`` back to the front-end's float tensor.

    The quantiser renames a quantised tensor's producer output and names its ``DequantizeLinear`` output after
    the tensor, so a graph output (the log-mel features) would be the uint8-rounded copy; here the front-end's
    output is ``features`` again and the classifier reads ``<features>.dequantized``."""
    graph = model.graph
    dq = next((n for n in graph.node if n.op_type == "DequantizeLinear" and features in n.output), None)
    if dq is None:
        return
    q = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.output[0] == dq.input[0])
    float_name, rounded = q.input[0], f"{features}.dequantized"
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name == features:
                n.input[i] = rounded
    dq.output[0] = rounded
    for n in graph.node:
        for seq in (n.input, n.output):
            for i, name in enumerate(seq):
                if name == float_name:
                    seq[i] = features


def int8_macs(model: onnx.ModelProto, features: str) -> tuple[float, float]:
    """``(int8, all)``: the multiply-accumulates per clip of the classifier's ``Conv``/``Gemm``/``MatMul`` nodes of
    ``model``, and those of them whose activation input comes out of a ``DequantizeLinear`` (the QDQ form that
    onnxruntime fuses into ``QLinearConv``/``QGemm``)."""
    from .variants import classifier_nodes

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    q = total = 0.0
    for n in classifier_nodes(model, features):
        if n.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        w = n.input[1]
        wdims = inits.get(w) or (inits.get(producers[w].input[0], []) if w in producers else [])
        out = shapes.get(n.output[0]) or []
        if not wdims:
            continue
        macs = float(np.prod(out[2:] or [1])) * float(np.prod(wdims)) if n.op_type == "Conv" else float(np.prod(wdims))
        total += macs
        src = producers.get(n.input[0])
        if src is not None and src.op_type == "DequantizeLinear":
            q += macs
    return q, total
