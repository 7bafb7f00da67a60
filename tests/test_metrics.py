"""Calibration error and AUROC (ser_export.metrics)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.metrics import auroc, expected_calibration_error


def test_ece_of_a_hand_example():
    # two clips at confidence 0.9 (one right), two at 0.6 (both right): |0.5-0.9|*2/4 + |1-0.6|*2/4
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    res = expected_calibration_error(probs, np.array([0, 1, 0, 0]), n_bins=15)
    assert abs(res["ece"] - 0.4) < 1e-9
    assert sum(b[2] for b in res["bins"]) == 4 and len(res["bins"]) == 15


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_ece_is_small_when_confidence_is_the_hit_rate(seed):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 1.0, 20000)
    correct = rng.random(conf.size) < conf
    probs = np.stack([conf, 1 - conf], axis=1)
    targets = np.where(correct, 0, 1)
    assert expected_calibration_error(probs, targets)["ece"] < 0.02


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30), st.lists(st.floats(-5, 5), min_size=1, max_size=30))
def test_auroc_is_the_share_of_pairs_ranked_right(neg, pos):
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p in pos for n in neg]
    assert abs(auroc(np.array(neg), np.array(pos)) - np.mean(pairs)) < 1e-9
