"""Parity tolerances as data (``tolerances.json``), per stage and per runner."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

PATH = Path(__file__).with_name("tolerances.json")
STAGES = ("logmel_db", "logmel_between_runtimes", "logits", "probabilities", "batch_invariance",
          "determinism", "localization", "js_preprocessing", "operator_table")


@lru_cache(maxsize=None)
def _load(path: str) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [s for s in STAGES if s not in data.get("defaults", {})]
    if missing:
        raise ValueError(f"{path}: tolerances for stages {missing} are missing")
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
