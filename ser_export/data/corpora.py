"""Loaders for the four corpora of the original project, by their file-name conventions.

Each parser maps one file name to ``(speaker, emotion)`` in the corpus's own
vocabulary and then to a label of the chosen label set (or ``None`` when the
emotion has no label there, e.g. EMO-DB has no surprise and JL-corpus's
secondary emotions other than anxious/excited are skipped).

Conventions (see the corpora's documentation):

- RAVDESS: ``Actor_XX/03-01-EE-II-SS-RR-AA.wav``; modality 03 (audio only), vocal
  channel 01 (speech); EE: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry,
  06 fearful, 07 disgust, 08 surprised; AA: actor (odd male, even female).
- EMO-DB: ``03a01Fa.wav``; characters 1-2 speaker, 3-5 text, 6 emotion
  (W anger, L boredom, E disgust, A fear, F happiness, T sadness, N neutral), 7 version.
- TESS: ``OAF_back_angry.wav``; speaker (OAF, YAF), word, emotion (angry, disgust,
  fear, happy, neutral, ps = pleasant surprise, sad).
- JL-corpus: ``female1_angry_1a_1.wav``; speaker, emotion (angry, sad, neutral,
  happy, excited, and secondary anxious, apologetic, assertive, concerned, encouraging).
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ..errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled clip: where it comes from, who speaks and which label it has.

    ``source`` is a file path for real corpora and a synthetic clip key
    (``speaker_index/label_index/take``) for the synthetic corpus.
    """

    corpus: str
    speaker: str
    label: str
    source: str
    sex: str | None = None

    @property
    def speaker_key(self) -> str:
        """Speaker id unique across corpora (``corpus:speaker``)."""
        return f"{self.corpus}:{self.speaker}"


@dataclasses.dataclass(frozen=True)
class Parsed:
    speaker: str
    emotion: str       # the corpus's own emotion name, normalised to our vocabulary
    sex: str | None = None


# ---------------------------------------------------------------- parsers ----
_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                     "06": "fearful", "07": "disgusted", "08": "surprised"}


def parse_ravdess(path: Path) -> Parsed | None:
    """``03-01-EE-II-SS-RR-AA``: audio-only speech files; ``None`` for song/video files."""
    m = _RAVDESS.match(path.stem)
    if not m:
        raise DataError("not a RAVDESS name (expected 03-01-EE-II-SS-RR-AA.wav)")
    modality, channel, emotion, _intensity, _statement, _rep, actor = m.groups()
    if modality != "03" or channel != "01":
        return None  # video or song: not used
    if emotion not in _RAVDESS_EMOTIONS:
        raise DataError(f"unknown RAVDESS emotion code {emotion}")
    if path.parent.name.startswith("Actor_") and path.parent.name != f"Actor_{actor}":
        raise DataError(f"actor {actor} in the name but the folder is {path.parent.name}")
    return Parsed(speaker=actor, emotion=_RAVDESS_EMOTIONS[emotion],
                  sex="male" if int(actor) % 2 else "female")


_EMODB = re.compile(r"^(\d\d)([abc]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgusted", "A": "fearful", "F": "happy",
                   "T": "sad", "N": "neutral"}
_EMODB_SEX = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
              "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}


def parse_emodb(path: Path) -> Parsed | None:
    """``03a01Fa``: speaker 03, text a01, emotion F (happiness), version a."""
    m = _EMODB.match(path.stem)
    if not m:
        raise DataError("not an EMO-DB name (expected e.g. 03a01Fa.wav)")
    speaker, _text, letter, _version = m.groups()
    return Parsed(speaker=speaker, emotion=_EMODB_EMOTIONS[letter], sex=_EMODB_SEX.get(speaker))


_TESS_EMOTIONS = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
                  "neutral": "neutral", "ps": "surprised", "pleasant_surprise": "surprised",
                  "pleasant_surprised": "surprised", "sad": "sad"}


def parse_tess(path: Path) -> Parsed | None:
    """``OAF_back_angry``: speaker OAF, word back, emotion angry (``ps``: surprised)."""
    parts = path.stem.split("_")
    if len(parts) < 3 or parts[0].upper() not in ("OAF", "YAF"):
        raise DataError("not a TESS name (expected OAF_word_emotion.wav or YAF_word_emotion.wav)")
    emotion = "_".join(parts[2:]).lower()
    if emotion not in _TESS_EMOTIONS:
        raise DataError(f"unknown TESS emotion {emotion!r}")
    return Parsed(speaker=parts[0].upper(), emotion=_TESS_EMOTIONS[emotion], sex="female")


_JL = re.compile(r"^(female|male)(\d+)_([a-z]+)_(\d+[a-z])_(\d+)$")
_JL_EMOTIONS = {"angry": "angry", "sad": "sad", "neutral": "neutral", "happy": "happy",
                "excited": "surprised", "anxious": "fearful"}
_JL_SKIPPED = {"apologetic", "assertive", "concerned", "encouraging"}


def parse_jl(path: Path) -> Parsed | None:
    """``female1_angry_1a_1``: speaker female1, emotion angry; other secondary emotions skipped."""
    m = _JL.match(path.stem.lower())
    if not m:
        raise DataError("not a JL-corpus name (expected female1_angry_1a_1.wav)")
    sex, number, emotion, _sentence, _take = m.groups()
    if emotion in _JL_SKIPPED:
        return None
    if emotion not in _JL_EMOTIONS:
        raise DataError(f"unknown JL-corpus emotion {emotion!r}")
    return Parsed(speaker=f"{sex}{number}", emotion=_JL_EMOTIONS[emotion], sex=sex)


PARSERS: Mapping[str, Callable[[Path], Parsed | None]] = {
    "ravdess": parse_ravdess,
    "emodb": parse_emodb,
    "tess": parse_tess,
    "jl": parse_jl,
}

#: Corpus emotion -> label, per label set (calm merged into neutral in the 7-set;
#: EMO-DB's boredom counted as neutral, as the original did).
_LABEL_MAPS: Mapping[str, Mapping[str, str]] = {
    "emotions7": {"calm": "neutral", "boredom": "neutral"},
    "ravdess8": {"boredom": "neutral"},
}


def to_label(emotion: str, labels: tuple[str, ...], label_set: str) -> str | None:
    """Our label for a corpus emotion in ``labels``, or ``None`` if it has none there."""
    label = _LABEL_MAPS.get(label_set, {}).get(emotion, emotion)
    return label if label in labels else None


#: Most skipped files listed one by one in a report (the counts by reason are always complete).
MAX_LISTED_SKIPS = 500


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file a corpus scan did not use: where it is, a short ``reason`` and the ``detail``."""

    file: str      # relative to the corpus root
    reason: str    # a category, counted in the report
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ScanReport:
    """What a directory scan found: the files used, and each skipped file with its reason."""

    corpus: str
    root: str
    files: int = 0
    used: int = 0
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)

    def skip(self, file: str, reason: str, detail: str = "") -> None:
        self.skipped.append(SkippedFile(file=file, reason=reason, detail=detail))

    def by_reason(self) -> dict[str, int]:
        """Skipped files counted per reason."""
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict:
        """For the manifest: counts, and up to :data:`MAX_LISTED_SKIPS` skipped files with reasons."""
        return {"root": Path(self.root).name, "files": self.files, "used": self.used,
                "skipped": [item.to_dict() for item in self.skipped[:MAX_LISTED_SKIPS]],
                "skipped_total": len(self.skipped), "skipped_by_reason": self.by_reason()}

    def skipped_text(self) -> str:
        """``"3 silent, 1 truncated"``: the skipped files counted per reason, or ``"none"``."""
        return ", ".join(f"{n} {reason}" for reason, n in self.by_reason().items()) or "none"

    def first_skip_text(self) -> str:
        """The first skipped file with its reason and detail (for error messages), or ``""``."""
        if not self.skipped:
            return ""
        first = self.skipped[0]
        return f"{first.file}: {first.reason}" + (f" ({first.detail})" if first.detail else "")

    def summary(self) -> str:
        """One line: files used and skipped, by reason."""
        return f"{self.used} of {self.files} files used; skipped {self.skipped_text()}"


def _check_audio(path: Path) -> tuple[str, str] | None:
    """``(reason, detail)`` if the file cannot be trained on: unreadable, truncated, NaN/Inf or silent.

    Reads the samples at the file's own rate (no resampling): the cheap checks that
    decide, before the speakers are split, which files a build can use.
    """
    from ..audio import read_audio, rms
    from ..contract import MIN_RMS
    from ..errors import AudioError

    try:
        frames, _sr = read_audio(path)
    except AudioError as exc:
        return exc.reason, exc.problem
    level = rms(frames.mean(axis=1))
    if level < MIN_RMS:
        return "silent", f"RMS {level:.3g} < {MIN_RMS:g}"
    return None


def scan_corpus(corpus: str, root: str | os.PathLike, labels: tuple[str, ...], label_set: str,
                check_audio: bool = True, progress: bool = False) -> tuple[list[Utterance], ScanReport]:
    """All usable utterances under ``root`` (recursively), sorted by path.

    Files whose names break the convention, whose emotion has no label, and (with
    ``check_audio``) files that are unreadable, truncated, hold NaN/Inf samples or
    are silent are skipped and listed in the report with their reason.  Raises
    :class:`DataError` when the corpus is unknown, the directory is missing, or
    nothing usable is found.
    """
    from tqdm import tqdm

    if corpus not in PARSERS:
        raise DataError(f"unknown corpus {corpus!r}; choose one of {sorted(PARSERS)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{corpus}: data directory {root} does not exist or is not a directory")
    parser = PARSERS[corpus]
    report = ScanReport(corpus=corpus, root=str(root))
    utterances = []
    paths = [p for p in sorted(root.rglob("*")) if p.is_file()]
    report.files = len(paths)
    for path in tqdm(paths, desc=f"{corpus}: checking files", unit="file", disable=not progress, leave=False):
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            report.skip(rel, "not .wav/.flac")
            continue
        try:
            parsed = parser(path)
        except DataError as exc:
            report.skip(rel, "name breaks the convention", str(exc))
            continue
        if parsed is None:
            report.skip(rel, "not used by the convention (song, video or skipped emotion)")
            continue
        label = to_label(parsed.emotion, labels, label_set)
        if label is None:
            report.skip(rel, f"emotion {parsed.emotion!r} has no label in {label_set}")
            continue
        problem = _check_audio(path) if check_audio else None
        if problem is not None:
            report.skip(rel, *problem)
            continue
        utterances.append(Utterance(corpus=corpus, speaker=parsed.speaker, label=label,
                                    source=str(path), sex=parsed.sex))
        report.used += 1
    if not utterances:
        found = (f"skipped {report.skipped_text()}; e.g. {report.first_skip_text()}" if report.skipped
                 else "no files found")
        raise DataError(f"{corpus}: no usable audio files under {root} ({found})")
    return utterances, report


def parse_data_args(items: Iterable[str]) -> dict[str, str]:
    """``["ravdess=PATH", ...]`` -> ``{"ravdess": "PATH"}`` with clear errors."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name = name.strip().lower()
        if not sep or not name or not path:
            raise DataError(f"--data expects CORPUS=PATH (e.g. ravdess=/data/ravdess), got {item!r}")
        if name not in PARSERS:
            raise DataError(f"--data: unknown corpus {name!r}; choose one of {sorted(PARSERS)}")
        if name in out:
            raise DataError(f"--data: corpus {name!r} given twice")
        out[name] = path
    return out
