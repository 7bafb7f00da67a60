"""The operator suite: one small ONNX model per operator, variant and opset, for measuring backends.

Each :class:`OpCase` is a model of one operator (a few are two operators: a
``ConstantOfShape`` feeding ``Add``, say) in a *variant* that matters to some backend:
a ``MatMul`` with 16 output columns, a ``Concat`` of 8 inputs, a ``Clip`` with only a
minimum, a ``Pad`` in each mode, a ``Slice`` with a step, an ``int64`` constant beyond
the int32 range, a symbolic batch dimension, an operator whose inputs are all constant
(onnxruntime folds it at load).  The model's runtime inputs are small seeded tensors;
every other input is an initializer.

``python -m ser_export optable`` runs every case on every onnxruntime-web backend and
records what happened (:mod:`ser_export.export.measured_ops`); the operator lint
(:mod:`ser_export.export.lint`) maps each node of a model to the variant it is an
instance of (:func:`variant_of`) and reports what was measured for it.

Variants are predicates on a node in its model (:class:`NodeContext`), tried in the
order listed; ``"default"`` matches any node of the operator.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The opsets every case is built at (operators that do not exist at one are skipped there).
OPSETS = (13, 17)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------- node context ----
class NodeContext:
    """What the variant predicates need to know about a model: constants, shapes, folding.

    Parameters
    ----------
    model : onnx.ModelProto
        The model (shape inference runs on a copy).
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                value = _constant_value(node)
                if value is not None:
                    self.constants[node.output[0]] = value
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:  # a model onnx cannot infer: predicates see no shapes
            inferred = model
        self.shapes: dict[str, tuple] = {}
        for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                             for d in vi.type.tensor_type.shape.dim)
        for name, value in self.constants.items():
            self.shapes.setdefault(name, tuple(value.shape))
        self.foldable = self._foldable_outputs()

    def _foldable_outputs(self) -> set[str]:
        """Outputs that onnxruntime computes at load: every input constant (or itself foldable), or
        the ``Shape``/``Size`` of a tensor whose shape is fully known."""
        known = set(self.constants)
        for node in self.model.graph.node:  # nodes are topologically sorted in a valid model
            static_shape = node.op_type in ("Shape", "Size") and node.input and self._static(node.input[0])
            if node.op_type == "Constant" or static_shape or (
                    node.input and all(i == "" or i in known for i in node.input)):
                known.update(node.output)
        return known

    def _static(self, name: str) -> bool:
        shape = self.shapes.get(name)
        return shape is not None and all(d is not None for d in shape)

    def is_folded(self, node: onnx.NodeProto) -> bool:
        """Whether onnxruntime computes ``node`` when the session is created (see ``foldable``)."""
        return node.op_type != "Constant" and bool(node.output) and all(o in self.foldable for o in node.output)

    def shape(self, name: str) -> tuple | None:
        return self.shapes.get(name)


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.asarray(helper.get_attribute_value(attr))
        if attr.name in ("value_floats", "value_ints"):
            return np.asarray(helper.get_attribute_value(attr))
    return None


# ----------------------------------------------------------------- predicates ----
Predicate = Callable[[onnx.NodeProto, NodeContext], bool]


def _any_node(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    return True


def _output_columns(n: int) -> Predicate:
    def match(node: onnx.NodeProto, ctx: NodeContext) -> bool:
        shape = ctx.shape(node.output[0])
        return bool(shape) and shape[-1] == n
    return match


def _input_missing(index: int) -> Predicate:
    """Input ``index`` absent or empty (``''``)."""
    def match(node: onnx.NodeProto, ctx: NodeContext) -> bool:
        return len(node.input) <= index or node.input[index] == ""
    return match


def _has_empty_input(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """An empty optional input ``''`` followed by nothing (trailing: the exporter's way to skip one)."""
    return any(i == "" for i in node.input)


def _attr(name: str, value) -> Predicate:
    def match(node: onnx.NodeProto, ctx: NodeContext) -> bool:
        for a in node.attribute:
            if a.name == name:
                got = helper.get_attribute_value(a)
                return (got.decode() if isinstance(got, bytes) else got) == value
        return False
    return match


def _int64_beyond_int32(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """An int64 constant input outside the int32 range (torch writes INT64_MAX for open slices)."""
    for name in node.input:
        value = ctx.constants.get(name)
        if value is not None and value.dtype == np.int64 and value.size and (
                value.min() < INT32_MIN or value.max() > INT32_MAX):
            return True
    return False


def _float16_constant(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """A node reading a float16 constant (the fp16 variants' weights)."""
    return any((v := ctx.constants.get(name)) is not None and v.dtype == np.float16 for name in node.input)


def _all_inputs_constant(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    return ctx.is_folded(node)


def _symbolic_input(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """A node reading a graph input whose shape has a symbolic (or unknown) dimension."""
    inits = {t.name for t in ctx.model.graph.initializer}
    for vi in ctx.model.graph.input:
        if vi.name in node.input and vi.name not in inits:
            if any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim):
                return True
    return False


def _all(*preds: Predicate) -> Predicate:
    def match(node: onnx.NodeProto, ctx: NodeContext) -> bool:
        return all(p(node, ctx) for p in preds)
    return match


# ----------------------------------------------------------------------- cases ----
@dataclasses.dataclass(frozen=True)
class Built:
    """A case's graph pieces at one opset."""

    nodes: list
    initializers: list
    inputs: dict[str, np.ndarray]
    dynamic: Mapping[str, Sequence[str | int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OpCase:
    """One operator in one variant at one opset.

    ``op`` is the operator under test (the other nodes of a two-operator case only feed
    it); ``variant`` names the property under test; ``match`` says whether a node of
    another model is an instance of this variant.
    """

    op: str
    variant: str
    opset: int
    description: str
    make: Callable[[int, np.random.Generator], Built] = dataclasses.field(repr=False, compare=False)
    match: Predicate = dataclasses.field(default=_any_node, repr=False, compare=False)
    #: the lint's finding code when this case fails (a model-wide trap rather than the operator)
    code: str | None = None
    #: WebGL is measured with symbolic dimensions pinned (as the runners and the demo do), except
    #: in the case that measures the symbolic dimension itself
    pin_on_webgl: bool = True

    def symbolic_dims(self, model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
        """``{dim_param: size}`` of the model's symbolic input dimensions for these inputs."""
        out = {}
        for vi in model.graph.input:
            for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
                if dim.dim_param and vi.name in inputs:
                    out[dim.dim_param] = int(np.asarray(inputs[vi.name]).shape[axis])
        return out

    @property
    def case_id(self) -> str:
        return f"{self.op}[{self.variant}]@{self.opset}"

    def build(self) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
        """The model and its runtime inputs (seeded by the case id, so the same every time)."""
        import hashlib

        seed = int.from_bytes(hashlib.sha256(self.case_id.encode()).digest()[:8], "little")
        built = self.make(self.opset, np.random.default_rng(seed))
        graph_inputs = []
        for name, value in built.inputs.items():
            shape = list(built.dynamic.get(name, value.shape))
            graph_inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                                              shape))
        outputs = [onnx.ValueInfoProto(name=o) for o in built.nodes[-1].output]
        graph = helper.make_graph(built.nodes, self.case_id, graph_inputs, outputs, initializer=built.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="ser_export.opsuite")
        model.ir_version = 8
        model = onnx.shape_inference.infer_shapes(model)
        # the outputs' types come from shape inference (a graph output needs one)
        typed = {vi.name: vi for vi in model.graph.value_info}
        for out in model.graph.output:
            if out.name in typed:
                out.type.CopyFrom(typed[out.name].type)
        onnx.checker.check_model(model)
        return model, built.inputs


def _init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _f32(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return np.abs(x) + np.float32(0.1) if positive else x


_CASES: list[tuple[str, str, str, Callable, Predicate, tuple[int, ...], str | None]] = []


def case(op: str, variant: str = "default", description: str = "", match: Predicate = _any_node,
         opsets: tuple[int, ...] = OPSETS, code: str | None = None):
    """Register ``make(opset, rng) -> Built`` as the case ``op[variant]`` at ``opsets``."""
    def register(make):
        _CASES.append((op, variant, description or f"{op} ({variant})", make, match, opsets, code))
        return make
    return register


def _unary(op: str, positive: bool = False, **attrs) -> None:
    @case(op, description=f"{op} of a (3, 17) float32 input")
    def make(opset, rng):
        return Built([helper.make_node(op, ["x"], ["y"], **attrs)], [], {"x": _f32(rng, 3, 17, positive=positive)})


for _op in ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Erf", "Floor", "Ceil", "Sin", "Cos", "Identity",
            "Softplus"):
    _unary(_op)
for _op in ("Log", "Sqrt", "Reciprocal"):
    _unary(_op, positive=True)
_unary("LeakyRelu", alpha=0.1)


def _binary(op: str, positive: bool = False) -> None:
    @case(op, description=f"{op} of a (3, 17) input and a (17,) constant (broadcast)")
    def make(opset, rng):
        return Built([helper.make_node(op, ["x", "b"], ["y"])], [_init("b", _f32(rng, 17, positive=True))],
                     {"x": _f32(rng, 3, 17, positive=positive)})


for _op in ("Add", "Sub", "Mul", "Div", "Equal", "Greater", "Less"):
    _binary(_op)
_binary("Pow", positive=True)


for _op in ("Max", "Min"):
    def _elementwise(op):
        @case(op, description=f"elementwise {op} of two runtime (3, 17) inputs")
        def make(opset, rng):
            return Built([helper.make_node(op, ["x", "z"], ["y"])], [], {"x": _f32(rng, 3, 17), "z": _f32(rng, 3, 17)})
    _elementwise(_op)


for _n in (1, 4, 8, 15, 16, 17, 32, 64, 128):
    def _matmul(n):
        @case("MatMul", f"n={n}", f"MatMul (5, 64) x (64, {n}) constant: {n} output columns",
              match=_output_columns(n))
        def make(opset, rng):
            return Built([helper.make_node("MatMul", ["x", "w"], ["y"])], [_init("w", _f32(rng, 64, n))],
                         {"x": _f32(rng, 5, 64)})
    _matmul(_n)


@case("MatMul", "default", "MatMul (5, 64) x (64, 100) constant: any other column count")
def _matmul_default(opset, rng):
    return Built([helper.make_node("MatMul", ["x", "w"], ["y"])], [_init("w", _f32(rng, 64, 100))],
                 {"x": _f32(rng, 5, 64)})


@case("MatMul", "batched n=16", "MatMul (2, 7, 32) x (32, 16) constant: a 3-D input, 16 output columns",
      match=_all(_output_columns(16), lambda node, ctx: len(ctx.shape(node.input[0]) or ()) == 3))
def _matmul_batched(opset, rng):
    return Built([helper.make_node("MatMul", ["x", "w"], ["y"])], [_init("w", _f32(rng, 32, 16))],
                 {"x": _f32(rng, 2, 7, 32)})


_CASES.insert(  # the batched variant is more specific than "n=16": try it first
    next(i for i, c in enumerate(_CASES) if c[:2] == ("MatMul", "n=16")), _CASES.pop())
_CASES.append(_CASES.pop(next(i for i, c in enumerate(_CASES) if c[:2] == ("MatMul", "default"))))


@case("Gemm", description="Gemm (3, 64) x (16, 64)^T + (16,): torch's Linear")
def _gemm(opset, rng):
    return Built([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                 [_init("w", _f32(rng, 16, 64)), _init("b", _f32(rng, 16))], {"x": _f32(rng, 3, 64)})


@case("Conv", "auto_pad SAME_UPPER stride 2", "Conv 3x3, auto_pad=SAME_UPPER, stride 2 (onnxruntime #26734)",
      match=_all(_attr("auto_pad", "SAME_UPPER"), lambda node, ctx: any(
          a.name == "strides" and max(a.ints) > 1 for a in node.attribute)))
def _conv_same(opset, rng):
    return Built([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                   auto_pad="SAME_UPPER")],
                 [_init("w", _f32(rng, 4, 2, 3, 3))], {"x": _f32(rng, 1, 2, 9, 9)})


@case("Conv", "stride 2", "Conv 3x3, explicit pads 1, stride 2, with bias",
      match=lambda node, ctx: any(a.name == "strides" and max(a.ints) > 1 for a in node.attribute))
def _conv_stride(opset, rng):
    return Built([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                   strides=[2, 2])],
                 [_init("w", _f32(rng, 8, 2, 3, 3)), _init("b", _f32(rng, 8))], {"x": _f32(rng, 1, 2, 12, 10)})


@case("Conv", description="Conv 3x3, pads 1, stride 1, with bias")
def _conv(opset, rng):
    return Built([helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                 [_init("w", _f32(rng, 8, 2, 3, 3)), _init("b", _f32(rng, 8))], {"x": _f32(rng, 1, 2, 12, 10)})


@case("ConvTranspose", description="ConvTranspose 3x3, stride 2, 4 -> 2 channels")
def _conv_transpose(opset, rng):
    return Built([helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2])],
                 [_init("w", _f32(rng, 4, 2, 3, 3))], {"x": _f32(rng, 1, 4, 5, 5)})


@case("BatchNormalization", description="BatchNormalization (inference) of (2, 4, 5, 5)")
def _batchnorm(opset, rng):
    return Built([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
                 [_init("s", _f32(rng, 4)), _init("b", _f32(rng, 4)), _init("m", _f32(rng, 4)),
                  _init("v", _f32(rng, 4, positive=True))], {"x": _f32(rng, 2, 4, 5, 5)})


@case("LayerNormalization", description="LayerNormalization over the last axis of (3, 16)", opsets=(17,))
def _layernorm(opset, rng):
    return Built([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)],
                 [_init("s", _f32(rng, 16)), _init("b", _f32(rng, 16))], {"x": _f32(rng, 3, 16)})


@case("Pad", "empty optional input", "Pad(x, pads, '') as the opset-13 exporter writes it",
      match=_has_empty_input, code="empty-optional-input")
def _pad_empty(opset, rng):
    return Built([helper.make_node("Pad", ["x", "pads", ""], ["y"], mode="constant")],
                 [_init("pads", np.array([0, 2, 0, 3], np.int64))], {"x": _f32(rng, 3, 8)})


for _mode in ("reflect", "edge", "constant"):
    def _pad(mode):
        @case("Pad", f"mode={mode}", f"Pad of (3, 8) by (2, 3) columns, mode {mode}",
              match=_attr("mode", mode) if mode != "constant" else _any_node)
        def make(opset, rng):
            return Built([helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)],
                         [_init("pads", np.array([0, 2, 0, 3], np.int64))], {"x": _f32(rng, 3, 8)})
    _pad(_mode)


@case("Clip", "min only", "Clip(x, min) without a max (log-mel floors written as clamp_min)",
      match=_all(lambda node, ctx: len(node.input) > 1 and node.input[1] != "", _input_missing(2)),
      code="clip-min-only")
def _clip_min(opset, rng):
    return Built([helper.make_node("Clip", ["x", "lo"], ["y"])], [_init("lo", np.float32(-0.25))],
                 {"x": _f32(rng, 3, 17)})


@case("Clip", "max only", "Clip(x, '', max) without a min", match=_input_missing(1))
def _clip_max(opset, rng):
    return Built([helper.make_node("Clip", ["x", "", "hi"], ["y"])], [_init("hi", np.float32(0.25))],
                 {"x": _f32(rng, 3, 17)})


@case("Clip", "min and max", "Clip(x, min, max)")
def _clip_both(opset, rng):
    return Built([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])],
                 [_init("lo", np.float32(-0.25)), _init("hi", np.float32(0.25))], {"x": _f32(rng, 3, 17)})


for _op in ("ReduceMax", "ReduceMean", "ReduceSum", "ReduceMin", "ReduceL2"):
    def _reduce(op):
        @case(op, description=f"{op} of (3, 5, 7) over axis 1, keepdims")
        def make(opset, rng):
            if op == "ReduceSum":  # axes became an input at opset 13
                return Built([helper.make_node(op, ["x", "axes"], ["y"], keepdims=1)],
                             [_init("axes", np.array([1], np.int64))], {"x": _f32(rng, 3, 5, 7)})
            return Built([helper.make_node(op, ["x"], ["y"], axes=[1], keepdims=1)], [], {"x": _f32(rng, 3, 5, 7)})
    _reduce(_op)


@case("Where", description="Where(constant condition, x, 0)")
def _where(opset, rng):
    return Built([helper.make_node("Where", ["c", "x", "z"], ["y"])],
                 [_init("c", rng.random((3, 17)) > 0.5), _init("z", np.zeros(17, np.float32))],
                 {"x": _f32(rng, 3, 17)})


@case("Range", "constant inputs", "Range(0, 10, 1.5) from constants (folded when the session is created)",
      match=_all_inputs_constant)
def _range_const(opset, rng):
    nodes = [helper.make_node("Range", ["a", "b", "d"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
    return Built(nodes, [_init("a", np.float32(0)), _init("b", np.float32(10)), _init("d", np.float32(1.5))],
                 {"x": _f32(rng, 7)})


@case("Range", "runtime inputs", "Range(start, limit, delta) of runtime float scalars")
def _range(opset, rng):
    return Built([helper.make_node("Range", ["a", "b", "d"], ["y"])], [],
                 {"a": np.float32(0.5), "b": np.float32(9.0), "d": np.float32(1.25)})


@case("Expand", description="Expand (3, 1) to (3, 4)")
def _expand(opset, rng):
    return Built([helper.make_node("Expand", ["x", "s"], ["y"])], [_init("s", np.array([3, 4], np.int64))],
                 {"x": _f32(rng, 3, 1)})


@case("ConstantOfShape", "constant input", "ConstantOfShape of a constant shape (folded when the session is "
      "created), added to the input", match=_all_inputs_constant)
def _cos_const(opset, rng):
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Add", ["x", "c"], ["y"])]
    return Built(nodes, [_init("s", np.array([3, 4], np.int64))], {"x": _f32(rng, 3, 4)})


@case("ConstantOfShape", "runtime input", "ConstantOfShape of a runtime int64 shape (3, 4)")
def _cos_runtime(opset, rng):
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["y"],
                              value=numpy_helper.from_array(np.array([0.5], np.float32)))]
    return Built(nodes, [], {"s": np.array([3, 4], np.int64)})


@case("Slice", "int64 beyond int32", "Slice(x, 1, INT64_MAX) on axis 1: torch's x[:, 1:]",
      match=_int64_beyond_int32, code="int64-out-of-int32")
def _slice_wide(opset, rng):
    return Built([helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])],
                 [_init("st", np.array([1], np.int64)), _init("en", np.array([2**63 - 1], np.int64)),
                  _init("ax", np.array([1], np.int64))], {"x": _f32(rng, 3, 17)})


def _slice_steps(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """A ``steps`` input that is not all ones (a runtime one counts: it may be)."""
    if len(node.input) < 5 or not node.input[4]:
        return False
    steps = ctx.constants.get(node.input[4])
    return steps is None or bool(np.any(steps != 1))


@case("Slice", "step 2", "Slice(x, 1, 9) on axis 1, step 2", match=_slice_steps)
def _slice_step(opset, rng):
    return Built([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                 [_init("st", np.array([1], np.int64)), _init("en", np.array([9], np.int64)),
                  _init("ax", np.array([1], np.int64)), _init("sp", np.array([2], np.int64))],
                 {"x": _f32(rng, 3, 17)})


@case("Slice", description="Slice(x, 1, 9) on axis 1, step 1")
def _slice(opset, rng):
    return Built([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])],
                 [_init("st", np.array([1], np.int64)), _init("en", np.array([9], np.int64)),
                  _init("ax", np.array([1], np.int64)), _init("sp", np.array([1], np.int64))],
                 {"x": _f32(rng, 3, 17)})


@case("Gather", description="Gather of 5 columns (constant int64 indices) on axis 1")
def _gather(opset, rng):
    return Built([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
                 [_init("i", np.array([0, 4, 2, 16, 4], np.int64))], {"x": _f32(rng, 3, 17)})


def _runtime_inputs(node: onnx.NodeProto, ctx: NodeContext) -> int:
    return sum(1 for i in node.input if i and i not in ctx.foldable)


@case("Concat", "8 runtime inputs", "Concat of 8 runtime (3, 5) inputs on axis 1 (our 8-group mel projection)",
      match=lambda node, ctx: _runtime_inputs(node, ctx) >= 8)
def _concat8(opset, rng):
    names = [f"x{i}" for i in range(8)]
    return Built([helper.make_node("Concat", names, ["y"], axis=1)], [], {n: _f32(rng, 3, 5) for n in names})


@case("Concat", "8 inputs, 7 constant", "Concat of a runtime (3, 5) input and 7 constants on axis 1",
      match=lambda node, ctx: len([i for i in node.input if i]) >= 8)
def _concat8_const(opset, rng):
    names = [f"x{i}" for i in range(8)]
    return Built([helper.make_node("Concat", names, ["y"], axis=1)], [_init(n, _f32(rng, 3, 5)) for n in names[1:]],
                 {"x0": _f32(rng, 3, 5)})


@case("Concat", description="Concat of the input and a constant on axis 1")
def _concat(opset, rng):
    return Built([helper.make_node("Concat", ["x", "c"], ["y"], axis=1)], [_init("c", _f32(rng, 3, 5))],
                 {"x": _f32(rng, 3, 17)})


@case("Reshape", description="Reshape (3, 4, 5) to (12, 5) with a -1")
def _reshape(opset, rng):
    return Built([helper.make_node("Reshape", ["x", "s"], ["y"])], [_init("s", np.array([-1, 5], np.int64))],
                 {"x": _f32(rng, 3, 4, 5)})


@case("Transpose", description="Transpose (2, 3, 4) with perm (2, 0, 1)")
def _transpose(opset, rng):
    return Built([helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [], {"x": _f32(rng, 2, 3, 4)})


@case("Softmax", description="Softmax over the last axis of (3, 7)")
def _softmax(opset, rng):
    return Built([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [], {"x": _f32(rng, 3, 7)})


@case("STFT", description="STFT of (1, 512, 1), Hann window 256, hop 128, onesided", opsets=(17,))
def _stft(opset, rng):
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)).astype(np.float32)
    return Built([helper.make_node("STFT", ["x", "step", "w"], ["y"], onesided=1)],
                 [_init("step", np.array(128, np.int64)), _init("w", window)], {"x": _f32(rng, 1, 512, 1)})


@case("DFT", description="DFT of (1, 64, 1), onesided", opsets=(17,))
def _dft(opset, rng):
    return Built([helper.make_node("DFT", ["x"], ["y"], onesided=1)], [], {"x": _f32(rng, 1, 64, 1)})


for _to, _name in ((TensorProto.INT32, "int32"), (TensorProto.INT64, "int64"), (TensorProto.BOOL, "bool")):
    def _cast(to, name):
        @case("Cast", f"to {name}", f"Cast of float32 to {name}",
              match=_attr("to", to))
        def make(opset, rng):
            return Built([helper.make_node("Cast", ["x"], ["y"], to=to)], [], {"x": _f32(rng, 3, 17) * 10})
    _cast(_to, _name)


@case("Cast", "float16 constant", "Cast to float32 of a float16 (3, 17) constant, added to the input: a model "
      "holding a float16 tensor (the fp16 variants' weights)", match=_float16_constant, code="float16-tensor")
def _cast_float16(opset, rng):
    nodes = [helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT), helper.make_node("Add", ["x", "w"], ["y"])]
    return Built(nodes, [_init("w16", _f32(rng, 3, 17).astype(np.float16))], {"x": _f32(rng, 3, 17)})


@case("Cast", "default", "Cast of float32 to float32")
def _cast_float(opset, rng):
    return Built([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], [], {"x": _f32(rng, 3, 17)})


def _uint8_input(node: onnx.NodeProto, ctx: NodeContext) -> bool:
    """A ``DequantizeLinear`` of a uint8 tensor computed at run time (the int8s variants' activations)."""
    zero = ctx.constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return zero is not None and zero.dtype == np.uint8 and node.input[0] not in ctx.constants


@case("DequantizeLinear", "uint8 input", "DequantizeLinear of a runtime uint8 (3, 8) input, per tensor: a "
      "QuantizeLinear's output (the int8s variants' activations)", match=_uint8_input)
def _dequant_uint8(opset, rng):
    return Built([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])],
                 [_init("s", np.float32(0.05)), _init("z", np.uint8(128))],
                 {"x": rng.integers(0, 256, (3, 8)).astype(np.uint8)})


@case("DequantizeLinear", description="DequantizeLinear of a runtime int8 (3, 8) input, per tensor")
def _dequant(opset, rng):
    return Built([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])],
                 [_init("s", np.float32(0.05)), _init("z", np.int8(3))],
                 {"x": rng.integers(-128, 128, (3, 8)).astype(np.int8)})


@case("QuantizeLinear", description="QuantizeLinear of (3, 8) to uint8, per tensor")
def _quant(opset, rng):
    return Built([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
                 [_init("s", np.float32(0.05)), _init("z", np.uint8(128))], {"x": _f32(rng, 3, 8)})


@case("QLinearConv", description="QLinearConv 3x3 of a runtime uint8 (1, 2, 6, 6) input")
def _qconv(opset, rng):
    return Built([helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                 [_init("xs", np.float32(0.02)), _init("xz", np.uint8(128)),
                  _init("w", rng.integers(0, 256, (4, 2, 3, 3)).astype(np.uint8)), _init("ws", np.float32(0.01)),
                  _init("wz", np.uint8(128)), _init("ys", np.float32(0.2)), _init("yz", np.uint8(128))],
                 {"x": rng.integers(0, 256, (1, 2, 6, 6)).astype(np.uint8)})


@case("MatMulInteger", description="MatMulInteger of a runtime uint8 (3, 8) and a constant uint8 (8, 4)")
def _mmi(opset, rng):
    return Built([helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
                 [_init("w", rng.integers(0, 256, (8, 4)).astype(np.uint8))],
                 {"x": rng.integers(0, 256, (3, 8)).astype(np.uint8)})


@case("MaxPool", description="MaxPool 3x3 stride 2 of (1, 2, 9, 8)")
def _maxpool(opset, rng):
    return Built([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2])], [],
                 {"x": _f32(rng, 1, 2, 9, 8)})


@case("AveragePool", description="AveragePool 2x2 stride 2 of (1, 2, 8, 8)")
def _avgpool(opset, rng):
    return Built([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [],
                 {"x": _f32(rng, 1, 2, 8, 8)})


@case("GlobalAveragePool", description="GlobalAveragePool of (1, 3, 4, 5)")
def _gap(opset, rng):
    return Built([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [], {"x": _f32(rng, 1, 3, 4, 5)})


@case("Flatten", description="Flatten (2, 3, 4) from axis 1")
def _flatten(opset, rng):
    return Built([helper.make_node("Flatten", ["x"], ["y"], axis=1)], [], {"x": _f32(rng, 2, 3, 4)})


@case("Squeeze", description="Squeeze axis 1 of (3, 1, 4)")
def _squeeze(opset, rng):
    return Built([helper.make_node("Squeeze", ["x", "a"], ["y"])], [_init("a", np.array([1], np.int64))],
                 {"x": _f32(rng, 3, 1, 4)})


@case("Unsqueeze", description="Unsqueeze axis 1 of (3, 4)")
def _unsqueeze(opset, rng):
    return Built([helper.make_node("Unsqueeze", ["x", "a"], ["y"])], [_init("a", np.array([1], np.int64))],
                 {"x": _f32(rng, 3, 4)})


@case("Shape", "symbolic input", "Shape of an input declared (n, 4): computed at run time",
      match=lambda node, ctx: not ctx.is_folded(node))
def _shape_runtime(opset, rng):
    return Built([helper.make_node("Shape", ["x"], ["y"])], [], {"x": _f32(rng, 3, 4)}, dynamic={"x": ["n", 4]})


@case("Shape", description="Shape of a (3, 4) input (known when the session is created)")
def _shape(opset, rng):
    return Built([helper.make_node("Shape", ["x"], ["y"])], [], {"x": _f32(rng, 3, 4)})


@case("Split", description="Split (3, 8) into (3, 3) and (3, 5) on axis 1")
def _split(opset, rng):
    return Built([helper.make_node("Split", ["x", "s"], ["y0", "y1"], axis=1)],
                 [_init("s", np.array([3, 5], np.int64))], {"x": _f32(rng, 3, 8)})


@case("Tile", description="Tile (2, 3) by (2, 2)")
def _tile(opset, rng):
    return Built([helper.make_node("Tile", ["x", "r"], ["y"])], [_init("r", np.array([2, 2], np.int64))],
                 {"x": _f32(rng, 2, 3)})


@case("Constant", description="a Constant node feeding Add (onnxruntime turns it into an initializer)")
def _constant(opset, rng):
    nodes = [helper.make_node("Constant", [], ["c"], value=_init("v", _f32(rng, 17))),
             helper.make_node("Add", ["x", "c"], ["y"])]
    return Built(nodes, [], {"x": _f32(rng, 3, 17)})


@case("Relu", "symbolic batch", "Relu of an input declared (batch, 4): a symbolic dimension",
      match=_symbolic_input, code="dynamic-input-dims")
def _symbolic(opset, rng):
    return Built([helper.make_node("Relu", ["x"], ["y"])], [], {"x": _f32(rng, 2, 4)}, dynamic={"x": ["batch", 4]})


_CASES.insert(next(i for i, c in enumerate(_CASES) if c[:2] == ("Relu", "default")), _CASES.pop())


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple[OpCase, ...]:
    """Every case at every opset where its operators exist, in lookup order."""
    out = []
    for op, variant, description, make, match, opsets, code in _CASES:
        for opset in opsets:
            out.append(OpCase(op=op, variant=variant, opset=opset, description=description, make=make, match=match,
                              code=code, pin_on_webgl=code != "dynamic-input-dims"))
    ids = [c.case_id for c in out]
    if len(ids) != len(set(ids)):
        raise RuntimeError("duplicate op-suite case ids")
    return tuple(out)


#: Model-wide traps: the case that measures each, by the lint's finding code.
TRAP_CASES = {"empty-optional-input": "Pad[empty optional input]", "int64-out-of-int32": "Slice[int64 beyond int32]",
              "dynamic-input-dims": "Relu[symbolic batch]", "float16-tensor": "Cast[float16 constant]"}


def case_by_id(case_id: str) -> OpCase:
    return next(c for c in all_cases() if c.case_id == case_id)


def cases_for(op: str) -> Iterator[OpCase]:
    return (c for c in all_cases() if c.op == op)


def variant_of(node: onnx.NodeProto, ctx: NodeContext, opset: int) -> OpCase | None:
    """The measured case that ``node`` of a model at ``opset`` is an instance of, or ``None``.

    A case at another opset counts when the operator's schema is the same there; the
    variants of the operator are tried in order and the first that matches is taken.
    """
    if node.domain not in ("", "ai.onnx"):
        return None
    from .optables import schema_version

    since = schema_version(node.op_type, opset)
    if since is None:
        return None
    same_schema = [c for c in cases_for(node.op_type) if schema_version(c.op, c.opset) == since]
    for c in same_schema:
        if c.match(node, ctx):  # the first variant that holds, measured at this very opset if it was
            return next((o for o in same_schema if o.variant == c.variant and o.opset == opset), c)
    return None
