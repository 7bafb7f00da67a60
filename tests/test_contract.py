import pytest

from ser_export import contract
from ser_export.contract import FrontendParams


def test_input_length_is_2_1_seconds():
    assert contract.N_SAMPLES == 46305 and contract.SAMPLE_RATE == 22050
    assert contract.DURATION == pytest.approx(2.1)
    assert FrontendParams().n_frames() == 91


def test_label_sets():
    assert contract.labels_for("emotions7") == (
        "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    eight = contract.labels_for("ravdess8")
    assert len(eight) == 8 and "calm" in eight
    with pytest.raises(ValueError, match="unknown label set"):
        contract.labels_for("emotions9")


def test_frontend_params_roundtrip_and_validation():
    p = FrontendParams(pad_mode="reflect")
    assert FrontendParams.from_dict(p.to_dict()) == p
    assert p.fmax_hz == 11025.0
    with pytest.raises(ValueError, match="pad_mode"):
        FrontendParams(pad_mode="edge")
    with pytest.raises(ValueError, match="unknown front-end parameters"):
        FrontendParams.from_dict({"n_fft": 2048, "bogus": 1})


def test_input_contract_is_plain_data():
    import json

    c = contract.input_contract()
    assert json.loads(contract.dumps_canonical(c)) == c
    assert c["input_shape"] == ["batch", 46305] and c["features_shape"] == ["batch", 1, 128, 91]
