"""One schema mechanism (jsonschema) for the manifest and the contract, with one-line errors naming the field."""
import json

import pytest

from ser_export import manifest, model_contract
from ser_export.schema import first_problem
from tests.e2e import ROOT

COMMITTED = json.loads((ROOT / "saved_models" / "manifest.json").read_text())
SCHEMA = {"type": "object", "required": ["n", "xs"], "additionalProperties": False,
          "properties": {"n": {"type": "integer"}, "xs": {"type": "array", "items": {"type": ["number", "null"]}},
                         "o": {"anyOf": [{"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}},
                                          "additionalProperties": False}, {"type": "null"}]}}}


@pytest.mark.parametrize("data, message", [
    ({"n": 1.0, "xs": []}, "top.n must be an integer, not a number (1.0)"),
    ({"n": True, "xs": []}, "top.n must be an integer, not a boolean (true)"),
    ({"n": 1, "xs": [1, "a"]}, "top.xs[1] must be a number or null, not a string (\"a\")"),
    ({"n": 1}, "top.xs is missing"),
    ({"n": 1, "xs": [], "y": 2}, "top.y is not a field of the test (top: n, xs, o)"),
    ({"n": 1, "xs": [], "o": {}}, "top.o.k is missing"),
    ({"n": 1, "xs": [], "o": 3}, "top.o must be an object or null, not an integer (3)"),
    ({"n": "x", "y": 1}, "top.y is not a field"),  # at one depth: an unknown field first, then a missing one
    ({"n": 1, "xs": [], "o": {"k": "a\nb", "z": 1}}, "top.o.z is not a field"),
])
def test_the_problem_that_matters_most_in_one_line(data, message):
    got = first_problem(SCHEMA, data, "top", "the test")
    assert got is not None and got.startswith(message) and "\n" not in got, got
    assert first_problem(SCHEMA, {"n": 1, "xs": [1.5, None], "o": None}, "top") is None


def test_the_manifest_schema_is_the_layout_and_takes_the_committed_manifest():
    schema = manifest.json_schema()
    assert schema["$schema"].endswith("2020-12/schema") and schema["additionalProperties"] is False
    assert set(schema["required"]) == set(manifest.LAYOUT.required)
    assert schema["properties"]["build"] == manifest.LAYOUT.required["build"].schema()
    assert first_problem(schema, COMMITTED, "manifest") is None
    bad = json.loads(json.dumps(COMMITTED))
    bad["build"]["seed"] = 1.0  # an integer field written as a float: refused, as before jsonschema
    assert first_problem(schema, bad, "manifest") == "manifest.build.seed must be an integer, not a number (1.0)"


def test_the_contract_is_checked_against_its_published_schema():
    base = {"input": {"name": "x", "shape": ["batch", 100], "sample_rate": 16000}, "outputs": {"logits": "y"}}
    assert model_contract.ModelContract.from_mapping(base).input.sample_rate == 16000
    for edit, message in [({"version": 1.0}, "version must be an integer"),
                          ({"targets": "wasm"}, "targets must be a list, not a string"),
                          ({"input": {**base["input"], "shape": ["batch", 1.5]}},
                           "input.shape[1] must be an integer or a string, not a number (1.5)")]:
        with pytest.raises(model_contract.ContractError) as info:
            model_contract.ModelContract.from_mapping(base | edit, "c.toml")
        assert str(info.value).startswith(f"c.toml: {message}"), str(info.value)
