"""Re-export with the other front-end, no retraining: same weights, logits agree."""
import json

import onnx

from ser_export.export.metadata import read_metadata
from ser_export.export.recover import model_from_onnx
from tests.e2e import run_cli


def test_reexport_switches_the_frontend_and_keeps_the_weights(quick_release, tmp_path):
    src = quick_release["out"] / "voice_emotion_cnn.onnx"
    src_impl = read_metadata(src)["frontend"]["implementation"]
    other = "conv2d" if src_impl == "fft" else "fft"
    out = tmp_path / "other.onnx"
    proc = run_cli("export", str(src), "--frontend", other, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frontend"] == other and all(summary["backends"].values())
    assert summary["max_abs_logit_diff_vs_source_frontend"] < 2e-3
    assert read_metadata(out)["frontend"]["implementation"] == other
    a, b = model_from_onnx(src).state_dict(), model_from_onnx(out).state_dict()
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert ("Conv" in ops) and (("MatMul" in ops) if other == "fft" else True)


def test_reexport_refuses_to_overwrite_its_input(quick_release, tmp_path):
    src = quick_release["out"] / "voice_emotion_cnn.onnx"
    proc = run_cli("export", str(src), "--frontend", "fft", "--out", str(src))
    assert proc.returncode != 0 and "must differ" in proc.stderr
