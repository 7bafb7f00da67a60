import pytest
from hypothesis import given, strategies as st

from ser_export.data.corpora import Utterance
from ser_export.data.split import check_split, split_speakers
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
        with pytest.raises(DataError, match="cannot split by speaker: .*at least 3 speakers") as info:
            split_speakers(utts, seed=seed)
        assert "\n" not in str(info.value)
        for corpus, n in sizes.items():  # every corpus is named with its speaker count
            assert f"{corpus}: {n} speaker" in str(info.value)
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


def test_tess_alone_names_its_two_speakers_and_their_clips():
    utts = [Utterance(corpus="tess", speaker=spk, label=label, source=f"{spk}_{label}_{k}", sex="female")
            for spk in ("OAF", "YAF") for label in ("angry", "sad") for k in range(3)]
    with pytest.raises(DataError) as info:
        split_speakers(utts)
    assert str(info.value) == (
        "cannot split by speaker: tess: 2 speakers (OAF 6 clips, YAF 6 clips); holding out validation and test "
        "speakers needs a corpus with at least 3 speakers (add speakers, or another corpus with --data)")


LABELS = ("neutral", "happy", "sad", "angry")


@given(st.lists(st.sets(st.sampled_from(LABELS), min_size=1), min_size=3, max_size=12), st.integers(0, 1000))
def test_check_split_refuses_exactly_the_splits_missing_an_emotion(speaker_labels, seed):
    """Speakers with random subsets of emotions: the split passes if and only if every emotion in the
    data has clips in training, validation and test; the error names a split and a missing emotion."""
    utts = [Utterance(corpus="c", speaker=f"s{i}", label=label, source=f"{i}/{label}", sex=None)
            for i, labels in enumerate(speaker_labels) for label in sorted(labels)]
    assignment = split_speakers(utts, seed=seed)
    present = set().union(*speaker_labels)
    per_split = {s: set() for s in ("train", "val", "test")}
    for u in utts:
        per_split[assignment[u.speaker_key]].add(u.label)
    bad = [s for s in ("train", "val", "test") if per_split[s] != present]
    if not bad:
        assert set(check_split(utts, assignment, LABELS)) == set(LABELS) - present
        return
    with pytest.raises(DataError, match="cannot split by speaker: the (training|validation|test) speakers") as info:
        check_split(utts, assignment, LABELS)
    message = str(info.value)
    assert "\n" not in message
    name = {"train": "training", "val": "validation", "test": "test"}[bad[0]]
    assert f"the {name} speakers" in message
    missing = sorted(present - per_split[bad[0]], key=LABELS.index)
    assert f"have no clips of {', '.join(missing)} " in message


def test_labels_without_any_clip_are_reported_not_refused():
    """EMO-DB has no surprise: a build may go on, and learns which labels it has no data for."""
    utts = [Utterance(corpus="emodb", speaker=f"{i:02d}", label=label, source=f"{i}/{label}", sex=None)
            for i in range(5) for label in ("neutral", "happy", "sad")]
    assignment = split_speakers(utts)
    assert check_split(utts, assignment, LABELS) == ("angry",)
