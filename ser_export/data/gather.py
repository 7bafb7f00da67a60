"""The build's utterances: the corpora it is given, scanned, or else the synthetic corpus."""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

from . import synthetic
from .corpora import ScanReport, Utterance, scan_corpus
from .dataset import synthetic_utterances


@dataclasses.dataclass
class GatheredData:
    """What :func:`gather_data` found.

    Attributes
    ----------
    utterances : list of Utterance
        Every usable clip.
    speakers : dict ``speaker id -> synthetic.Speaker``
        The synthetic corpus's speakers (empty for real corpora).
    description : dict
        The manifest's ``training_data`` so far (``name``, ``synthetic``, for the synthetic corpus its
        ``spec``); the build adds the augmentation and the corpora's description.
    reports : dict ``corpus -> ScanReport``
        Each corpus's scan (empty for the synthetic corpus).
    """

    utterances: list[Utterance]
    speakers: dict
    description: dict
    reports: dict[str, ScanReport]


def gather_data(corpora: Mapping[str, str], labels: tuple[str, ...], label_set: str,
                spec: synthetic.SyntheticCorpusSpec, progress: bool = True,
                log: Callable[[str], None] = lambda _line: None) -> GatheredData:
    """The utterances of ``corpora`` (``name -> path``, scanned for ``labels`` of ``label_set``; one summary
    line each to ``log``) or, when none is given, of the synthetic corpus ``spec`` (its labels and seed the
    build's)."""
    if not corpora:
        utterances, speakers = synthetic_utterances(spec)
        desc = {"name": f"ser_export synthetic emotional speech (synthesis v{synthetic.SYNTH_VERSION}, "
                        f"{spec.n_speakers} speakers x {len(labels)} emotions x {spec.takes} takes)",
                "synthetic": True, "spec": {"n_speakers": spec.n_speakers, "takes": spec.takes,
                                            "seed": spec.seed, "synth_version": synthetic.SYNTH_VERSION}}
        return GatheredData(utterances, speakers, desc, {})
    utterances = []
    reports = {}
    for corpus, path in sorted(corpora.items()):
        found, report = scan_corpus(corpus, path, labels, label_set, progress=progress)
        utterances += found
        reports[corpus] = report
        log(f"{corpus}: {report.summary()}")
    return GatheredData(utterances, {}, {"name": " + ".join(sorted(corpora)), "synthetic": False}, reports)
