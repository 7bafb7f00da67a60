"""The offline out-of-distribution set (ser_export.data.ood)."""
import numpy as np

from ser_export import contract
from ser_export.data.ood import NON_SPEECH, SPEECH_LIKE, ood_clips


def test_every_family_with_its_count_at_a_natural_level():
    clips = ood_clips(per_family=2, seed=3)
    assert [c.family for c in clips] == [f for f in NON_SPEECH + SPEECH_LIKE for _ in range(2)]
    for c in clips:
        assert c.waveform.shape == (contract.N_SAMPLES,) and c.waveform.dtype == np.float32
        assert np.isfinite(c.waveform).all()
        level_db = 20 * np.log10(np.sqrt(np.mean(c.waveform.astype(np.float64) ** 2)))
        assert -50.5 < level_db < -9.5, (c.family, level_db)
        assert c.speech_like == (c.family in SPEECH_LIKE)


def test_the_set_is_deterministic_in_its_seed():
    a, b, c = ood_clips(1, seed=0), ood_clips(1, seed=0), ood_clips(1, seed=1)
    assert all(np.array_equal(x.waveform, y.waveform) for x, y in zip(a, b))
    assert not all(np.array_equal(x.waveform, y.waveform) for x, y in zip(a, c))
