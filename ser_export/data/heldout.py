"""The held-out test clips of a release, regenerated from what its manifest records.

A release trained on the synthetic corpus records the corpus (speakers, takes, seed,
synthesis version) and the split seed; the test speakers' clips, prepared exactly as the
build prepared them (no augmentation), can be made again anywhere.  A release trained on
corpora on disk cannot be (its data is not in the release): :func:`synthetic_heldout`
says why.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..audio import prepare_clip
from . import synthetic
from .dataset import synthetic_utterances
from .split import split_speakers


def synthetic_heldout(training_data: Mapping, labels: Sequence[str], seed: int,
                      split: str = "test") -> tuple[np.ndarray, np.ndarray] | str:
    """``(waveforms (n, N) float32, targets (n,) int64)`` of the release's ``split`` speakers, or a
    sentence saying why they cannot be regenerated.

    Parameters
    ----------
    training_data : mapping
        The manifest's ``training_data`` (``synthetic`` and ``spec``).
    labels : sequence of str
        The release's labels, in logit order.
    seed : int
        The build's seed (``build.seed``: it seeds the split and every clip).
    """
    spec = training_data.get("spec") if training_data.get("synthetic") else None
    if not isinstance(spec, Mapping):
        return "the release was trained on corpora on disk, which it does not ship"
    if spec.get("synth_version") != synthetic.SYNTH_VERSION:
        return (f"the release's synthesis v{spec.get('synth_version')} is not this ser_export's "
                f"v{synthetic.SYNTH_VERSION}")
    try:
        corpus = synthetic.SyntheticCorpusSpec(n_speakers=int(spec["n_speakers"]), takes=int(spec["takes"]),
                                               seed=int(spec["seed"]), labels=tuple(labels))
    except (KeyError, TypeError, ValueError) as exc:
        return f"training_data.spec cannot be read ({exc})"
    utterances, speakers = synthetic_utterances(corpus)
    assignment = split_speakers(utterances, seed=seed)
    names = list(synthetic.PROFILES)
    ids = list(speakers)
    x, y = [], []
    for u in sorted(utterances, key=lambda u: (u.corpus, u.speaker, u.label, u.source)):
        if assignment[u.speaker_key] != split:
            continue
        take = int(u.source.rsplit("/", 1)[-1])
        rng = synthetic.clip_rng(seed, ids.index(u.speaker), names.index(u.label), take)
        x.append(prepare_clip(synthetic.synthesize(speakers[u.speaker], u.label, rng), rng=None))
        y.append(list(labels).index(u.label))
    if not x:
        return f"the release has no {split} speakers"
    return np.stack(x).astype(np.float32), np.asarray(y, np.int64)
