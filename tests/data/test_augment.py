import numpy as np
import pytest

from ser_export.data import augment


@pytest.fixture
def clip(rng):
    return (np.sin(np.arange(46305) * 0.05) * 0.5).astype(np.float32)


def test_each_augmentation_changes_the_clip_reproducibly(clip):
    for name, func in augment.AUGMENTATIONS.items():
        a = func(clip, np.random.default_rng(3))
        b = func(clip, np.random.default_rng(3))
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == np.float32 and np.all(np.isfinite(a)), name


def test_noise_is_bounded_by_one_percent_of_peak(clip):
    out = augment.add_noise(clip, np.random.default_rng(0))
    assert np.std(out - clip) <= 0.01 * np.abs(clip).max() * 1.01


def test_circular_shift_is_a_multiple_of_0_2_s(clip):
    out = augment.circular_shift(clip, np.random.default_rng(5))
    shifts = [k for k in range(-5, 6) if np.array_equal(np.roll(clip, k * 4410), out)]
    assert shifts


def test_random_augmentation_applies_at_least_one(clip):
    _, names = augment.random_augmentation(clip, np.random.default_rng(0), probability=0.0)
    assert len(names) == 1
    with pytest.raises(ValueError, match="unknown augmentations"):
        augment.random_augmentation(clip, np.random.default_rng(0), names=("reverb",))
