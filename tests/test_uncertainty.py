"""The build's post-processing evaluation helpers (ser_export.uncertainty)."""
import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.uncertainty import ece_noise_floor
from tests.e2e import run_cli


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10_000))
def test_the_ece_noise_floor_shrinks_with_more_windows(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(7) * 0.7, 2000)
    small, large = ece_noise_floor(probs[:200], draws=60, seed=seed), ece_noise_floor(probs, draws=60, seed=seed)
    assert small["n"] == 200 and large["n"] == 2000
    assert large["median"] < small["median"], (small, large)
    assert 0 < large["median"] <= large["p90"]


def test_calibration_command_measures_new_takes_of_the_held_out_speakers(quick_release):
    proc = run_cli("calibration", str(quick_release["out"]), "--extra-takes", "1", "--draws", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    manifest = json.loads((quick_release["out"] / "manifest.json").read_text())
    n_test = len(manifest["training_data"]["corpora"]["synthetic"]["speakers"]["test"]) * len(manifest["labels"])
    assert set(result) == {"alexnet", "resnet18"}
    for arch, r in result.items():
        assert r["n"] == n_test and r["temperature"] == manifest["models"][arch]["postprocessing"]["temperature"]
        assert 0 <= r["ece_after"] <= 1 and r["noise_floor_here"]["draws"] == 10
