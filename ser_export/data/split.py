"""Speaker-independent splits: every speaker's clips go to exactly one split.

Random clip-level splits put the same speaker in training and evaluation and
inflate accuracy; here whole speakers are held out for validation (early
stopping) and test (the reported accuracy).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from .corpora import Utterance

SPLITS = ("train", "val", "test")


def split_speakers(utterances: Iterable[Utterance], val_fraction: float = 0.15,
                   test_fraction: float = 0.15, seed: int = 0) -> dict[str, str]:
    """Assign each speaker (``corpus:speaker``) to ``"train"``, ``"val"`` or ``"test"``.

    Within each corpus, speakers are shuffled with ``seed`` and interleaved by
    sex (when known), then the first ``round(n * test_fraction)`` go to test and
    the next ``round(n * val_fraction)`` to validation (at least one each for a
    corpus of three or more speakers); a corpus of one or two speakers goes to
    training.  The assignment depends only on the set of speakers and the seed.

    Raises :class:`DataError` when no speaker can be held out for validation or test.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
    by_corpus: dict[str, dict[str, str | None]] = defaultdict(dict)
    for u in utterances:
        by_corpus[u.corpus][u.speaker_key] = u.sex
    assignment: dict[str, str] = {}
    for corpus in sorted(by_corpus):
        speakers = by_corpus[corpus]
        digest = hashlib.sha256(f"{seed}:{corpus}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        groups: dict[str, list[str]] = defaultdict(list)
        for key in sorted(speakers):
            groups[speakers[key] or "unknown"].append(key)
        for keys in groups.values():
            rng.shuffle(keys)
        # interleave the sexes so both are represented in the held-out speakers
        order = [k for tier in _zip_longest(*(groups[g] for g in sorted(groups))) for k in tier]
        n = len(order)
        n_test = n_val = 0
        if n >= 3:
            n_test = max(1, int(round(n * test_fraction))) if test_fraction > 0 else 0
            n_val = max(1, int(round(n * val_fraction))) if val_fraction > 0 else 0
        for i, key in enumerate(order):
            assignment[key] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    held = set(assignment.values())
    for needed, fraction in (("val", val_fraction), ("test", test_fraction)):
        if fraction > 0 and needed not in held:
            clips: dict[str, int] = defaultdict(int)
            names: dict[str, str] = {}
            for u in utterances:
                clips[u.speaker_key] += 1
                names[u.speaker_key] = u.speaker
            counts = "; ".join(
                f"{corpus}: {len(keys)} speaker{'s' * (len(keys) != 1)} ("
                + ", ".join(f"{names[key]} {clips[key]} clips" for key in sorted(keys)) + ")"
                for corpus, keys in sorted(by_corpus.items()))
            raise DataError(
                f"cannot split by speaker: {counts}; holding out {SPLIT_NAMES[needed]} and test speakers needs "
                f"a corpus with at least 3 speakers (add speakers, or another corpus with --data)"
            )
    return assignment


#: How the splits are named in messages.
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def check_split(utterances: Sequence[Utterance], assignment: Mapping[str, str],
                labels: Sequence[str]) -> tuple[str, ...]:
    """Refuse a split that cannot train and evaluate every label the data has.

    Every label with clips anywhere must have clips in the training, validation
    and test speakers.  Labels of the label set with no clips at all are allowed
    (EMO-DB has no surprise, JL-corpus no disgust): they are returned so that the
    build can record them.

    Returns
    -------
    tuple of str
        The labels of ``labels`` without any clip.

    Raises
    ------
    DataError
        Naming the split, its speakers, its clips per label and the missing labels.
    """
    counts = {split: {label: 0 for label in labels} for split in SPLITS}
    speakers: dict[str, set[str]] = {split: set() for split in SPLITS}
    for u in utterances:
        split = assignment[u.speaker_key]
        counts[split][u.label] += 1
        speakers[split].add(u.speaker_key)
    present = [label for label in labels if any(counts[split][label] for split in SPLITS)]
    for split in SPLITS:
        missing = [label for label in present if not counts[split][label]]
        if missing:
            clips = ", ".join(f"{label} {counts[split][label]}" for label in present)
            raise DataError(
                f"cannot split by speaker: the {SPLIT_NAMES[split]} speakers ({', '.join(sorted(speakers[split]))}) "
                f"have no clips of {', '.join(missing)} (their clips: {clips}); every emotion in the data needs "
                f"clips from training, validation and test speakers: add speakers who have them"
            )
    return tuple(label for label in labels if label not in present)


def _zip_longest(*lists: list[str]) -> list[list[str]]:
    longest = max((len(x) for x in lists), default=0)
    return [[x[i] for x in lists if i < len(x)] for i in range(longest)]


def count_by_split(utterances: Iterable[Utterance], assignment: Mapping[str, str]) -> dict[str, int]:
    counts = {s: 0 for s in SPLITS}
    for u in utterances:
        counts[assignment[u.speaker_key]] += 1
    return counts
