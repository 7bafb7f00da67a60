"""open_model: the one reader of model files; sound files load, everything else is one line."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ser_export.export.model_file import ReleaseFileError, open_model


def _model_with_external_data(folder, location="w.bin"):
    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    onnx.save(helper.make_model(graph), str(folder / "m.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location=location, size_threshold=0)
    return folder / "m.onnx"


def test_external_data_inside_the_folder_is_loaded(tmp_path):
    model = open_model(_model_with_external_data(tmp_path))
    w = numpy_helper.to_array(model.proto.graph.initializer[0])
    assert w.shape == (64, 64) and w[63, 63] == 4095 and model.size == (tmp_path / "m.onnx").stat().st_size


def test_external_data_shorter_than_its_tensor_is_refused(tmp_path):
    path = _model_with_external_data(tmp_path)
    (tmp_path / "w.bin").write_bytes((tmp_path / "w.bin").read_bytes()[:100])
    with pytest.raises(ReleaseFileError, match=r"external data of 'w' \('w.bin'\): asks for bytes 0..16384 of a "
                                               r"100-byte file"):
        open_model(path)


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"), (b"\x08\x07", "no graph or no opset"), (b"\xff" * 64, "not an ONNX model"),
])
def test_not_a_model(tmp_path, data, message):
    (tmp_path / "m.onnx").write_bytes(data)
    with pytest.raises(ReleaseFileError, match=message) as info:
        open_model(tmp_path / "m.onnx")
    assert str(info.value).startswith(str(tmp_path / "m.onnx")) and info.value.exit_code == 2


def test_size_limit_and_a_path_outside_the_folder(tmp_path):
    path = _model_with_external_data(tmp_path)
    with pytest.raises(ReleaseFileError, match=r"over the 100-byte limit"):
        open_model(path, max_bytes=100)
    (tmp_path / "inner").mkdir()
    with pytest.raises(ReleaseFileError, match="is outside"):
        open_model(path, folder=tmp_path / "inner")
