"""Parity tolerances as data (``tolerances.json``), per stage and per runner."""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from .io import UntrustedFileError, read_untrusted

PATH = Path(__file__).with_name("tolerances.json")
#: Largest tolerance file read (the shipped one is about 2 kB).
MAX_BYTES = 1 << 20
STAGES = ("logmel_db", "logmel_between_runtimes", "logits", "probabilities", "batch_invariance",
          "determinism", "localization", "js_preprocessing", "operator_table")
#: Tolerance classes (a variant vs its float parent) and the keys each declares.
CLASSES = ("exact", "fp16", "int8", "int8s")
CLASS_KEYS = ("logits_max_abs", "top1_agreement_min", "accuracy_drop_max")
#: Bounds a class may declare beside :data:`CLASS_KEYS`, each replacing a stage bound of :data:`STAGES` for a
#: variant of the class when it is judged against itself across runtimes (``class key -> (stage, key)``): an
#: int8-arithmetic model's runtimes round its requantisations differently, and it turns the resampler's allowed
#: sample differences into larger probability changes than its float parent.
STAGE_CLASS_KEYS = {"runtime_logits_max_abs": ("logits", "max_abs"),
                    "runtime_probabilities_max_abs": ("probabilities", "max_abs"),
                    "js_preprocessing_probabilities": ("js_preprocessing", "probabilities")}
#: The bounds of a stream class (a streaming model's variant vs its parent, :mod:`parity.stream_judge`):
#: the largest change of a per-chunk score and the share of chunk decisions that must agree.
STREAM_CLASS_KEYS = ("scores_max_abs", "decision_agreement_min")
OPTIONAL_CLASS_KEYS = tuple(STAGE_CLASS_KEYS) + STREAM_CLASS_KEYS


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    data = read_untrusted(path, max_bytes=MAX_BYTES, format="json")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    missing = [s for s in STAGES if s not in data.get("defaults", {})]
    if missing:
        raise ValueError(f"{path}: tolerances for stages {missing} are missing")
    missing = [f"{c}.{k}" for c in CLASSES for k in CLASS_KEYS if k not in data.get("classes", {}).get(c, {})]
    if missing:
        raise ValueError(f"{path}: tolerance classes lack {missing}")
    return data


def load(path: str | Path = PATH) -> dict:
    """The whole tolerance file (a copy, safe to modify)."""
    return copy.deepcopy(_load(str(path)))


def for_stage(stage: str, runner: str | None = None, data: Mapping | None = None) -> dict[str, Any]:
    """Tolerances of ``stage`` for ``runner``: the defaults, overridden by the runner's entry."""
    data = data or _load(str(PATH))
    if stage not in data["defaults"]:
        raise KeyError(f"no tolerances for stage {stage!r}")
    out = dict(data["defaults"][stage])
    if runner is not None:
        out.update(data.get("runners", {}).get(runner, {}).get(stage, {}))
    return out


def for_class(name: str, data: Mapping | None = None) -> dict[str, float]:
    """The bounds of tolerance class ``name`` (``exact``, ``fp16``, ``int8``)."""
    data = data or _load(str(PATH))
    classes = data.get("classes") or _load(str(PATH))["classes"]
    if name not in classes:
        raise KeyError(f"no tolerance class {name!r} (one of {', '.join(classes)})")
    return dict(classes[name])


def load_overrides(path: str | Path, base: Mapping | None = None) -> dict:
    """The shipped tolerances with ``path``'s values laid over them.

    ``path`` has the layout of ``tolerances.json`` but may name only what it changes,
    e.g. ``{"defaults": {"logits": {"max_abs": 1e-6}}}`` or
    ``{"runners": {"chromium-webgl": {"logits": {"max_abs": 0.01}}}}``.  An unknown stage
    or key, or a value that is not a non-negative number, is a ``ValueError`` naming it.
    """
    path = Path(path)
    try:
        data = read_untrusted(path, max_bytes=MAX_BYTES, format="json")
    except UntrustedFileError as exc:
        raise ValueError(f"{exc.path}: cannot read tolerances ({exc.problem})") from None
    return apply_overrides(data, base, str(path))


def apply_overrides(data: Any, base: Mapping | None = None, path: str = "tolerances") -> dict:
    """:func:`load_overrides` on already-parsed data (a contract's ``tolerances`` table);
    errors name ``path`` and the field."""
    out = copy.deepcopy(dict(base) if base is not None else _load(str(PATH)))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    unknown = sorted(set(data) - {"version", "description", "defaults", "runners", "classes", "classes_description"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level field {unknown[0]!r} (defaults, runners, classes)")

    def merge(section: Mapping, target: dict, where: str) -> None:
        if not isinstance(section, dict):
            raise ValueError(f"{path}: {where} must be an object")
        for stage, values in section.items():
            if stage not in out["defaults"]:
                raise ValueError(f"{path}: {where}.{stage} is not a stage (one of {', '.join(STAGES)})")
            if not isinstance(values, dict):
                raise ValueError(f"{path}: {where}.{stage} must be an object")
            for key, value in values.items():
                if key not in out["defaults"][stage]:
                    raise ValueError(f"{path}: {where}.{stage}.{key} is not a tolerance of {stage} "
                                     f"({', '.join(out['defaults'][stage])})")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
                        or value == float("inf"):
                    raise ValueError(f"{path}: {where}.{stage}.{key} must be a finite number >= 0, not {value!r}")
                target.setdefault(stage, {})[key] = float(value)

    merge(data.get("defaults", {}), out["defaults"], "defaults")
    classes = data.get("classes", {})
    if not isinstance(classes, dict):
        raise ValueError(f"{path}: classes must be an object")
    for name, values in classes.items():
        if name not in out.setdefault("classes", {}):
            raise ValueError(f"{path}: classes.{name} is not a tolerance class (one of {', '.join(CLASSES)})")
        if not isinstance(values, dict):
            raise ValueError(f"{path}: classes.{name} must be an object")
        for key, value in values.items():
            if key not in CLASS_KEYS + OPTIONAL_CLASS_KEYS:
                raise ValueError(f"{path}: classes.{name}.{key} is not a class bound "
                                 f"({', '.join(CLASS_KEYS + OPTIONAL_CLASS_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf") \
                    or (key not in ("logits_max_abs", "scores_max_abs") and value > 1):
                raise ValueError(f"{path}: classes.{name}.{key} must be a finite number >= 0"
                                 f"{'' if key in ('logits_max_abs', 'scores_max_abs') else ' and <= 1'}, "
                                 f"not {value!r}")
            out["classes"][name][key] = float(value)
    runners = data.get("runners", {})
    if not isinstance(runners, dict):
        raise ValueError(f"{path}: runners must be an object")
    for runner, section in runners.items():
        merge(section, out.setdefault("runners", {}).setdefault(runner, {}), f"runners.{runner}")
    return out


def with_class_stage_bounds(tol: Mapping, class_name: str) -> Mapping:
    """``tol`` (``tolerances.json``'s layout) with the stage bounds tolerance class ``class_name`` replaces
    (its optional keys, :data:`STAGE_CLASS_KEYS`, in the defaults and in every runner's overrides); ``tol``
    itself when the class replaces none.  The one place a variant's class reaches its cross-runtime stages:
    the gate's live run and a saved run judged again (``--rejudge``, ``merge-reports``) both go through it."""
    bounds = for_class(class_name, tol)
    replaced = {where: float(bounds[key]) for key, where in STAGE_CLASS_KEYS.items() if key in bounds}
    if not replaced:
        return tol
    data = copy.deepcopy(dict(tol))
    for (stage, key), value in replaced.items():
        data["defaults"][stage][key] = value
        for section in (data.get("runners") or {}).values():
            if key in section.get(stage, {}):
                section[stage][key] = value
    return data
