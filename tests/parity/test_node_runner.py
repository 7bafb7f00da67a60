"""The Node harness runner's process handling (parity/runners/node.py): a harness that hangs is killed with
everything it started, so nothing it left running keeps the pipes open (reading its stderr waited for such a
child: `verify` of a release whose harness hangs sat 600 s in a pipe read once a second request came)."""
import os
import stat
import time
from pathlib import Path

import pytest

from parity.runners import RunnerError
from parity.runners.node import OrtWebWasmRunner


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_hanging_harness_is_killed_with_the_children_it_started(tmp_path, monkeypatch):
    pidfile = tmp_path / "child.pid"
    node = tmp_path / "node"
    node.write_text("#!/bin/sh\nif [ \"$1\" = \"--version\" ]; then echo v20.0.0; exit 0; fi\n"
                    f"sleep 600 &\necho $! > {pidfile}\nwait\n")
    node.chmod(node.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("SER_EXPORT_NODE", str(node))
    runner = OrtWebWasmRunner(timeout_s=2)
    try:
        with pytest.raises(RunnerError, match="did not answer 'load' within 2 s"):
            runner.activate(Path("model.onnx"), ["output"])
        child = int(pidfile.read_text())
        deadline = time.monotonic() + 20  # SIGKILL reaches a busy machine's process a moment later; a child left
        while _alive(child) and time.monotonic() < deadline:  # running by a plain kill lives its 600 s
            time.sleep(0.05)
        assert not _alive(child), "the harness's child outlived the kill"
        with pytest.raises(RunnerError, match="the harness exited"):  # the next request: an answer, not a wait
            runner.activate(Path("model.onnx"), ["output"])
    finally:
        runner.deactivate()
