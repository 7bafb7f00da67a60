import pytest
from hypothesis import given, strategies as st

from ser_export.data.corpora import Utterance
from ser_export.data.split import split_speakers
from ser_export.errors import DataError

corpora = st.dictionaries(st.sampled_from(["ravdess", "emodb", "tess", "jl", "synthetic"]),
                          st.integers(1, 30), min_size=1)


def _utterances(sizes):
    return [Utterance(corpus=c, speaker=f"s{i}", label="happy", source=f"{c}/{i}/{k}",
                      sex="female" if i % 2 else "male")
            for c, n in sizes.items() for i in range(n) for k in range(2)]


@given(corpora, st.integers(0, 1000))
def test_every_speaker_in_exactly_one_split(sizes, seed):
    utts = _utterances(sizes)
    if all(n < 3 for n in sizes.values()):
        with pytest.raises(DataError, match="cannot hold out"):
            split_speakers(utts, seed=seed)
        return
    assignment = split_speakers(utts, seed=seed)
    assert set(assignment) == {u.speaker_key for u in utts}
    assert set(assignment.values()) == {"train", "val", "test"}
    # clips follow their speaker: no speaker's clips are split across sets
    assert split_speakers(list(reversed(utts)), seed=seed) == assignment


def test_held_out_speakers_cover_both_sexes():
    utts = _utterances({"synthetic": 12})
    a = split_speakers(utts, seed=0)
    for split in ("val", "test"):
        keys = [k for k, v in a.items() if v == split]
        assert len(keys) == 2
        assert {int(k.split(":s")[1]) % 2 for k in keys} == {0, 1}
