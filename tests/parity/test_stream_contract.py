"""Contract version 2 (a streaming, stateful model): reading, its wire form, its schema, one-line errors; version 1
files read as before."""
import json

import pytest

from ser_export.model_contract import ContractError, ModelContract
from ser_export.stream_contract import StreamContract, json_schema, read_contract
from ser_export.cli import main
from tests.e2e import ROOT
from tests.parity import foreign_models

CONTRACTS = ROOT / "parity" / "contracts"
SILERO = (CONTRACTS / "silero_vad.toml").read_text()


def test_the_silero_contract_gives_the_wire_form_of_the_runners():
    contract = read_contract(CONTRACTS / "silero_vad.toml")
    assert isinstance(contract, StreamContract)
    assert contract.to_wire() == {
        "signal": {"name": "input", "chunk": 512, "context": 64, "dtype": "float32"},
        "states": [{"input": "state", "output": "stateN", "dims": [2, 1, 128], "dtype": "float32", "init": 0.0}],
        "constants": [{"name": "sr", "dtype": "int64", "dims": [], "value": 16000}],
        "outputs": ["output"]}
    assert contract.decisions["output"].threshold == 0.5 and contract.decisions["output"].hysteresis == 0.15
    assert contract.reference.drive == "self" and contract.reference.arguments == (16000,)
    json.dumps(contract.to_wire())  # JSON-serialisable, as the JS runners get it


def test_every_shipped_contract_reads_and_the_half_variant_names_its_parent():
    for path in sorted(CONTRACTS.glob("*.toml")):
        assert isinstance(read_contract(path), StreamContract), path
    half = read_contract(CONTRACTS / "silero_vad_half.toml")
    assert half.variant.parent == "silero_vad.onnx" and half.variant.tolerance_class == "fp16_stream"
    assert [c["name"] for c in half.to_wire()["constants"]] == []
    assert [c["name"] for c in half.parent_wire()["constants"]] == ["sr"]
    seq = read_contract(CONTRACTS / "silero_vad_16k_sequence.toml")
    assert seq.sequence.outputs == ("speech_probs",) and [s.name for s in seq.states] == ["h", "c"]


def test_a_version_1_file_reads_as_before(tmp_path):
    path = tmp_path / "kws.toml"
    path.write_text(foreign_models.KWS_CONTRACT)
    assert read_contract(path) == ModelContract.read(path)


@pytest.mark.parametrize("edit, field", [
    (lambda s: s.replace("chunk = 512", "chunck = 512"), "signal.chunck is not a field"),
    (lambda s: s.replace("chunk = 512\n", ""), "signal.chunk is missing"),
    (lambda s: s.replace("context = 64", "context = -1"), "signal: context must be >= 0"),
    (lambda s: s.replace('dtype = "int64"', 'dtype = "int8"'), "constants[0]: dtype must be one of"),
    (lambda s: s.replace('shape = [2, "batch", 128]', 'shape = [2, "batch", "time"]'), "states[0]: shape may name one"),
    (lambda s: s.replace('drive = "self"', 'drive = "magic"'), "reference: drive must be one of"),
    (lambda s: s.replace('name = "sr"', 'name = "state"'), "input 'state' is declared twice"),
    (lambda s: s.replace("threshold = 0.5", 'threshold = "high"'), "scores[0].decision.threshold must be a number"),
    (lambda s: s.replace("version = 2", "version = 2\nframes = 3"), "frames is not a field of the contract"),
])
def test_a_wrong_field_is_one_line_naming_it(tmp_path, edit, field):
    path = tmp_path / "c.toml"
    path.write_text(edit(SILERO))
    with pytest.raises(ContractError) as info:
        read_contract(path)
    message = str(info.value)
    assert field in message and str(path) in message and "\n" not in message, message


def test_the_schema_is_published_and_is_the_one_enforced(capsys):
    assert main(["contract", "--schema", "--schema-version", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(json_schema()))
    schema = json_schema()
    assert schema["$id"].endswith("/v2")
    assert set(schema["properties"]) >= {"signal", "states", "constants", "scores", "features", "sequence",
                                         "variant", "reference"}
    assert schema["properties"]["signal"]["required"] == ["name", "sample_rate", "chunk"]
    assert main(["contract", "--check", str(CONTRACTS / "silero_vad.toml")]) == 0
    assert json.loads(capsys.readouterr().out)["signal"]["context"] == 64
    assert main(["contract", "--schema"]) == 0  # version 1's, unchanged
    assert json.loads(capsys.readouterr().out)["$id"].endswith("/v1")
