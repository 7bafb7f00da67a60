import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from ser_export.frontend import LogmelFilterBank, power_to_db
from ser_export.frontend.mel import FLOAT32_MAX


powers = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 7)),
                elements=st.one_of(st.just(0.0), st.floats(1e-14, 1e6)))


@given(powers, st.sampled_from([None, 20.0, 80.0]))
def test_power_to_db_matches_librosa_per_example(power, top_db):
    ours = power_to_db(torch.from_numpy(power), amin=1e-10, top_db=top_db).numpy()
    for b in range(power.shape[0]):
        ref = librosa.power_to_db(power[b], ref=np.max, amin=1e-10, top_db=top_db)
        np.testing.assert_allclose(ours[b], ref, atol=1e-9, rtol=0)


@given(powers)
def test_power_to_db_is_batch_invariant(power):
    """An example's dB values do not depend on the other examples in its batch."""
    batch = power_to_db(torch.from_numpy(power)).numpy()
    for b in range(power.shape[0]):
        alone = power_to_db(torch.from_numpy(power[b:b + 1])).numpy()[0]
        np.testing.assert_array_equal(batch[b], alone)


def test_power_to_db_of_silence_is_zero_not_nan():
    out = power_to_db(torch.zeros(2, 3, 4))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_power_to_db_rejects_bad_parameters():
    with pytest.raises(ValueError, match="amin"):
        power_to_db(torch.ones(1, 2), amin=0.0)
    with pytest.raises(ValueError, match="top_db"):
        power_to_db(torch.ones(1, 2), top_db=-1.0)


def test_clip_has_both_bounds_in_the_export():
    """WebGL ignores a lone Clip min; the exported Clip must carry min and max."""
    import io

    import onnx

    buf = io.BytesIO()
    torch.onnx.export(LogmelFilterBank(), (torch.rand(1, 1025, 5),), buf, dynamo=False, opset_version=13)
    clips = [n for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type == "Clip"]
    assert clips and all(len(n.input) == 3 and n.input[1] and n.input[2] for n in clips)
    assert not [n for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type in ("Max", "Min")]
    assert FLOAT32_MAX == float(np.finfo(np.float32).max)


def test_filterbank_is_librosa_slaney():
    fb = LogmelFilterBank(sr=22050, n_fft=2048, n_mels=128)
    ref = librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=11025.0)
    np.testing.assert_allclose(fb.melW.numpy(), ref, rtol=1e-6, atol=1e-9)
    assert fb.state_dict() == {}
