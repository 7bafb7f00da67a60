"""Validating parsed JSON/TOML against a JSON Schema, with one-line errors naming the field.

The manifest (:data:`ser_export.manifest.LAYOUT`) and a model contract
(:func:`ser_export.model_contract.json_schema`) are both checked here, with ``jsonschema``'s
draft 2020-12 validator and one change to it: ``"integer"`` means a JSON integer (``1``), not a
number with no fraction (``1.0``), as Python's ``json`` and ``tomllib`` parse them.

:func:`first_problem` renders the problem that matters most as one line: the shallowest field
first, and at one depth an unknown field before a missing one before a wrong type::

    manifest.models.alexnet.sha256 must be a string, not an integer (5)
    manifest.models.alexnet.golden is missing
    outputs.frontend.hop_lenght is not a field of the contract (outputs.frontend: sr, n_fft, ...)

Why ``jsonschema`` and not pydantic: both layouts already exist as JSON Schema documents
(:func:`ser_export.manifest.json_schema`; :func:`ser_export.model_contract.json_schema`, which
``python -m ser_export contract --schema`` publishes for other tools), and ``jsonschema`` validates
against that very document, so what we publish and what we enforce cannot drift apart.
pydantic would need the two layouts written again as model classes (its generated schema a second
description beside :data:`~ser_export.manifest.LAYOUT` and the contract's), coerces by default
(``"1"`` or ``1.0`` accepted for an integer field) unless every model is made strict, and brings a
compiled core; ``jsonschema`` is pure Python and reports each problem with its path in the document,
which :func:`first_problem` turns into the one line above.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable, Mapping

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
#: Draft 2020-12, with integers that are JSON integers only.
Validator = validators.extend(Draft202012Validator, type_checker=_TYPES)

_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
          "array": "a list", "object": "an object", "null": "null"}
_ORDER = {"additionalProperties": 0, "required": 1, "type": 2}


def json_type(value: Any) -> str:
    """The JSON type of a parsed value, in words (``"an integer"``)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return "null" if value is None else type(value).__name__


def _shown(value: Any) -> str:
    if isinstance(value, (Mapping, list, tuple)):
        return json_type(value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{json_type(value)} ({text})"


def _path(root: str, parts: Iterable) -> str:
    out = root
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    if "type" in schema:
        t = schema["type"]
        return [t] if isinstance(t, str) else list(t)
    return [t for s in schema.get("anyOf", ()) for t in _types(s)]


def _render(error: ValidationError, root: str, what: str) -> str:
    where = _path(root, error.absolute_path)
    if error.validator == "anyOf":
        deeper = [e for e in error.context if e.validator != "type" or len(e.absolute_path) > len(error.absolute_path)]
        if deeper:
            return _render(min(deeper, key=_rank), root, what)
        names = list(dict.fromkeys(_NAMES.get(t, t) for t in _types(error.schema)))
        return f"{where} must be {' or '.join(names)}, not {_shown(error.instance)}"
    if error.validator == "type":
        names = [_NAMES.get(t, t) for t in _types(error.schema)]
        return f"{where} must be {' or '.join(names)}, not {_shown(error.instance)}"
    if error.validator == "required":
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"{_path(root, [*error.absolute_path, missing])} is missing"
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in known)[0]
        return (f"{_path(root, [*error.absolute_path, unknown])} is not a field of {what} "
                f"({where or 'top level'}: {', '.join(known) or 'no fields'})")
    return f"{where or what}: {error.message}"


def _rank(error: ValidationError) -> tuple:
    return len(error.absolute_path), _ORDER.get(error.validator, 3), [str(p) for p in error.absolute_path]


@lru_cache(maxsize=8)
def _validator(schema_json: str) -> Validator:
    return Validator(json.loads(schema_json))


def validator(schema: Mapping) -> Validator:
    """A (cached) :data:`Validator` of ``schema``."""
    return _validator(json.dumps(schema))  # key order kept: errors list fields in the schema's order


def first_problem(schema: Mapping, data: Any, root: str = "", what: str = "the schema") -> str | None:
    """The problem of ``data`` against ``schema`` that matters most, as one line (``None``: valid).

    Parameters
    ----------
    schema : mapping
        A JSON Schema (draft 2020-12).
    data : object
        Parsed JSON or TOML.
    root : str
        The name field paths start with (``"manifest"`` gives ``manifest.models...``).
    what : str
        What an unknown field is not a field of (``"the manifest layout"``).
    """
    errors = list(validator(schema).iter_errors(data))
    if not errors:
        return None
    return _render(min(errors, key=_rank), root, what).replace("\n", " ")
