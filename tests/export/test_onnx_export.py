import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from ser_export.contract import FrontEnd
from ser_export.errors import ExportError
from ser_export.export.metadata import build_metadata, read_metadata
from ser_export.export.onnx_export import export_onnx, serialize, set_metadata
from ser_export.models import VoiceEmotionCnn


@pytest.fixture(scope="module")
def alexnet_reflect():
    torch.manual_seed(0)
    model = VoiceEmotionCnn("alexnet", frontend=FrontEnd(pad_mode="reflect")).eval()
    return model, export_onnx(model)


def test_graph_interface_and_clean_up(alexnet_reflect):
    _, proto = alexnet_reflect
    (inp,), (out, logmel) = proto.graph.input, proto.graph.output
    assert inp.name == "input" and out.name == "output" and logmel.name == "logmel"
    assert [d.dim_param or d.dim_value for d in logmel.type.tensor_type.shape.dim] == ["batch", 1, 128, 91]
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 46305
    assert proto.opset_import[0].version == 13
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Constant", "LayerNormalization", "Max", "Min", "ConstantOfShape", "STFT"}
    assert all(i != "" for n in proto.graph.node for i in n.input)
    # onnxsim's notes about its own run (they change with its version) are not kept.
    assert not [e.key for e in proto.metadata_props if e.key.startswith("onnxsim")]


def test_onnxruntime_matches_pytorch_for_any_batch(alexnet_reflect, rng):
    model, proto = alexnet_reflect
    session = ort.InferenceSession(serialize(proto), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = rng.standard_normal((batch, 46305)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        logits, feats = session.run(None, {"input": x})
        np.testing.assert_allclose(logits, ref, atol=1e-4, rtol=1e-4)
        with torch.no_grad():
            np.testing.assert_allclose(feats, model.features(torch.from_numpy(x)).numpy(), atol=1e-3)


def test_export_is_byte_deterministic(alexnet_reflect):
    model, proto = alexnet_reflect
    assert serialize(export_onnx(model)) == serialize(proto)


def test_metadata_roundtrip(alexnet_reflect, tmp_path):
    model, proto = alexnet_reflect
    set_metadata(proto, build_metadata("alexnet", model.labels, "emotions7", model.frontend_params, "synthetic"))
    path = tmp_path / "m.onnx"
    path.write_bytes(serialize(proto))
    meta = read_metadata(path)
    assert meta["labels"] == list(model.labels) and meta["sample_rate"] == "22050"
    assert meta["frontend"]["pad_mode"] == "reflect" and meta["normalization"]["rms_level_db"] == 0.0
    assert meta["contract"]["input_shape"] == ["batch", 46305]


def test_unsupported_opset_is_refused():
    with pytest.raises(ExportError, match="opset 25"):
        export_onnx(VoiceEmotionCnn("alexnet"), opset=25)
