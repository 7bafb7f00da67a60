"""Reports of a gate run: JSON (everything) and JUnit XML (one test case per stage and runner)."""
from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from ser_export import __version__
from ser_export.io import atomic_write_text

from .judge import StageResult, metric

#: Gate exit codes.
PASSED, FAILED, NOT_CHECKED = 0, 1, 2
#: The verdict each exit code stands for (the report's ``verdict``; the CLI prints it in capitals).
VERDICTS = {PASSED: "passed", FAILED: "failed", NOT_CHECKED: "not checked"}


@dataclasses.dataclass
class ModelReport:
    arch: str
    file: str
    sha256_expected: str | None = None
    sha256_actual: str | None = None
    results: list[StageResult] = dataclasses.field(default_factory=list)
    localization: list[dict] = dataclasses.field(default_factory=list)
    counterexamples: list[dict] = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)
    error: str | None = None  # could not be checked
    #: ``"model"``, or ``"file"`` for a release file checked by checksum only (the voice-activity model)
    kind: str = "model"
    #: A streaming model (a version 2 contract, judged by :mod:`parity.stream_judge`): its table is
    #: :func:`stream_table` whatever results it has.
    streaming: bool = False
    #: The raw run (:class:`parity.record.ModelRun`) for ``--save-outputs``; not part of the report.
    run: object | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def checksum_ok(self) -> bool | None:
        """Whether the file is the one released (``None``: it could not be read, see ``error``)."""
        if self.sha256_actual is None and self.error:
            return None
        return self.sha256_expected is None or self.sha256_expected == self.sha256_actual

    @property
    def failures(self) -> list[StageResult]:
        return [r for r in self.results if not r.passed and r.applicable]

    def to_dict(self) -> dict:
        return {"arch": self.arch, "file": self.file, "kind": self.kind,
                "checksum": {"expected": self.sha256_expected, "actual": self.sha256_actual, "ok": self.checksum_ok},
                "passed": self.error is None and bool(self.checksum_ok) and not self.failures,
                "error": self.error, "results": [r.to_dict() for r in self.results],
                "localization": self.localization, "counterexamples": self.counterexamples, "timings": self.timings}


@dataclasses.dataclass
class GateReport:
    release_dir: str
    config: dict
    runners: dict = dataclasses.field(default_factory=dict)
    models: list[ModelReport] = dataclasses.field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0
    cases_checked: int = 0
    #: A shard's record (``verify --shard K/N``): ``index``, ``count``, ``cases`` ``[start, stop)`` and
    #: ``outputs``, the folder beside the report its run is saved in (read by ``merge-reports``).
    shard: dict | None = None
    #: The tool that wrote the report (``ser-export --version``).
    tool: dict = dataclasses.field(default_factory=lambda: {"name": "ser_export", "version": __version__})

    @property
    def exit_code(self) -> int:
        """The gate's verdict, by one rule: a definite mismatch anywhere (a stage failed, a file is not the one
        released) is :data:`FAILED`, whatever else could not be checked; :data:`NOT_CHECKED` only when nothing
        failed and something could not be checked; else :data:`PASSED`.  The report lists both kinds."""
        if self.mismatches():
            return FAILED
        if self.errors():
            return NOT_CHECKED
        return PASSED

    @property
    def verdict(self) -> str:
        """:attr:`exit_code` in words (``passed``, ``failed``, ``not checked``)."""
        return VERDICTS[self.exit_code]

    def mismatches(self) -> list[str]:
        """A line per definite mismatch, naming the file: a checksum that is not the manifest's, a stage's first
        failure (empty unless the exit code is 1)."""
        out = []
        for m in self.models:
            where = Path(self.release_dir) if Path(self.release_dir).name == m.file else Path(self.release_dir) / m.file
            if m.checksum_ok is False:
                out.append(f"{where}: sha256 does not match the manifest's (not the released file)")
            if m.failures:
                out.append(f"{where}: {m.failures[0].message()}")
        return out

    def errors(self) -> list[str]:
        """Why some of the release could not be checked (with a mismatch as well, the exit code is still 1)."""
        return ([self.error] if self.error else []) + [m.error for m in self.models if m.error]

    def verdict_line(self) -> str | None:
        """One line naming the file and why the release is refused or not checked (``None`` when it passed): the
        first mismatch when there is one, else the first reason something could not be checked."""
        lines = self.mismatches() if self.exit_code == FAILED else self.errors()
        if not lines:
            return None
        more = [f"{len(lines) - 1} more"] if len(lines) > 1 else []
        if self.exit_code == FAILED and self.errors():
            more.append(f"{len(self.errors())} not checked")
        return lines[0] + (f" (and {', '.join(more)})" if more else "")

    def summary_lines(self) -> list[str]:
        lines = []
        for m in self.models:
            if m.checksum_ok is False:
                lines.append(f"FAILED: {m.file}: sha256 {m.sha256_actual} does not match the manifest's "
                             f"{m.sha256_expected}")
            if m.error:
                lines.append(f"NOT CHECKED: {m.file}: {m.error}")
            lines += [r.message() for r in m.failures]
            for loc in m.localization:
                where = loc.get("node") or loc.get("module")
                if where:
                    on = f" on chunk {loc['chunk']}" if "chunk" in loc else ""
                    weight = f"; the first weight that differs: {loc['weight']}" if loc.get("weight") else ""
                    lines.append(f"  first divergence ({loc['between']}){on}: {where} "
                                 f"({loc.get('op_type', 'module')}), relative error {loc['relative_error']:.3g}"
                                 + weight)
                elif loc.get("why"):
                    lines.append(f"  first divergence ({loc['between']}): not localised: {loc['why']}")
            for ce in m.counterexamples:
                lines.append(f"  minimal failing input: {ce['case']} (saved to {ce.get('saved', 'n/a')})")
        if self.error:
            lines.append(f"NOT CHECKED: {self.error}")
        return lines

    def to_dict(self) -> dict:
        rate = self.cases_checked / self.wall_s if self.wall_s else 0.0
        return {"tool": self.tool, "release_dir": self.release_dir, "config": self.config, "runners": self.runners,
                "exit_code": self.exit_code,
                "verdict": self.verdict,
                "error": self.error, "wall_s": round(self.wall_s, 2), "cases_checked": self.cases_checked,
                "cases_per_second": round(rate, 2), "models": [m.to_dict() for m in self.models],
                **({"shard": self.shard} if self.shard is not None else {})}


def finite_json(data):
    """``data`` with every non-finite float replaced by ``None``, and where each was.

    Returns ``(clean, non_finite)``: ``non_finite`` maps a JSON path (``models.0.results.3.max_abs``)
    to ``"inf"``, ``"-inf"`` or ``"nan"``.  Strings are never touched, so a message that says
    "NaN" stays as it is and the report always parses as strict JSON.
    """
    flags: dict[str, str] = {}

    def walk(value, path):
        if isinstance(value, float) and not math.isfinite(value):
            flags[".".join(path)] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            return None
        if isinstance(value, dict):
            return {str(k): walk(v, path + [str(k)]) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, path + [str(i)]) for i, v in enumerate(value)]
        if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
            return walk(value.item(), path)
        return value

    return walk(data, []), flags


def write_json(report: GateReport, path: str | Path) -> None:
    """The whole report as strict JSON; non-finite numbers are ``null``, listed under ``non_finite``."""
    clean, flags = finite_json(report.to_dict())
    clean["non_finite"] = flags
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _xml_text(text: str) -> str:
    """Characters XML 1.0 cannot hold (most control characters) as ``\\xNN``."""
    return "".join(c if c in "\t\n\r" or 0x20 <= ord(c) < 0xD800 or 0xE000 <= ord(c) < 0xFFFE
                   or 0x10000 <= ord(c) <= 0x10FFFF else f"\\x{ord(c):02x}" for c in str(text))


def write_junit(report: GateReport, path: str | Path) -> None:
    suites = ET.Element("testsuites", name="ser_export parity", time=f"{report.wall_s:.2f}")
    for m in report.models:
        cases = [] if m.checksum_ok is None else [
            ("checksum", m.checksum_ok, f"sha256 {m.sha256_actual} != manifest {m.sha256_expected}", None)]
        if m.error:
            cases.append(("run", None, m.error, None))
        cases += [(r.name, r.passed, r.message(), r) for r in m.results]
        suite = ET.SubElement(suites, "testsuite", name=m.file, tests=str(len(cases)),
                              failures=str(sum(1 for c in cases if c[1] is False)),
                              errors=str(sum(1 for c in cases if c[1] is None)))
        for name, ok, message, result in cases:
            message = _xml_text(message)
            case = ET.SubElement(suite, "testcase", classname=f"parity.{m.arch}", name=name)
            if result is not None:
                ET.SubElement(case, "system-out").text = message
            if result is not None and not result.applicable:
                ET.SubElement(case, "skipped", message=message[:500])
            elif ok is False:
                ET.SubElement(case, "failure", message=message[:500]).text = message
            elif ok is None:
                ET.SubElement(case, "error", message=message[:500]).text = message
    if report.error:
        suite = ET.SubElement(suites, "testsuite", name="gate", tests="1", failures="0", errors="1")
        case = ET.SubElement(suite, "testcase", classname="parity", name="run")
        ET.SubElement(case, "error", message=_xml_text(report.error)[:500]).text = _xml_text(report.error)
    ET.indent(suites)
    atomic_write_text(path, ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")


def stream_table(m: ModelReport) -> list[str]:
    """A streaming model per runner: max per-chunk error, drift (first and last 10 % of the long stream), decision
    agreement and streams per second, from the judge's results."""
    scores = [r.stage[len("stream["):-1] for r in m.results if r.stage.startswith("stream[")]
    out = [f"{m.file} ({m.arch}, streams):",
           f"  {'runner':<22} {'output':<14} {'max |error|':>11} {'drift first':>11} {'drift last':>10} "
           f"{'decisions':>9} {'streams/s':>9}"]
    fmt = lambda v: "-" if v is None else f"{v:.2e}"  # noqa: E731
    for name in dict.fromkeys(r.runner for r in m.results if r.stage.startswith("stream[")):
        for score in dict.fromkeys(scores):
            agreement = metric(m.results, name, f"decisions[{score}]", "agreement")
            rate = m.timings.get("runners", {}).get(name, {}).get("streams_per_s")
            out.append(f"  {name:<22} {score:<14} {fmt(metric(m.results, name, f'stream[{score}]')):>11} "
                       f"{fmt(metric(m.results, name, f'stream_drift[{score}]', 'first_share')):>11} "
                       f"{fmt(metric(m.results, name, f'stream_drift[{score}]', 'last_share')):>10} "
                       f"{'-' if agreement is None else f'{agreement:.4f}':>9} {'-' if rate is None else rate:>9}")
    return out


def summary_table(report: GateReport) -> list[str]:
    """Per model and runner: log-mel vs librosa, logits/top-1 vs PyTorch, time per case (a streaming model:
    :func:`stream_table`)."""
    lines = []
    for m in report.models:
        if not m.results:
            continue
        if m.streaming:
            lines += stream_table(m)
            continue
        lines.append(f"{m.file} ({m.arch}):")
        runners = sorted({r.runner for r in m.results if r.runner != "metadata" and r.applicable},
                         key=lambda n: list(report.runners).index(n) if n in report.runners else 99)
        lines.append(f"  {'runner':<22} {'logmel vs librosa dB':>21} {'above floor':>12} "
                     f"{'|logit| vs torch':>17} {'top-1':>7} {'ms/case':>8}")
        for name in runners:
            all_bins = metric(m.results, name, "logmel_vs_librosa[all_bins]")
            above = metric(m.results, name, "logmel_vs_librosa[above_floor]")
            logits = metric(m.results, name, "logits")
            agreement = metric(m.results, name, "top1", "agreement")
            agree = "-" if agreement is None else f"{agreement:.4f}"
            ms = m.timings.get("runners", {}).get(name, {}).get("ms_per_case")
            fmt = lambda v: "-" if v is None else f"{v:.2e}"  # noqa: E731
            lines.append(f"  {name:<22} {fmt(all_bins):>21} {fmt(above):>12} {fmt(logits):>17} {agree:>7} "
                         f"{'-' if ms is None else f'{ms:.1f}':>8}")
    for name, info in report.runners.items():
        extra = []
        if info.get("browser"):
            extra.append(info["browser"])
        if name.endswith("webgl") and info.get("webglRenderer"):
            extra.append(f"renderer {info['webglRenderer']}")
        if name.endswith("webgpu") and info.get("webgpuAdapter"):
            a = info["webgpuAdapter"]
            extra.append(f"adapter {a.get('vendor')}/{a.get('architecture')}")
        if info.get("placement"):
            extra.append("placement " + ", ".join(f"{k}: {v}" for k, v in info["placement"]["providers"].items()))
        if info.get("node"):
            extra.append(f"node {info['node']}")
        lines.append(f"  {name}: {info.get('runtime')} {info.get('version')}, backend {info.get('backend')}, "
                     f"threads {info.get('threads')}" + (f"; {'; '.join(extra)}" if extra else ""))
    return lines


def model_figures(m: ModelReport) -> dict:
    """Key figures per runner, for the manifest (from the judge's results, never from their messages)."""
    out: dict = {"passed": not m.failures and m.error is None, "runners": {}}

    def val(name, stage, key="max_abs"):
        v = metric(m.results, name, stage, key)
        return None if v is None else float(f"{v:.4g}")

    for name in dict.fromkeys(r.runner for r in m.results if r.runner != "metadata"):
        out["runners"][name] = {
            "logmel_vs_librosa_max_abs_db": val(name, "logmel_vs_librosa[all_bins]"),
            "logmel_vs_librosa_above_floor_max_abs_db": val(name, "logmel_vs_librosa[above_floor]"),
            "logits_vs_pytorch_max_abs": val(name, "logits"),
            "probabilities_vs_pytorch_max_abs": val(name, "probabilities"),
            "golden_logits_max_abs": val(name, "golden_logits"),
            "top1_agreement": metric(m.results, name, "top1", "agreement"),
            "ms_per_case": m.timings.get("runners", {}).get(name, {}).get("ms_per_case"),
        }
    out["cases"] = max((r.n_cases for r in m.results if r.stage.startswith("logmel_vs_librosa")), default=0)
    return out
