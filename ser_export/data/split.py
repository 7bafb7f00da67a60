"""Speaker-independent splits: every speaker's clips go to exactly one split.

Random clip-level splits put the same speaker in training and evaluation and
inflate accuracy; here whole speakers are held out for validation (early
stopping) and test (the reported accuracy).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Iterable, Mapping

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
            raise DataError(
                f"cannot hold out {needed} speakers: every corpus given has fewer than 3 speakers "
                f"({ {c: len(s) for c, s in by_corpus.items()} })"
            )
    return assignment


def _zip_longest(*lists: list[str]) -> list[list[str]]:
    longest = max((len(x) for x in lists), default=0)
    return [[x[i] for x in lists if i < len(x)] for i in range(longest)]


def count_by_split(utterances: Iterable[Utterance], assignment: Mapping[str, str]) -> dict[str, int]:
    counts = {s: 0 for s in SPLITS}
    for u in utterances:
        counts[assignment[u.speaker_key]] += 1
    return counts
