"""The feature cache: a hit gives the same features; anything that changes them misses."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from ser_export.contract import FrontEnd
from ser_export.data import dataset as ds
from ser_export.data.synthetic import SyntheticCorpusSpec
from ser_export.frontend import build_frontend

LABELS = ("neutral", "angry")


def _corpus():
    utterances, speakers = ds.synthetic_utterances(SyntheticCorpusSpec(n_speakers=3, takes=1, labels=LABELS))
    ids = sorted(speakers)
    assignment = {f"synthetic:{s}": split for s, split in zip(ids, ("train", "val", "test"))}
    return utterances, speakers, assignment


def _build(cache_dir, frontend=FrontEnd()):
    utterances, speakers, assignment = _corpus()
    assert {u.speaker_key for u in utterances} == set(assignment)
    return ds.build_dataset(utterances, assignment, LABELS, frontend, speakers=speakers,
                            augment_config=ds.AugmentConfig(copies=0), cache_dir=cache_dir, progress=False,
                            n_check=2)


def _cached(cache_dir):
    return sorted(cache_dir.glob("features-*.npz"))


def test_cache_hit_gives_identical_features(tmp_path):
    first = _build(tmp_path / "c")
    second = _build(tmp_path / "c")
    assert not first.cache_hit and second.cache_hit
    for split in first.splits:
        np.testing.assert_array_equal(first.splits[split].features, second.splits[split].features)
        np.testing.assert_array_equal(first.splits[split].targets, second.splits[split].targets)
    np.testing.assert_array_equal(first.check_waveforms, second.check_waveforms)
    assert len(_cached(tmp_path / "c")) == 1


def test_a_change_to_pipeline_code_misses_the_cache(tmp_path, monkeypatch):
    _build(tmp_path / "c")
    real = inspect.getsource

    def edited(obj):
        text = real(obj)
        return text + "\n# edited\n" if getattr(obj, "__name__", "") == "ser_export.frontend.fft" else text

    monkeypatch.setattr(inspect, "getsource", edited)
    again = _build(tmp_path / "c")
    assert not again.cache_hit
    assert len(_cached(tmp_path / "c")) == 2


def test_changed_frontend_numbers_miss_the_cache(tmp_path, monkeypatch):
    """Same code and parameters, different arithmetic (another BLAS, another CPU): the probe catches it."""
    fe = build_frontend(FrontEnd())
    before = ds.pipeline_fingerprint(fe)
    real_build = ds.build_frontend

    def perturbed(params):
        module = real_build(params)
        module.register_forward_hook(lambda _m, _inp, out: out + 1e-4)
        return module

    after = ds.pipeline_fingerprint(perturbed(FrontEnd()))
    assert after["source"] == before["source"] and after["probe"] != before["probe"]

    _build(tmp_path / "c")
    monkeypatch.setattr(ds, "build_frontend", perturbed)
    again = _build(tmp_path / "c")
    assert not again.cache_hit


def test_the_other_frontend_implementation_misses_the_cache(tmp_path):
    a = _build(tmp_path / "c", FrontEnd(implementation="fft"))
    b = _build(tmp_path / "c", FrontEnd(implementation="conv2d"))
    assert not a.cache_hit and not b.cache_hit
    assert len(_cached(tmp_path / "c")) == 2
    # Both compute the same log-mel, to the front-ends' tolerance.
    np.testing.assert_allclose(a.splits["train"].features, b.splits["train"].features, atol=0.05)


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    first = _build(tmp_path / "c")
    (path,) = _cached(tmp_path / "c")
    path.write_bytes(b"not an npz file")
    again = _build(tmp_path / "c")
    assert not again.cache_hit
    np.testing.assert_array_equal(first.splits["train"].features, again.splits["train"].features)
    assert ds._load_cache(path, LABELS, {}).cache_hit  # rewritten, readable


@pytest.mark.parametrize("bad", ["label", "speaker"])
def test_unknown_label_or_speaker_is_a_clear_error(bad):
    utterances, speakers, assignment = _corpus()
    if bad == "label":
        labels = ("neutral",)
    else:
        labels = LABELS
        assignment = dict(list(assignment.items())[1:])
    with pytest.raises(ds.DataError, match="label set|no split assignment"):
        ds.build_dataset(utterances, assignment, labels, FrontEnd(), speakers=speakers,
                         augment_config=ds.AugmentConfig(copies=0), cache_dir=None, progress=False)


def test_features_do_not_depend_on_the_number_of_workers(monkeypatch):
    """The pool is skipped for small jobs lists; either way every clip carries its own seed."""
    utterances, speakers, assignment = _corpus()

    def build(workers):
        return ds.build_dataset(utterances, assignment, LABELS, FrontEnd(), speakers=speakers,
                                augment_config=ds.AugmentConfig(copies=1), workers=workers, progress=False)

    serial = build(1)
    monkeypatch.setattr(ds, "MIN_JOBS_PER_WORKER", 1)
    pooled = build(2)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(serial.splits[split].features, pooled.splits[split].features)


def test_a_file_unusable_when_features_are_made_is_skipped_not_fatal(tmp_path):
    """A file that vanished (or broke) after the scan: the feature stage drops it and says why, and a
    cache hit remembers that it did."""
    from ser_export.data.corpora import Utterance
    from tests.conftest import write_wav

    t = np.arange(48000) / 48000
    voiced = write_wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), sr=48000, subtype="PCM_16")
    gone = tmp_path / "gone.wav"
    utts = [Utterance("c", spk, "neutral", str(path)) for spk, path in
            (("s1", voiced), ("s2", voiced), ("s3", voiced), ("s1", gone))]
    assignment = {"c:s1": "train", "c:s2": "val", "c:s3": "test"}
    for cache_hit in (False, True):
        got = ds.build_dataset(utts, assignment, ("neutral",), FrontEnd(), augment_config=ds.AugmentConfig(0),
                               cache_dir=tmp_path / "cache", progress=False)
        assert got.cache_hit == cache_hit
        assert got.skipped == {str(gone): ("missing", "no such file")}
        assert len(got.splits["train"]) == 1
