"""Helpers for end-to-end tests that run the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 900, cwd: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(env if env is not None else os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "ser_export", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, env=env)
