"""Re-export with the other front-end, no retraining: same weights, logits agree."""
import json

import onnx

from ser_export.export.metadata import read_metadata
from ser_export.export.recover import model_from_onnx
from tests.e2e import run_cli

#: What tells the two STFTs apart in the graph: the Conv2d DFT basis, or the four-step FFT's MatMuls.
STFT_OPS = {"conv2d": {"Conv": True, "MatMul": False}, "fft": {"Conv": False, "MatMul": True}}


def _stft_ops(path) -> dict[str, bool]:
    """Whether the model's STFT (the front-end's first module, ``melspec_extractor.0``) has a Conv / a MatMul."""
    ops = {n.op_type for n in onnx.load(str(path)).graph.node
           if n.name.startswith("/melspec_extractor/melspec_extractor.0/")}
    assert ops, "no node of the STFT found by name"
    return {op: op in ops for op in ("Conv", "MatMul")}


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
    # the STFT itself (not the classifier, which has Conv and MatMul either way) is the other implementation's
    assert _stft_ops(src) == STFT_OPS[src_impl] and _stft_ops(out) == STFT_OPS[other]


def test_reexport_refuses_to_overwrite_its_input(quick_release, tmp_path):
    src = quick_release["out"] / "voice_emotion_cnn.onnx"
    proc = run_cli("export", str(src), "--frontend", "fft", "--out", str(src))
    assert proc.returncode != 0 and "must differ" in proc.stderr
