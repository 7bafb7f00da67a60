"""The synthetic corpus: deterministic, well formed, and emotions differ in prosody."""
import librosa
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ser_export.data import synthetic
from ser_export.data.synthetic import PROFILES, clip_rng, make_speakers, synthesize

SPEAKERS = make_speakers(4, seed=0)


@settings(max_examples=10)
@given(st.integers(0, 3), st.sampled_from(sorted(PROFILES)), st.integers(0, 10_000))
def test_clips_are_finite_deterministic_and_audible(spk, emotion, take):
    a = synthesize(SPEAKERS[spk], emotion, clip_rng(0, spk, 0, take))
    b = synthesize(SPEAKERS[spk], emotion, clip_rng(0, spk, 0, take))
    assert a.dtype == np.float32 and a.shape == (int(round(synthetic.UTTERANCE_S * 22050)),)
    assert np.all(np.isfinite(a)) and np.sqrt(np.mean(a.astype(np.float64) ** 2)) > 1e-4
    np.testing.assert_array_equal(a, b)


def _median_f0(y):
    f0, voiced, _ = librosa.pyin(y.astype(np.float64), fmin=60, fmax=800, sr=22050, frame_length=2048)
    return float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan")


@pytest.mark.parametrize("spk", [0, 1])
def test_prosody_differs_between_emotions_as_profiled(spk):
    """Anger and fear are higher pitched than sadness for the same speaker (median over takes)."""
    f0 = {e: np.median([_median_f0(synthesize(SPEAKERS[spk], e, clip_rng(1, spk, 0, t))) for t in range(3)])
          for e in ("sad", "angry", "fearful")}
    assert f0["angry"] > 1.2 * f0["sad"] and f0["fearful"] > 1.2 * f0["sad"]


def test_speakers_alternate_sex_and_differ():
    speakers = make_speakers(6, seed=3)
    assert [s.sex for s in speakers] == ["female", "male"] * 3
    assert len({s.speaker_id for s in speakers}) == 6
    assert min(s.f0 for s in speakers if s.sex == "female") > max(s.f0 for s in speakers if s.sex == "male")


def test_unknown_emotion_is_refused():
    with pytest.raises(ValueError, match="no synthetic profile"):
        synthesize(SPEAKERS[0], "bored", clip_rng(0, 0, 0, 0))
