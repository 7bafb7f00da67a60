"""The lint catches each WebGL trap of shared/WEB-BACKENDS.md and unsupported operators."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ser_export.errors import LintError
from ser_export.export.lint import lint_model, require_compatible


def _model(nodes, inits=(), opset=13, dynamic=False, outputs=("y",)):
    dim = "batch" if dynamic else 2
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _scalar(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def test_clean_model_passes_everywhere():
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")])
    report = lint_model(m)
    assert report.compatible("wasm") and report.compatible("webgl") and report.compatible("webgpu")
    assert report.ops == {"Relu": 1}


def test_elementwise_max_fails_on_webgl_and_webgpu():
    """Neither GPU backend's table has an elementwise Max kernel (WebGPU would fall back to CPU)."""
    m = _model([helper.make_node("Max", ["x", "x"], ["y"], name="the_max")])
    report = lint_model(m)
    assert not report.compatible("webgl") and not report.compatible("webgpu") and report.compatible("wasm")
    (f,) = report.errors("webgl")
    assert f.code == "unsupported-op" and "the_max" in f.nodes
    with pytest.raises(LintError, match="webgl: Max .*the_max"):
        require_compatible(report, ["wasm", "webgl"])
    require_compatible(report, ["wasm"])


def test_clip_with_only_a_min_is_a_webgl_error():
    m = _model([helper.make_node("Clip", ["x", "lo"], ["y"], name="clip_lo")], [_scalar("lo", 1e-10)])
    codes = [f.code for f in lint_model(m).errors("webgl")]
    assert codes == ["clip-min-only"]
    both = _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], [_scalar("lo", 0), _scalar("hi", 1)])
    assert lint_model(both).compatible("webgl")


def test_empty_optional_input_is_a_webgl_error():
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], dtype=np.int64), "pads")
    m = _model([helper.make_node("Pad", ["x", "pads", ""], ["y"], name="pad", mode="constant")], [pads])
    assert [f.code for f in lint_model(m).errors("webgl")] == ["empty-optional-input"]


def test_int64_constant_outside_int32_is_a_webgl_error():
    big = numpy_helper.from_array(np.array([0, 2**40], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "ends")
    m = _model([helper.make_node("Slice", ["x", "starts", "ends"], ["y"], name="slice")], [big, ends])
    assert [f.code for f in lint_model(m).errors("webgl")] == ["int64-out-of-int32"]


def test_dynamic_batch_is_a_webgl_requirement_not_an_error():
    m = _model([helper.make_node("Relu", ["x"], ["y"])], dynamic=True)
    report = lint_model(m)
    assert report.compatible("webgl")
    assert report.session_options["webgl"] == {"pin_dimensions": {"batch": 1}}


def test_layernormalization_at_opset_17_fails_webgl():
    scale, bias = _scalar("s", np.ones(4)), _scalar("b", np.zeros(4))
    m = _model([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], name="ln")], [scale, bias], opset=17)
    report = lint_model(m)
    assert not report.compatible("webgl") and report.compatible("webgpu") and report.compatible("wasm")


def test_foreign_domain_fails_everywhere():
    node = helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft", name="gelu")
    m = _model([node])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    report = lint_model(m)
    assert all(not report.compatible(b) for b in ("wasm", "webgl", "webgpu"))


# ------------------------------------------------ models exported without onnxsim ----
@pytest.fixture(scope="module")
def user_models():
    from tests.export import user_models

    return {"stft16k": user_models.stft_cnn(), "dft22k": user_models.dft_cnn()}


def test_constant_nodes_of_a_plain_export_are_not_findings(user_models):
    """torch.onnx.export keeps Constant nodes; onnxruntime turns them into initializers at load."""
    for name, model in user_models.items():
        constants = {n.name for n in model.graph.node if n.op_type == "Constant"}
        assert len(constants) > 5, name
        report = lint_model(model)
        assert not [f for f in report.findings if constants & set(f.nodes)], [f.message for f in report.findings]
        assert report.ops["Constant"] == len(constants)
        assert report.compatible("wasm") and not report.errors("wasm"), report.summary()


def test_real_blockers_are_named_for_webgl_and_webgpu(user_models):
    stft = lint_model(user_models["stft16k"])
    webgl = {f.code: f for f in stft.findings if f.backend == "webgl"}
    assert "STFT" in next(f.message for f in stft.errors("webgl") if f.nodes == ("/STFT",))
    assert any(f.nodes == ("/ConstantOfShape",) for f in stft.errors("webgl"))
    assert webgl["int64-out-of-int32"].severity == "error"
    assert webgl["dynamic-input-dims"].severity == "requirement" and "['batch']" in webgl["dynamic-input-dims"].message
    (webgpu,) = stft.errors("webgpu")
    assert webgpu.code == "falls-back" and webgpu.nodes == ("/STFT",) and "CPUExecutionProvider" in webgpu.message
    dft = lint_model(user_models["dft22k"])
    codes = {f.code for f in dft.errors("webgl")}
    assert {"int64-out-of-int32", "clip-min-only", "empty-optional-input", "unsupported-op"} <= codes, codes
    assert dft.compatible("webgpu"), dft.summary()


@pytest.mark.node
def test_what_the_lint_calls_wasm_compatible_runs_in_onnxruntime_web(user_models, tmp_path, rng):
    """Both plain exports load and run in onnxruntime-web's wasm backend in Node, with
    onnxruntime-python's outputs."""
    from parity.judge import judge_operator_outputs
    from parity.opmeasure import reference_outputs
    from parity.runners.node import OrtWebWasmRunner
    from ser_export import tolerances

    runner = OrtWebWasmRunner()
    try:
        for name, model in user_models.items():
            n = 16000 if name == "stft16k" else 22050
            x = {"input": (0.1 * rng.standard_normal((2, n))).astype(np.float32)}
            path = tmp_path / f"{name}.onnx"
            onnx.save(model, str(path))
            reply = runner.run_case(path, x)
            assert reply["loaded"] and reply["ran"], reply
            ok, err, problem = judge_operator_outputs(reference_outputs(model.SerializeToString(), x), reply["outputs"],
                                               tolerances.for_stage("operator_table"))
            assert ok, (name, err, problem)
    finally:
        runner.deactivate()


def test_a_float16_tensor_keeps_a_model_off_webgl_as_measured():
    """WebGL's loader knows no FLOAT16 tensors (measured: the fp16 variants failed to load there); wasm and
    WebGPU run them."""
    from ser_export.export.opsuite import all_cases

    model, _ = next(c for c in all_cases() if c.case_id == "Cast[float16 constant]@13").build()
    report = lint_model(model)
    assert report.compatible("wasm") and report.compatible("webgpu") and not report.compatible("webgl")
    (finding,) = report.errors("webgl")
    assert finding.code == "float16-tensor" and "fails to load on webgl" in finding.message
    assert "unsupported data type: FLOAT16" in finding.message
