"""The ONNX ``metadata_props`` a release model carries (read by Python and JavaScript).

Values are strings; structured values are canonical JSON.  Keys:

``labels`` (JSON list, logit order), ``label_set``, ``arch``, ``sample_rate``,
``input_length``, ``normalization`` (JSON), ``frontend`` (JSON, librosa's
parameter names), ``contract`` (JSON: the whole input/output contract),
``features_output`` (the graph output holding the log-mel features),
``training_data``, ``ser_export_version`` and, when needed, ``state_dict_extras``
(how to restore ``state_dict`` tensors the simplifier merged: aliases of identical
initializers and constant fills).
"""
from __future__ import annotations

import json
import os

import onnx

from .. import __version__, contract
from ..contract import FrontEnd

JSON_KEYS = ("labels", "normalization", "frontend", "contract", "state_dict_extras", "postprocessing")


def build_metadata(arch: str, labels: tuple[str, ...], label_set: str, frontend: FrontEnd,
                   training_data: str, features_output: str | None = None,
                   postprocessing: str | None = None) -> dict[str, str]:
    c = contract.input_contract(frontend)
    extra = {"features_output": features_output} if features_output else {}
    if postprocessing:
        extra["postprocessing"] = postprocessing
    return extra | {
        "arch": arch,
        "labels": contract.dumps_canonical(list(labels)),
        "label_set": label_set,
        "sample_rate": str(contract.SAMPLE_RATE),
        "input_length": str(contract.N_SAMPLES),
        "normalization": contract.dumps_canonical(c["normalization"]),
        "frontend": contract.dumps_canonical(frontend.to_dict()),
        "contract": contract.dumps_canonical(c),
        "training_data": training_data,
        "ser_export_version": __version__,
    }


def read_metadata(model: onnx.ModelProto | str | os.PathLike) -> dict:
    """The metadata of a model (or model file), JSON values decoded."""
    if not isinstance(model, onnx.ModelProto):
        from .model_file import open_model

        model = open_model(model).proto
    out: dict = {}
    for entry in model.metadata_props:
        out[entry.key] = json.loads(entry.value) if entry.key in JSON_KEYS else entry.value
    return out


def frontend_from_metadata(meta: dict) -> FrontEnd:
    if "frontend" not in meta:
        raise ValueError("model metadata has no 'frontend' entry (not a ser_export model?)")
    return FrontEnd.from_dict(meta["frontend"])
