"""The reusable GitHub Action (action.yml, ``uses: ser-export/ser_export@vX``): every ser-export command it runs
exists with the flags it passes, every input it uses is declared and every declared input is used, the files
it names are in the repository, the reports are uploaded whatever the verdict and the step fails with verify's
exit code.  Its shell steps are run here in bash with the runner's variables set and a stand-in
``ser-export`` on PATH."""
import hashlib
import os
import re
import shlex
import stat
import subprocess

import pytest
import yaml

from parity.config import DEFAULT_RUNTIMES
from parity.runners import RUNNERS
from ser_export import __version__ as TOOL_VERSION
from ser_export.cli import COMMANDS, build_parser
from tests.e2e import ROOT

ACTION = ROOT / "action.yml"
TEXT = ACTION.read_text()
SPEC = yaml.safe_load(TEXT)
STEPS = SPEC["runs"]["steps"]
INPUTS = SPEC["inputs"]
#: What a workflow of another repository passes (the rest are the action's defaults).
GIVEN = {"model": "models/kws.onnx", "contract": "models/kws.toml"}
#: The runner's variables the steps read (paths on a GitHub-hosted runner).
RUNNER = {"RUNNER_TEMP": "/home/runner/work/_temp", "GITHUB_ACTION_PATH": str(ROOT), "GITHUB_JOB": "verify",
          "RUNNER_OS": "Linux"}


def _step(step_id: str) -> dict:
    (step,) = [s for s in STEPS if s.get("id") == step_id]
    return step


def _input(name: str) -> str:
    return GIVEN.get(name, INPUTS[name].get("default", ""))


def _expressions(text: str, outputs: dict) -> str:
    """``${{ inputs.X }}``, ``${{ steps.S.outputs.Y }}`` and ``${{ runner.temp }}`` as GitHub substitutes them."""
    def one(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("inputs."):
            return _input(expr.split(".", 1)[1])
        if expr.startswith("steps."):
            _, sid, _, key = expr.split(".")
            return outputs[sid][key]
        if expr == "runner.temp":
            return RUNNER["RUNNER_TEMP"]
        if expr == "runner.os":
            return RUNNER["RUNNER_OS"]
        raise AssertionError(f"an expression the test does not know: {expr}")
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def _run_step(step: dict, outputs: dict, tmp_path, path_dir=None) -> tuple[subprocess.CompletedProcess, dict, str]:
    """Run one ``run:`` step as the runner does (``bash --noprofile --norc -eo pipefail``, its ``env:``, the
    runner's variables); its return, its ``$GITHUB_OUTPUT`` entries and what it appended to ``$GITHUB_ENV``."""
    out, env_file = tmp_path / f"{step.get('id', 'step')}.out", tmp_path / f"{step.get('id', 'step')}.env"
    out.write_text("")
    env_file.write_text("")
    env = {**os.environ, **RUNNER, "RUNNER_TEMP": str(tmp_path / "temp"), "GITHUB_OUTPUT": str(out),
           "GITHUB_ENV": str(env_file)}
    env |= {k: _expressions(str(v), outputs) for k, v in (step.get("env") or {}).items()}
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env['PATH']}"
    script = tmp_path / "step.sh"
    script.write_text(_expressions(step["run"], outputs))
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    entries = dict(line.split("=", 1) for line in out.read_text().splitlines() if line)
    return proc, entries, env_file.read_text()


def _commands(text: str, env: dict) -> list[list[str]]:
    """The ``ser-export ...`` command lines of a step's script, its ``$VARS`` expanded from ``env``."""
    out = []
    for line in text.splitlines():
        argv = shlex.split(line)
        if argv[:1] == ["ser-export"]:
            out.append([re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], a) for a in argv[1:]])
    return out


def test_the_action_is_composite_with_bash_steps_and_every_input_declared_and_used():
    assert SPEC["runs"]["using"] == "composite"
    runs = [s for s in STEPS if "run" in s]
    assert runs and all(s.get("shell") == "bash" for s in runs), [s.get("name") for s in runs]
    used = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", TEXT))
    assert set(INPUTS) == {"model", "contract", "runtimes", "examples", "tool-version"}
    assert used == set(INPUTS), (used, set(INPUTS))
    assert all(INPUTS[k].get("required") for k in ("model", "contract"))
    assert all(v.get("description") for v in INPUTS.values())
    # the defaults are verify's own for a single model, and real runtimes
    assert _input("runtimes") == ",".join(r for r in DEFAULT_RUNTIMES if r != "pytorch")
    assert all(r in RUNNERS for r in _input("runtimes").split(","))
    assert int(_input("examples")) >= 1


def _resolved_outputs(tmp_path) -> dict:
    proc, prepared, env_added = _run_step(_step("prepare"), {}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return {"prepare": prepared, "verify": {"exit-code": "0"}, "_env": env_added}


def test_the_prepare_step_names_this_release_its_lock_file_and_the_cached_js_folder(tmp_path):
    outputs = _resolved_outputs(tmp_path)
    prepared = outputs["prepare"]
    assert prepared["version"] == TOOL_VERSION  # tool-version empty: this action's own version
    lock = hashlib.sha256((ROOT / "js_harness" / "package-lock.json").read_bytes()).hexdigest()
    assert prepared["lock"] == lock[:16]
    assert prepared["artifact"] == "ser-export-verify-verify-kws.onnx"
    # setup-js installs into SER_EXPORT_JS_DIR, the folder actions/cache keeps, under a key of version and lock
    (js_dir,) = [line.split("=", 1)[1] for line in outputs["_env"].splitlines() if line.startswith("SER_EXPORT_JS_DIR=")]
    (cache,) = [s for s in STEPS if s.get("uses", "").startswith("actions/cache@")]
    temp = str(tmp_path / "temp")
    assert _expressions(cache["with"]["path"], outputs).replace(RUNNER["RUNNER_TEMP"], temp) == js_dir
    key = _expressions(cache["with"]["key"], outputs)
    assert TOOL_VERSION in key and lock[:16] in key
    assert prepared["report"].endswith(".json") and prepared["junit"].endswith(".xml")


def test_a_tool_version_given_is_the_one_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(GIVEN, "tool-version", "9.9.9")
    proc, prepared, _ = _run_step(_step("prepare"), {}, tmp_path)
    assert proc.returncode == 0 and prepared["version"] == "9.9.9", proc.stderr


def test_every_command_parses_with_our_cli_in_order_and_installs_the_pinned_toolchain(tmp_path):
    outputs = _resolved_outputs(tmp_path)
    parser = build_parser()
    seen = []
    for step in STEPS:
        if "run" not in step:
            continue
        env = dict(RUNNER, **{k: _expressions(str(v), outputs) for k, v in (step.get("env") or {}).items()})
        text = _expressions(step["run"], outputs)
        assert "${{" not in text
        for argv in _commands(text, env):
            args = parser.parse_args(argv)  # exits (SystemExit) on an unknown command or flag
            assert args.command in COMMANDS
            seen.append((args.command, args))
    assert [c for c, _ in seen] == ["setup-js", "verify"]
    verify = seen[1][1]
    assert str(verify.release_dir) == GIVEN["model"] and str(verify.contract) == GIVEN["contract"]
    assert verify.runtimes == [_input("runtimes")] and verify.examples == int(_input("examples"))
    assert str(verify.report) == outputs["prepare"]["report"] and str(verify.junit) == outputs["prepare"]["junit"]
    # pip installs this release of the tool with the exact constraints shipped beside the action
    (install,) = [s["run"] for s in STEPS if "pip install" in s.get("run", "")]
    argv = shlex.split(install)
    constraints = argv[argv.index("-c") + 1]
    assert constraints == "$GITHUB_ACTION_PATH/constraints/release.txt"
    assert (ROOT / "constraints" / "release.txt").is_file()
    assert "ser-export==$SER_EXPORT_TOOL_VERSION" in argv
    names = [s.get("name") for s in STEPS]
    cache = next(i for i, s in enumerate(STEPS) if s.get("uses", "").startswith("actions/cache@"))
    setup = next(i for i, s in enumerate(STEPS) if "setup-js" in s.get("run", ""))
    assert names.index(_step("prepare")["name"]) < cache < setup < names.index(_step("verify")["name"])


def test_the_reports_are_uploaded_always_and_are_what_verify_writes(tmp_path):
    outputs = _resolved_outputs(tmp_path)
    uploads = [s for s in STEPS if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and all(s.get("if") == "always()" for s in uploads)
    paths = {p for s in uploads for p in _expressions(s["with"]["path"], outputs).split()}
    assert paths == {outputs["prepare"]["report"], outputs["prepare"]["junit"]}
    verify = STEPS.index(_step("verify"))
    assert all(STEPS.index(s) > verify for s in uploads)


@pytest.mark.parametrize("code", [0, 1, 2])
def test_the_verify_step_fails_with_verifys_exit_code(tmp_path, code):
    """The step's script, run with a stand-in ``ser-export`` that records its arguments and exits ``code``."""
    fake = tmp_path / "bin"
    fake.mkdir()
    tool = fake / "ser-export"
    tool.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv"\nexit {code}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    outputs = _resolved_outputs(tmp_path)
    proc, entries, _ = _run_step(_step("verify"), outputs, tmp_path, path_dir=fake)
    assert proc.returncode == code and entries == {"exit-code": str(code)}, (proc.stderr, entries)
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:2] == ["verify", GIVEN["model"]] and argv[argv.index("--report") + 1] == outputs["prepare"]["report"]
    assert SPEC["outputs"]["exit-code"]["value"] == "${{ steps.verify.outputs.exit-code }}"


def test_the_documented_workflow_uses_this_action_with_its_inputs():
    """docs/verify-your-model.md's five lines: this action at this version, the required inputs given, no other."""
    page = (ROOT / "docs" / "verify-your-model.md").read_text()
    section = page[page.index("## In another repository's CI"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert len(block.strip().splitlines()) == 5
    (step,) = yaml.safe_load(block)
    assert step["uses"] == f"ser-export/ser_export@v{TOOL_VERSION}"
    given = set(step["with"])
    assert given <= set(INPUTS) and {k for k, v in INPUTS.items() if v.get("required")} <= given, given
    readme = (ROOT / "README.md").read_text()
    assert f"uses: ser-export/ser_export@v{TOOL_VERSION}" in readme
