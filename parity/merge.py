"""``python -m ser_export merge-reports``: the shards of a gate run as one verdict.

``verify --shard K/N --report FILE.json`` writes its report and saves its raw run beside it, in
``FILE.run/`` (the report names that folder).  The merge reads every report and run as
untrusted input (a report names a folder beside itself, never a path elsewhere), checks that
they are the shards of one run -- the same release files, cases (examples, seed, batch size),
tolerances, and every shard ``1..N`` of each set of runtimes exactly once, an empty one too -- then
joins each model's runs case by case (:func:`parity.record.concat_runs`) and across runtimes
(:func:`parity.record.union_runs`), and judges the joined run once with
:func:`parity.judge.judge_model`.  N shards merged therefore give the unsharded run's verdict
and figures; anything that makes that impossible (a shard missing or given twice, shards of
different releases) is exit 2, with one line naming the file.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Sequence

from .config import baseline_of
from .judge import StageResult
from .record import ModelRun, RecordError, concat_runs, load_runs, read_json, union_runs
from .rejudge import judge_saved, saved_tolerances
from .report import GateReport
from .shard import Shard

#: Largest shard report read (bytes).
MAX_REPORT_BYTES = 256 << 20
#: The configuration every shard of one run shares (what decides the cases and how they are batched).
SHARED_CONFIG = ("examples", "seed", "batch_size", "invariance_cases")


@dataclasses.dataclass
class ShardRun:
    """One shard's report and its saved run."""

    path: Path
    shard: Shard
    runtimes: tuple[str, ...]
    report: dict
    runs: dict[str, ModelRun]
    index: dict


def runs_folder_name(report_path: Path) -> str:
    """The folder a shard's run is saved in, beside its report (``shard-1.json`` -> ``shard-1.run``)."""
    return Path(report_path).with_suffix(".run").name


def read_shard(path: Path) -> ShardRun:
    """A shard's report and its run; :class:`RecordError` naming the file for anything else."""
    path = Path(path)
    report = read_json(path, MAX_REPORT_BYTES, "a gate report")
    info = report.get("shard") if isinstance(report, dict) else None
    if not isinstance(info, dict):
        raise RecordError(f"{path}: not the report of a sharded run (verify --shard K/N --report FILE)")
    try:
        shard = Shard(info["index"], info["count"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{path}: its shard record is malformed ({exc})") from None
    name = info.get("outputs")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", name) or name.startswith("."):
        raise RecordError(f"{path}: its saved run {name!r} is not a folder name beside the report")
    runs, index = load_runs(path.parent / name)
    config = index.get("config")
    if not isinstance(config, dict) or config.get("shard") != shard.to_dict():
        raise RecordError(f"{path.parent / name}: its run is not shard {shard.label} (the report says it is)")
    runtimes = config.get("runtimes")
    if not isinstance(runtimes, list) or not all(isinstance(r, str) for r in runtimes):
        raise RecordError(f"{path.parent / name}/index.json: config.runtimes is not a list of names")
    return ShardRun(path, shard, tuple(runtimes), report, runs, index)


def _check_one_run(shards: Sequence[ShardRun]) -> dict[tuple[str, ...], list[ShardRun]]:
    """The shards grouped by runtimes, each group in shard order; :class:`RecordError` unless they are
    every shard of one run, once."""
    first = shards[0]
    for s in shards[1:]:
        for key in SHARED_CONFIG:
            if s.index["config"].get(key) != first.index["config"].get(key):
                raise RecordError(f"{s.path}: {key} {s.index['config'].get(key)!r} differs from "
                                  f"{first.path}'s {first.index['config'].get(key)!r} (not shards of one run)")
        if s.index.get("tolerances") != first.index.get("tolerances"):
            raise RecordError(f"{s.path}: judged under other tolerances than {first.path}")
        for arch in set(s.index.get("files") or {}) | set(first.index.get("files") or {}):
            a, b = ((x.index.get("files") or {}).get(arch) or {} for x in (first, s))
            if (a.get("file"), a.get("sha256_expected"), a.get("sha256_actual")) != (
                    b.get("file"), b.get("sha256_expected"), b.get("sha256_actual")):
                raise RecordError(f"{s.path}: checked another release than {first.path} ({arch}: "
                                  f"{b.get('file')} sha256 {str(b.get('sha256_actual'))[:12]}... vs "
                                  f"{a.get('file')} sha256 {str(a.get('sha256_actual'))[:12]}...)")
    groups: dict[tuple[str, ...], dict[int, ShardRun]] = {}
    counts = {s.shard.count for s in shards}
    if len(counts) > 1:
        raise RecordError(f"the reports are shards of runs split {sorted(counts)} ways (one run has one N)")
    for s in shards:
        group = groups.setdefault(s.runtimes, {})
        if s.shard.index in group:
            raise RecordError(f"{s.path}: shard {s.shard.label} of runtimes {','.join(s.runtimes)} is given "
                              f"twice (also {group[s.shard.index].path})")
        group[s.shard.index] = s
    n = counts.pop()
    for runtimes, group in groups.items():
        missing = [k for k in range(1, n + 1) if k not in group]
        if missing:
            raise RecordError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} of runtimes {','.join(runtimes)} "
                              f"missing: {n} shards make one run")
    return {runtimes: [group[k] for k in range(1, n + 1)] for runtimes, group in groups.items()}


def _holds_cases(shard: ShardRun, config: dict) -> bool:
    """Whether ``shard`` keeps any case of the run (:meth:`parity.shard.Shard.bounds`: with fewer batches
    than shards the last ones are empty); :class:`RecordError` when an empty one saved a model's run."""
    examples, batch_size = config.get("examples"), config.get("batch_size")
    if not all(type(v) is int and v >= 1 for v in (examples, batch_size)):
        raise RecordError(f"{shard.path}: its run's examples {examples!r} and batch_size {batch_size!r} are not "
                          f"counts")
    start, stop = shard.shard.bounds(examples, batch_size)
    if start == stop and shard.runs:
        raise RecordError(f"{shard.path}: shard {shard.shard.label} keeps no case but saved a run of "
                          f"{', '.join(sorted(shard.runs))}")
    return start < stop


def merge_reports(paths: Sequence[Path], overrides: Path | None = None) -> GateReport:
    """One report from the shards' reports (``verify --shard K/N``), judged once.

    ``overrides``: a ``--tolerances`` file laid over the tolerances the shards were judged under.
    """
    report = GateReport(release_dir="", config={"merged": [str(p) for p in paths]})
    if not paths:
        report.error = "merge-reports: no shard reports given"
        return report
    try:
        shards = [read_shard(p) for p in paths]
        groups = _check_one_run(shards)
        first = shards[0]
        tolerances = saved_tolerances(first.index, first.path, overrides)
        archs = list(dict.fromkeys(a for s in shards for a in s.runs))
        runs: dict[str, ModelRun] = {}
        config = first.index["config"]
        for arch in archs:
            joined = []
            for runtimes, group in groups.items():
                group = [s for s in group if _holds_cases(s, config)]  # an empty shard has no run to join
                have = [s for s in group if arch in s.runs]
                if len(have) == len(group):
                    joined.append(concat_runs([s.runs[arch] for s in group]))
            if joined:
                runs[arch] = union_runs(joined, baseline_of)
    except (RecordError, ValueError) as exc:
        report.error = str(exc)
        return report
    files: dict = {}
    for s in shards:  # a model some shard could not check keeps that shard's error
        for arch, f in (s.index.get("files") or {}).items():
            if not isinstance(f, dict):
                continue
            entry = files.setdefault(arch, dict(f))
            if f.get("results") and not entry.get("results"):  # the VAD's streams, judged in shard 1 only
                entry.update(kind=f["kind"], results=f["results"], non_finite=f.get("non_finite") or {})
            if f.get("error") and not entry.get("error"):
                entry["error"] = f"{s.path} (shard {s.shard.label}): {f['error']}"
    for arch in files:
        if arch not in runs and not files[arch].get("error") and files[arch].get("kind") not in ("file", "stream"):
            files[arch]["error"] = "some shards have no saved run of it"
    report.release_dir = str(first.report.get("release_dir", ""))
    report.models = judge_saved(runs, files, tolerances, first.path.parent / runs_folder_name(first.path))
    for m in report.models:  # the shards' shrunk counterexamples and localisations, once each
        judged = {(r.stage, r.runner) for r in m.results}
        for s in shards:
            entry = next((e for e in s.report.get("models", []) if isinstance(e, dict) and e.get("arch") == m.arch),
                         {})
            for key, seen in (("counterexamples", m.counterexamples), ("localization", m.localization)):
                for item in entry.get(key) or []:
                    if isinstance(item, dict) and item not in seen:
                        seen.append(item)
            # rows made before running, not by the judge (a single model's operator lint, its stages the
            # contract declares nothing for): as shard 1 reported them (every shard makes them alike; the
            # others also say what they leave to shard 1, which the joined run does not)
            for item in (entry.get("results") or []) if s.shard.runs_once_per_model else []:
                key = (item.get("stage"), item.get("runner")) if isinstance(item, dict) else None
                if key is None or key in judged:
                    continue
                try:
                    m.results.append(StageResult.from_dict(item))
                except (TypeError, ValueError) as exc:
                    report.error = f"{s.path}: a result of {m.arch} is malformed ({exc})"
                    return report
                judged.add(key)
    report.runners = {}
    for s in shards:
        for name, info in (s.index.get("runners") or {}).items():
            report.runners.setdefault(name, info)
    one_group = next(iter(groups.values()))
    report.cases_checked = sum(int(s.index.get("cases_checked") or 0) for s in one_group)
    report.wall_s = max(float(s.report.get("wall_s") or 0.0) for s in shards)  # the shards ran side by side
    report.config = {"merged": [str(s.path) for s in shards], "shards": len(one_group),
                     "runtimes": sorted({r for s in shards for r in s.runtimes}),
                     **{k: first.index["config"].get(k) for k in SHARED_CONFIG},
                     "shard_wall_s": {str(s.path): s.report.get("wall_s") for s in shards}}
    return report
