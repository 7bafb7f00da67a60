import pytest
import torch

from ser_export.errors import ExportError
from ser_export.export.metadata import build_metadata
from ser_export.export.onnx_export import export_onnx, set_metadata
from ser_export.export.recover import model_from_onnx, require_recoverable
from ser_export.models import VoiceEmotionCnn


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
def test_pytorch_model_is_rebuilt_exactly_from_the_onnx_file(arch):
    torch.manual_seed(3)
    model = VoiceEmotionCnn(arch).eval()
    with torch.no_grad():  # trained-looking BN statistics and affines
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point and ("bn" in name or "bnorm" in name):
                t.copy_(torch.rand_like(t) + 0.5)
    proto = export_onnx(model)
    set_metadata(proto, build_metadata(arch, model.labels, "emotions7", model.frontend_params, "test",
                                       features_output="logmel"))
    require_recoverable(proto, model)
    rebuilt = model_from_onnx(proto)
    x = torch.randn(2, 46305)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    assert [o.name for o in proto.graph.output] == ["output", "logmel"]


def test_a_foreign_model_is_refused():
    model = VoiceEmotionCnn("alexnet").eval()
    proto = export_onnx(model)
    with pytest.raises(ExportError, match="metadata"):
        model_from_onnx(proto)
    set_metadata(proto, build_metadata("alexnet", model.labels, "emotions7", model.frontend_params, "t"))
    del proto.graph.initializer[-1]
    with pytest.raises(ExportError, match="missing"):
        model_from_onnx(proto)
