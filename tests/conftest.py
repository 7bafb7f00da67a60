"""Shared fixtures and hypothesis profiles.

Hypothesis prints the shrunk counterexample of a failing property; the
``ci`` profile (default) bounds the example count so the suite stays fast, and
``thorough`` (``HYPOTHESIS_PROFILE=thorough``) runs many more.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def write_wav(path, y, sr=22050, subtype="FLOAT"):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(y), sr, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def quick_release(tmp_path_factory):
    """A release made by ``python -m ser_export build --quick`` (both models)."""
    from tests.e2e import run_cli

    root = tmp_path_factory.mktemp("quick")
    out, cache = root / "release", root / "cache"
    proc = run_cli("build", "--quick", "--out", str(out), "--cache-dir", str(cache), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "cache": cache, "stderr": proc.stderr, "stdout": proc.stdout}


def pytest_collection_modifyitems(config, items):
    """Browser tests need Chromium: skipped without it, unless SER_EXPORT_REQUIRE_BROWSER=1 (CI)."""
    if os.environ.get("SER_EXPORT_REQUIRE_BROWSER") == "1":
        return
    from parity.runners.base import RunnerError
    from parity.runners.node import find_chromium

    try:
        find_chromium()
        return
    except RunnerError as exc:
        reason = str(exc)
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
