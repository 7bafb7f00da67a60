"""Calibration and the out-of-distribution score (ser_export.postprocess)."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, softmax

from ser_export.errors import SerExportError
from ser_export.postprocess import (Confidence, PostProcessing, band_statistics, calibrated_probabilities, decide,
                                    fit_confidence, fit_ood, fit_temperature, ood_scores, postprocessing_of)
from ser_export.vad import VadParams


def _nll(logits, targets, t):
    return -log_softmax(logits / t, axis=1)[np.arange(targets.size), targets].mean()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.3, 6.0))
def test_the_fitted_temperature_minimises_the_validation_nll(seed, true_t):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (400, 7))
    targets = np.array([rng.choice(7, p=p) for p in softmax(logits / true_t, axis=1)])
    t = fit_temperature(logits, targets)
    best = _nll(logits, targets, t)
    for other in (t * 0.9, t * 1.1):
        assert best <= _nll(logits, targets, other) + 1e-9, f"T={t:.4f} is not the minimum (true {true_t:.3f})"


def test_temperature_one_is_the_plain_softmax_and_rows_sum_to_one():
    logits = np.random.default_rng(0).normal(0, 5, (10, 7))
    np.testing.assert_allclose(calibrated_probabilities(logits, 1.0), softmax(logits, axis=1))
    np.testing.assert_allclose(calibrated_probabilities(logits, 3.7).sum(axis=1), 1.0)
    assert (calibrated_probabilities(logits, 3.7).max(axis=1) < softmax(logits, axis=1).max(axis=1)).all()


def _logmel(rng, n, shift=0.0):
    """Fake log-mel (n, 1, 16 bands, 20 frames): a band profile plus noise."""
    profile = -np.linspace(10, 60, 16)[None, :, None]
    return (profile + shift + rng.normal(0, 3, (n, 16, 20)))[:, None].astype(np.float32)


def test_band_statistics_are_per_band_mean_and_population_std():
    x = np.random.default_rng(0).normal(size=(3, 1, 4, 9))
    f = band_statistics(x)
    np.testing.assert_allclose(f[:, :4], x[:, 0].mean(-1))
    np.testing.assert_allclose(f[:, 4:], x[:, 0].std(-1))


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_the_ood_threshold_flags_its_quantile_of_validation_and_shifted_inputs_score_higher(seed):
    rng = np.random.default_rng(seed)
    params = fit_ood(_logmel(rng, 600), _logmel(rng, 400), k=8, quantile=0.9)
    val = _logmel(rng, 400)
    flagged = float((ood_scores(val, params) > params.threshold).mean())
    assert 0.03 < flagged < 0.2, f"{flagged:.3f} of fresh validation-like inputs flagged (quantile 0.9)"
    shifted = _logmel(rng, 50, shift=8.0)
    assert (ood_scores(shifted, params) > params.threshold).mean() > 0.9


def _pp():
    rng = np.random.default_rng(0)
    ood = fit_ood(_logmel(rng, 200), _logmel(rng, 100), k=4)
    return PostProcessing(temperature=2.0, vad=VadParams(sha256="a" * 64), ood=ood,
                          confidence=Confidence(min_probability=0.2, quantile=0.03))


def test_postprocessing_round_trips_through_the_metadata_json():
    pp = _pp()
    again = postprocessing_of({"postprocessing": pp.to_json()})
    assert again == pp


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(version=9), "version"), (lambda d: d.update(temperature=-1), "positive"),
    (lambda d: d.pop("ood"), "malformed"), (lambda d: d["ood"].update(score="energy"), "score"),
    (lambda d: d.pop("confidence"), "malformed"),
])
def test_malformed_postprocessing_is_one_clear_error(change, message):
    d = json.loads(_pp().to_json())
    change(d)
    with pytest.raises(SerExportError, match=message):
        postprocessing_of({"postprocessing": json.dumps(d)})


def test_decide_orders_no_speech_before_uncertain():
    pp = _pp()
    rng = np.random.default_rng(3)
    logmel = np.concatenate([_logmel(rng, 2), _logmel(rng, 2, shift=30.0)])
    frames = np.array([[0.9] * 10, [0.0] * 10, [0.9] * 10, [0.0] * 10])
    logits = np.zeros((4, 7))
    logits[:, 0] = 5.0  # confident
    d = decide(frames, logits, logmel, pp)
    assert d.verdicts == ["classified", "no_speech", "uncertain", "no_speech"]


def test_low_confidence_is_uncertain_and_its_threshold_is_the_validation_quantile():
    rng = np.random.default_rng(4)
    val_probs = rng.dirichlet(np.ones(7) * 0.5, 1000)
    conf = fit_confidence(val_probs, quantile=0.05)
    assert abs((val_probs.max(axis=1) < conf.min_probability).mean() - 0.05) < 0.005
    pp = _pp()
    logmel = _logmel(rng, 2)
    flat = np.zeros((2, 7))
    flat[1, 0] = 5.0
    d = decide(np.full((2, 10), 0.9), flat, logmel, pp)  # a flat (1/7 < 0.2) and a confident window
    assert d.verdicts == ["uncertain", "classified"]
