"""A run saved with ``verify --save-outputs`` judged again, running nothing (:func:`rejudge`); the saved
runs' judging is shared with ``merge-reports`` (:func:`judge_saved`, :func:`saved_tolerances`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

from ser_export import tolerances as tolerances_mod

from . import judge
from .record import ModelRun, RecordError, load_runs
from .report import GateReport, ModelReport


def rejudge(folder: Path, overrides: Path | Mapping | None = None) -> GateReport:
    """Judge a run saved with ``verify --save-outputs`` again; runs nothing.

    The run is judged under the tolerances it was saved with (a contract's own included),
    with ``overrides`` (a ``--tolerances`` file, or its parsed contents) laid over them.
    Checksums and could-not-check errors are carried over as recorded; shrinking and
    localisation need the runtimes and are not redone.
    """
    t0 = time.perf_counter()
    report = GateReport(release_dir=str(folder), config={"rejudged": str(folder)})
    try:
        runs, index = load_runs(Path(folder))
        tolerances = saved_tolerances(index, Path(folder) / "index.json", overrides)
    except (RecordError, ValueError) as exc:
        report.error = str(exc)
        return report
    report.runners = index.get("runners", {}) if isinstance(index.get("runners"), dict) else {}
    report.config = {"rejudged": str(folder), "original": index.get("config")}
    files = index.get("files") if isinstance(index.get("files"), dict) else {}
    report.models = judge_saved(runs, files, tolerances, Path(folder))
    report.cases_checked = sum(run.n_cases for run in runs.values())
    report.wall_s = time.perf_counter() - t0
    return report


def saved_tolerances(index: Mapping, where: Path, overrides: Path | Mapping | None = None) -> dict:
    """The tolerances a saved run was judged under (its index's), checked, with ``overrides`` (a ``--tolerances``
    file, or its parsed contents) laid over them; :class:`RecordError` naming ``where`` if the saved ones are bad."""
    try:
        saved = tolerances_mod.apply_overrides(index.get("tolerances") or {}, None, f"{where}: tolerances")
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    if isinstance(overrides, (str, Path)):
        return tolerances_mod.load_overrides(overrides, saved)
    return tolerances_mod.apply_overrides(overrides or {}, saved, "tolerances")


def _recorded(results: list, non_finite: Mapping[str, str]) -> list[judge.StageResult]:
    """Recorded results (the VAD's streams), their infinities and NaNs put back where ``non_finite`` names them."""
    for path, value in non_finite.items():
        *parents, last = path.split(".")
        node = results
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = float(value)
    return [judge.StageResult.from_dict(r) for r in results]


def judge_saved(runs: Mapping[str, ModelRun], files: Mapping, tolerances: Mapping, where: Path) -> list[ModelReport]:
    """A report per model of saved runs (``verify --rejudge``, ``merge-reports``), judged under ``tolerances``.

    ``files``: the saved index's ``files`` (each model's file, checksums, kind and could-not-check error);
    a model without a run (it could not be run, or is checked by checksum only) keeps the verdict recorded.
    """
    models = []
    for arch, run in runs.items():
        f = files.get(arch) if isinstance(files.get(arch), dict) else {}
        mr = ModelReport(arch=arch, file=run.subject.file, sha256_expected=f.get("sha256_expected"),
                         sha256_actual=f.get("sha256_actual"), error=f.get("error"))
        mr.timings["runners"] = {n: run.timings[n] for n in run.outputs if n in run.timings}
        try:
            mr.results = judge.judge_model(run, tolerances)
        except (KeyError, ValueError) as exc:
            mr.error = f"{where / (arch + '.json')}: cannot be judged ({exc})"
        models.append(mr)
    for arch, f in files.items():  # models that could not be run have no saved outputs
        if arch in runs or not isinstance(f, dict):
            continue
        if f.get("kind") in ("file", "stream"):  # checksum only, or the VAD's streams: the verdict as recorded
            models.append(ModelReport(arch=arch, file=str(f.get("file")), kind=f["kind"],
                                      sha256_expected=f.get("sha256_expected"),
                                      sha256_actual=f.get("sha256_actual"), error=f.get("error"),
                                      results=_recorded(f.get("results") or [], f.get("non_finite") or {})))
        else:
            models.append(ModelReport(arch=arch, file=str(f.get("file")), error=f.get("error") or
                                      "no saved outputs"))
    return models
