"""The ONNX ``metadata_props`` a release model carries (read by Python and JavaScript).

Values are strings; structured values are canonical JSON.  Keys:

``labels`` (JSON list, logit order), ``label_set``, ``arch``, ``sample_rate``,
``input_length``, ``normalization`` (JSON), ``frontend`` (JSON, librosa's
parameter names), ``contract`` (JSON: the whole input/output contract),
``features_output`` (the graph output holding the log-mel features),
``training_data``, ``ser_export_version`` and, when needed, ``state_dict_extras``
(how to restore ``state_dict`` tensors the simplifier merged: aliases of identical
initializers and constant fills), ``postprocessing`` (JSON, :mod:`ser_export.postprocess`) and,
in a reduced-precision variant, ``variant`` (JSON, :mod:`ser_export.export.variants`).

:func:`read_metadata` decodes the JSON values with :func:`ser_export.io.loads_json` (no repeated
key, no ``NaN``/``Infinity``): a value that breaks it is a one-line
:class:`~ser_export.export.model_file.ReleaseFileError` naming the model file and the key.
"""
from __future__ import annotations

import os

import onnx

from .. import __version__, contract
from ..contract import FrontEnd
from ..io import UntrustedFileError, loads_json
from .model_file import ModelFile, ReleaseFileError, open_model

JSON_KEYS = ("labels", "normalization", "frontend", "contract", "state_dict_extras", "postprocessing", "variant")


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


def read_metadata(model: ModelFile | onnx.ModelProto | str | os.PathLike) -> dict:
    """The metadata of a model (a :class:`~ser_export.export.model_file.ModelFile`, a model file or a
    parsed model), the values of :data:`JSON_KEYS` decoded by :func:`ser_export.io.loads_json`.

    Raises
    ------
    ReleaseFileError
        One line, ``"<model file>: metadata '<key>': <problem>"``, for a JSON value that is not strict
        JSON (a parsed model without its file is named ``model``).
    """
    if isinstance(model, ModelFile):
        where, model = model.path, model.proto
    elif isinstance(model, onnx.ModelProto):
        where = "model"
    else:
        where = model
        model = open_model(model).proto
    out: dict = {}
    for entry in model.metadata_props:
        if entry.key not in JSON_KEYS:
            out[entry.key] = entry.value
            continue
        try:
            out[entry.key] = loads_json(entry.value, f"{where}: metadata {entry.key!r}")
        except UntrustedFileError as exc:
            raise ReleaseFileError(str(exc)) from None
    return out


def frontend_from_metadata(meta: dict) -> FrontEnd:
    if "frontend" not in meta:
        raise ValueError("model metadata has no 'frontend' entry (not a ser_export model?)")
    return FrontEnd.from_dict(meta["frontend"])
