"""``ser-export --version``, ``ser-export doctor`` (ser_export/doctor.py) and the tool's version in every report.

The doctor in a fresh venv from the wheel, with and without Chromium, is in tests/test_wheel.py."""
from __future__ import annotations

import json
import os
import shutil

from ser_export import __version__, doctor
from ser_export.doctor import Diagnosis, Finding
from tests.e2e import run_cli


def test_version_prints_the_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"ser_export {__version__}\n", proc.stdout + proc.stderr


def test_the_exit_code_counts_the_required_runtimes_and_python():
    ok, bad = (lambda name: Finding(name, True, "x")), (lambda name: Finding(name, False, "why"))
    findings = (ok("python"), ok("onnxruntime-python"), bad("chromium-webgpu"))
    assert Diagnosis("1", findings, required=("onnxruntime-python",)).exit_code == 0
    assert Diagnosis("1", findings, required=("onnxruntime-python", "chromium-webgpu")).exit_code == 2
    no_python = Diagnosis("1", (bad("python"), ok("onnxruntime-python")), required=("onnxruntime-python",))
    assert no_python.exit_code == 2 and no_python.failed == ["python"]
    lines = Diagnosis("1", findings, required=("chromium-webgpu",)).lines()
    assert lines[0] == "ser_export 1" and lines[3] == "chromium-webgpu: cannot run: why"
    assert lines[-1].startswith("doctor: chromium-webgpu cannot run here")


def test_a_missing_or_old_requirement_is_named(monkeypatch):
    monkeypatch.setattr(doctor.metadata, "requires", lambda dist: [
        "no-such-package-xyz>=1", "numpy>=999", "no-such-test-tool>=1; extra == \"test\"", "packaging>=1"])
    finding = doctor.python_finding()
    assert not finding.ok and "no-such-package-xyz is not installed" in finding.detail, finding
    assert "requires numpy>=999" in finding.detail and "no-such-test-tool" not in finding.detail, finding


def test_the_installed_requirements_are_met_here():
    finding = doctor.python_finding()
    assert finding.ok, finding.detail


def test_doctor_without_chromium_says_so_in_one_line_and_exits_2(tmp_path):
    """In the clone: Chromium off PATH (node kept) and SER_EXPORT_CHROMIUM unset."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("node", "npm"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = {k: v for k, v in os.environ.items() if k != "SER_EXPORT_CHROMIUM"}
    env["PATH"] = str(bin_dir)
    proc = run_cli("doctor", env=env, timeout=600)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    from parity.runners import RUNNERS

    assert [line.split(":")[0] for line in lines[1:-1]] == ["python", *RUNNERS], lines
    chromium = [line for line in lines if line.startswith("chromium-wasm:")]
    assert chromium[0].startswith("chromium-wasm: cannot run: chromium not found"), chromium
    assert lines[-1].startswith("doctor: chromium-wasm cannot run here"), lines[-1]
    assert proc.returncode == 2 and not proc.stderr.strip(), proc.stderr
    proc = run_cli("doctor", "--runtimes", "onnxruntime-python,onnxruntime-node", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_report_records_the_tool_version(tmp_path):
    from parity.report import GateReport, write_json

    report = GateReport(release_dir="x", config={})
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["tool"] == {"name": "ser_export", "version": __version__}
