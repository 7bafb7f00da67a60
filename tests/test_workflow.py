"""The GitHub Actions release gate (.github/workflows/release-gate.yml): every ser_export command it runs exists
with the flags it passes, its shards cover one run, and the merge job judges them whatever the shards did."""
import argparse
import fnmatch
import itertools
import re
import shlex

import pytest
import yaml

from parity.config import GateConfig
from parity.runners import RUNNERS
from parity.shard import Shard
from ser_export.cli import COMMANDS, build_parser
from tests.e2e import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release-gate.yml"
SPEC = yaml.safe_load(WORKFLOW.read_text())
JOBS = SPEC["jobs"]


def _combinations(job: dict) -> list[dict]:
    """Every matrix combination of ``job`` (with its ``include`` entries laid over), as GitHub expands it."""
    matrix = dict((job.get("strategy") or {}).get("matrix") or {})
    include = matrix.pop("include", [])
    out = []
    for values in itertools.product(*matrix.values()):
        combo = dict(zip(matrix, values))
        for extra in include:
            if all(combo.get(k) == v for k, v in extra.items() if k in matrix):
                combo.update({k: v for k, v in extra.items() if k not in matrix})
        out.append(combo)
    return out or [{}]


def _commands(job: dict, combo: dict) -> list[list[str]]:
    """The ``python -m ser_export ...`` command lines of ``job``'s steps for one matrix combination."""
    out = []
    for step in job["steps"]:
        run = step.get("run")
        if not run:
            continue
        text = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(combo[m.group(1)]), run)
        assert "${{" not in text, f"unresolved expression in {step.get('name')}: {text}"
        for part in re.split(r"&&|\n", text):
            argv = shlex.split(part)
            if argv[:3] == ["python", "-m", "ser_export"]:
                out.append(argv[3:])
    return out


def test_the_workflow_runs_a_matrix_of_shards_by_runtimes_and_a_merge_that_always_runs():
    assert set(JOBS) == {"gate", "merge"}
    combos = _combinations(JOBS["gate"])
    groups = {c["group"] for c in combos}
    assert groups == {"node", "chromium"} and len(combos) == 3 * len(groups)
    for c in combos:
        assert all(r in RUNNERS for r in c["runtimes"].split(",")), c
    assert any(r.startswith("chromium-") for c in combos for r in c["runtimes"].split(","))
    assert JOBS["merge"]["needs"] == "gate" and JOBS["merge"]["if"] == "always()"
    apt = [s["run"] for s in JOBS["gate"]["steps"] if "apt-get install" in s.get("run", "")]
    assert apt and "chromium" in apt[0]
    assert JOBS["gate"]["strategy"]["fail-fast"] is False


def test_every_command_exists_with_its_flags_and_the_shards_are_one_run(tmp_path, monkeypatch):
    parser = build_parser()
    seen = {}
    for job_name, job in JOBS.items():
        for combo in _combinations(job):
            for argv in _commands(job, combo):
                argv = [a if "*" not in a else str(tmp_path / "shard-x.json") for a in argv]  # the shell's glob
                args = parser.parse_args(argv)  # exits (SystemExit) on an unknown command or flag
                assert args.command in COMMANDS
                seen.setdefault(args.command, []).append((combo, args))
    assert {"setup-js", "check-browser", "verify", "merge-reports"} <= set(seen)
    shards = {}
    for combo, args in seen["verify"]:
        shard = Shard.parse(args.shard)
        assert args.report and args.report.suffix == ".json" and args.report.parent.name == "gate"
        GateConfig(runtimes=tuple(args.runtimes[0].split(",")), examples=args.examples, batch_size=args.batch_size,
                   shard=shard)  # refuses unknown runtimes and a bad case count
        shards.setdefault(combo["runtimes"], []).append(shard)
    for runtimes, got in shards.items():
        n = {s.count for s in got}
        assert len(n) == 1 and sorted(s.index for s in got) == list(range(1, n.pop() + 1)), (runtimes, got)
    (merge_args,) = [a for _, a in seen["merge-reports"]]
    assert merge_args.junit and merge_args.report
    # the merge reads what the shards upload: the reports' folder, with each report's .run beside it
    upload = [s for s in JOBS["gate"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    download = [s for s in JOBS["merge"]["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    assert upload[0]["if"] == "always()" and upload[0]["with"]["path"] == "gate/"
    assert download[0]["with"]["pattern"] == "gate-*" and download[0]["with"]["merge-multiple"] is True
    merge_run = next(s["run"] for s in JOBS["merge"]["steps"] if "merge-reports" in s.get("run", ""))
    (pattern,) = [a for a in shlex.split(merge_run) if "*" in a]  # the shell's glob the merge reads
    reports = [str(args.report) for _, args in seen["verify"]]
    assert reports and all(fnmatch.fnmatch(r, pattern) for r in reports), (pattern, reports)
    assert not fnmatch.fnmatch(str(merge_args.report), pattern)  # the merged report is never read as a shard


def _verify_flags() -> list[str]:
    """The flags the workflow passes to ``verify``, and ``--batch-size`` (its default decides the shards' blocks)."""
    flags = {a.split("=")[0] for job in JOBS.values() for combo in _combinations(job)
             for argv in _commands(job, combo) if argv[:1] == ["verify"] for a in argv if a.startswith("--")}
    return sorted(flags | {"--batch-size"})


@pytest.mark.parametrize("flag", _verify_flags())
def test_the_verify_flags_the_workflow_relies_on_are_documented(flag):
    """Each has its own help in ``verify --help`` (argparse lists a flag without one too) and is explained
    in the docs."""
    verify = build_parser()._subparsers._group_actions[0].choices["verify"]
    action = verify._option_string_actions[flag]
    assert action.help and action.help != argparse.SUPPRESS and len(action.help.split()) >= 3, (flag, action.help)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert any(f"{flag}" in page.read_text() for page in pages), f"{flag} is in no page of the docs"
