import pytest

from ser_export import contract
from ser_export.contract import FrontEnd, LogTransform
from tests.e2e import ROOT

RELEASE = ROOT / "saved_models"


def test_input_length_is_2_1_seconds():
    assert contract.N_SAMPLES == 46305 and contract.SAMPLE_RATE == 22050
    assert contract.DURATION == pytest.approx(2.1)
    assert FrontEnd().n_frames() == 91


def test_label_sets():
    assert contract.labels_for("emotions7") == (
        "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    eight = contract.labels_for("ravdess8")
    assert len(eight) == 8 and "calm" in eight
    with pytest.raises(ValueError, match="unknown label set"):
        contract.labels_for("emotions9")


def test_frontend_params_roundtrip_and_validation():
    p = FrontEnd(pad_mode="reflect")
    assert FrontEnd.from_dict(p.to_dict()) == p
    assert p.fmax_hz == 11025.0
    with pytest.raises(ValueError, match="pad_mode must be one of"):
        FrontEnd(pad_mode="mirror")
    with pytest.raises(ValueError, match="unknown front-end parameters"):
        FrontEnd.from_dict({"n_fft": 2048, "bogus": 1})
    with pytest.raises(ValueError, match="ref="):
        FrontEnd.from_dict({"ref": "max"})


@pytest.mark.parametrize("change, what", [
    (dict(pad_mode="edge"), "pad_mode must be 'constant' or 'reflect'"), (dict(window="hamming"), "hann"),
    (dict(win_length=1024), "win_length"), (dict(power=1.0), "power"), (dict(htk=True), "Slaney"),
    (dict(log=LogTransform("log")), "dB relative"),
])
def test_what_the_graph_cannot_build_is_refused_by_the_graph_and_the_metadata(change, what):
    """A declared contract may state it (librosa can compute it); ser_export's graph and its metadata cannot."""
    from ser_export.frontend import build_frontend

    fe = FrontEnd(**change)
    for make in (fe.to_dict, lambda: build_frontend(fe)):
        with pytest.raises(ValueError, match=what):
            make()


def test_the_metadata_layout_is_the_release_s():
    """The build's front-end (fft, constant padding) writes exactly the release's ``frontend`` entry."""
    import onnx

    from ser_export.export.metadata import read_metadata

    built = FrontEnd(pad_mode="constant", implementation="fft")
    assert FrontEnd() == built  # the default is what the build uses
    for name in contract.MODEL_FILES.values():
        meta = read_metadata(onnx.load(str(RELEASE / name), load_external_data=False))
        assert contract.dumps_canonical(built.to_dict()) == contract.dumps_canonical(meta["frontend"])
        assert FrontEnd.from_dict(meta["frontend"]) == built
        assert contract.input_contract(built) == meta["contract"]
    assert list(built.to_dict()) == list(contract.METADATA_KEYS)


def test_the_build_s_default_is_the_front_end_s_default():
    from ser_export.cli import build_parser

    args = build_parser().parse_args(["build"])
    assert args.frontend == FrontEnd().implementation == "fft"


def test_a_declared_contract_states_the_librosa_fields_and_never_the_graph_s():
    from ser_export.model_contract import ContractError, ModelContract, json_schema

    schema = json_schema()["properties"]["outputs"]["properties"]["frontend"]["anyOf"][0]
    assert schema["required"] == ["sr", "n_fft", "hop_length", "n_mels"]
    assert not {"implementation", "fft_n1", "mel_groups"} & set(schema["properties"])
    assert "default" not in schema["properties"]["sr"]
    base = {"input": {"name": "x", "shape": ["batch", 100], "sample_rate": 16000}, "outputs": {"logits": "y"}}
    fe = {"sr": 16000, "n_fft": 512, "hop_length": 160}
    with pytest.raises(ContractError, match="outputs.frontend.n_mels is missing"):
        ModelContract.from_mapping(base | {"outputs": {"logits": "y", "frontend": fe}})
    with pytest.raises(ContractError, match="outputs.frontend.implementation is not a field"):
        ModelContract.from_mapping(base | {"outputs": {"logits": "y", "frontend": fe | {"n_mels": 40,
                                                                                         "implementation": "fft"}}})
    ok = ModelContract.from_mapping(base | {"outputs": {"logits": "y", "frontend": fe | {"n_mels": 40}}})
    assert ok.outputs.frontend.n_mels == 40
    assert "implementation" not in ok.to_dict()["outputs"]["frontend"]


def test_input_contract_is_plain_data():
    import json

    c = contract.input_contract()
    assert json.loads(contract.dumps_canonical(c)) == c
    assert c["input_shape"] == ["batch", 46305] and c["features_shape"] == ["batch", 1, 128, 91]
