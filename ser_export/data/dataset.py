"""Turn utterances into cached log-mel feature sets for training.

Clips are synthesised or loaded, preprocessed as the input contract demands
(RMS-normalise, trim silence at 40 dB, crop/pad to ``contract.N_SAMPLES``,
re-normalise) and, for training speakers, augmented.  Features come from the
model's own front-end (:func:`ser_export.frontend.build_frontend`), so training
sees exactly what the exported graph computes.  The front-end is fixed DSP, so
its output is computed once and cached on disk, keyed by everything it depends on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from .. import contract
from ..audio import load_audio, prepare_clip
from ..contract import FrontEnd
from ..errors import AudioError, DataError, SilentAudioError
from ..frontend import build_frontend
from ..io import atomic_write_bytes, sha256_file
from ..vad import VadParams, VoiceActivity, packaged_vad_path
from . import augment, synthetic
from .corpora import ScanReport, Utterance
from .split import SPLITS

#: Bump when preprocessing or augmentation changes, so caches are not reused.
DATASET_VERSION = 2


@dataclasses.dataclass
class FeatureSet:
    """Features of one split.

    Attributes
    ----------
    features : np.ndarray [shape=(n, 1, n_mels, n_frames), dtype=float32]
        Log-mel in dB.
    targets : np.ndarray [shape=(n,), dtype=int64]
        Label index of each clip.
    speakers : list of str
        ``corpus:speaker`` of each clip.
    augmented : np.ndarray [shape=(n,), dtype=bool]
        Whether the clip is an augmented copy.
    vad_frames : np.ndarray [shape=(n, n_vad_frames), dtype=float32]
        Silero VAD's speech probability per frame of the clip's model window
        (:meth:`ser_export.vad.VoiceActivity.frame_probabilities`).
    """

    features: np.ndarray
    targets: np.ndarray
    speakers: list[str]
    augmented: np.ndarray
    vad_frames: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclasses.dataclass
class Dataset:
    """Feature sets per split, plus a few raw test waveforms for runtime checks."""

    splits: dict[str, FeatureSet]
    labels: tuple[str, ...]
    check_waveforms: np.ndarray      # (k, n_samples) float32, RMS-normalised test clips
    check_targets: np.ndarray        # (k,) int64
    description: dict                # what the data is (recorded in the manifest)
    cache_hit: bool = False
    #: files dropped while making features: source -> (reason, detail), e.g. a clip that is
    #: silent once resampled to the contract's rate (the scan reads files at their own rate)
    skipped: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    copies: int = 1                  # augmented copies per training clip
    names: tuple[str, ...] = tuple(augment.AUGMENTATIONS)
    probability: float = 0.5


# --------------------------------------------------------------- workers ----
def _synth_job(args) -> list[tuple[np.ndarray, bool]]:
    speaker, emotion, rng_key, split, aug = args
    rng = synthetic.clip_rng(*rng_key)
    raw = synthetic.synthesize(speaker, emotion, rng)
    return _prepare(raw, rng, split, aug, what=f"synthetic clip {rng_key}")


def _file_job(args) -> list[tuple[np.ndarray, bool]] | tuple[str, str]:
    """The clips of one file, or ``(reason, detail)`` when the file turns out unusable."""
    path, rng_key, split, aug = args
    rng = np.random.default_rng(np.random.SeedSequence(list(rng_key)))
    try:
        raw = load_audio(path)
        return _prepare(raw, rng, split, aug, what=path)
    except AudioError as exc:
        if isinstance(exc, SilentAudioError):
            return "silent", f"silent once resampled to {contract.SAMPLE_RATE} Hz and trimmed"
        return exc.reason, exc.problem


def _prepare(raw: np.ndarray, rng: np.random.Generator, split: str, aug: AugmentConfig,
             what: str) -> list[tuple[np.ndarray, bool]]:
    if split != "train":
        return [(prepare_clip(raw, rng=None, what=what), False)]
    clips = [(prepare_clip(raw, rng=rng, what=what), False)]
    base = clips[0][0] if aug.copies else None
    for _ in range(aug.copies):
        y, _names = augment.random_augmentation(base, rng, aug.names, aug.probability)
        clips.append((prepare_clip(y, rng=rng, trim=False, what=what), True))
    return clips


#: A process pool is started only for at least this many jobs per worker: each spawned worker
#: imports torch and librosa (seconds), which a small corpus does not repay.
MIN_JOBS_PER_WORKER = 64


def _run_jobs(func, jobs: Sequence, workers: int, progress: bool, desc: str):
    """``func(job)`` for every job, in order; in ``workers`` processes when there are enough jobs.

    The results do not depend on the number of workers (every job carries its own seed).
    """
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="clip", disable=not progress, leave=False)
    if workers <= 1 or len(jobs) < MIN_JOBS_PER_WORKER * workers:
        for job in jobs:
            yield func(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            for result in pool.imap(func, jobs, chunksize=8):
                yield result
                bar.update()
    bar.close()


# ---------------------------------------------------------------- builder ----
def _fingerprint(data: Mapping) -> str:
    return hashlib.sha256(contract.dumps_canonical(data).encode()).hexdigest()[:20]


#: Modules whose code decides the cached features: a change to any of them must miss the cache.
_PIPELINE_MODULES = ("ser_export.audio", "ser_export.contract", "ser_export.data.augment",
                     "ser_export.data.synthetic", "ser_export.data.dataset", "ser_export.frontend",
                     "ser_export.frontend.stft", "ser_export.frontend.fft", "ser_export.frontend.mel")


def pipeline_fingerprint(fe: torch.nn.Module) -> dict:
    """What identifies the code and numbers that turn clips into features.

    The parameters alone are not enough: a change to the front-end or
    preprocessing code with the same parameters would otherwise reuse features
    the new code no longer computes (a build would then not be reproducible
    from a clean clone).  So the key holds a sha256 of the source of every
    module of the pipeline, and of the front-end's output on a fixed probe
    clip (which also catches another library build or CPU that rounds
    differently).

    Parameters
    ----------
    fe : torch.nn.Module
        The front-end, ``(batch, n_samples) -> (batch, 1, n_mels, n_frames)``.

    Returns
    -------
    dict
        ``{"source": hex, "probe": hex}``.
    """
    import importlib
    import inspect

    src = hashlib.sha256()
    for name in _PIPELINE_MODULES:
        src.update(name.encode())
        src.update(inspect.getsource(importlib.import_module(name)).encode())
    t = np.arange(contract.N_SAMPLES, dtype=np.float64) / contract.SAMPLE_RATE
    probe = (np.sin(2 * np.pi * 220.0 * t * (1.0 + t)) + 0.1 * np.sin(2 * np.pi * 3000.0 * t))
    probe = (probe / np.sqrt(np.mean(probe ** 2))).astype(np.float32)[None]
    with torch.no_grad():
        out = fe.eval()(torch.from_numpy(probe)).numpy()
    return {"source": src.hexdigest(), "probe": hashlib.sha256(out.tobytes()).hexdigest()}


def _source_identity(u: Utterance) -> list:
    if u.corpus == "synthetic":
        return [u.source]
    try:
        st = os.stat(u.source)
    except OSError:  # gone since the scan: the feature stage skips it and says why
        return [u.source, None, None]
    return [u.source, st.st_size, st.st_mtime_ns]


def build_dataset(utterances: Sequence[Utterance], assignment: Mapping[str, str],
                  labels: Sequence[str], frontend: FrontEnd, *,
                  speakers: Mapping[str, synthetic.Speaker] | None = None,
                  augment_config: AugmentConfig = AugmentConfig(), seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, workers: int = 1,
                  progress: bool = True, n_check: int = 16,
                  description: Mapping | None = None, vad: VoiceActivity | None = None) -> Dataset:
    """Preprocess, augment and featurise ``utterances`` into train/val/test sets.

    Parameters
    ----------
    utterances : sequence of Utterance
    assignment : mapping ``speaker_key -> split``
    labels : sequence of str
        Label set in logit order.
    frontend : FrontEnd
        The model's front-end parameters (features are computed with it).
    speakers : mapping ``speaker id -> synthetic.Speaker``
        Needed for synthetic utterances.
    augment_config : AugmentConfig
        Augmented copies per training clip.
    seed : int
        Seeds crops and augmentations (per clip, independent of ``workers``).
    cache_dir : path or None
        Where features are cached (``None``: no cache).
    workers : int
        Processes for synthesis/loading and augmentation.
    n_check : int
        Number of test waveforms kept for runtime agreement checks.
    vad : VoiceActivity, optional
        Scores every clip's frames for speech (default: Silero from the silero-vad package
        with the default :class:`ser_export.vad.VadParams`).
    """
    labels = tuple(labels)
    label_index = {label: i for i, label in enumerate(labels)}
    utterances = sorted(utterances, key=lambda u: (u.corpus, u.speaker, u.label, u.source))
    for u in utterances:
        if u.label not in label_index:
            raise DataError(f"{u.source}: label {u.label!r} is not in the label set {labels}")
        if u.speaker_key not in assignment:
            raise DataError(f"speaker {u.speaker_key} has no split assignment")
    fe = build_frontend(frontend).eval()
    if vad is None:
        vad = VoiceActivity(VadParams(sha256=sha256_file(packaged_vad_path())))
    key = _fingerprint({
        "version": DATASET_VERSION, "synth_version": synthetic.SYNTH_VERSION,
        "sources": [[u.corpus, u.speaker, u.label, *_source_identity(u)] for u in utterances],
        "assignment": dict(sorted(assignment.items())), "labels": labels,
        "frontend": frontend.to_dict(), "augment": dataclasses.asdict(augment_config),
        "seed": seed, "n_samples": contract.N_SAMPLES, "n_check": n_check,
        "torch": torch.__version__, "pipeline": pipeline_fingerprint(fe), "vad": vad.params.to_dict(),
    })
    cache_path = Path(cache_dir) / f"features-{key}.npz" if cache_dir else None
    if cache_path is not None and cache_path.exists():
        try:
            return _load_cache(cache_path, labels, dict(description or {}))
        except (OSError, ValueError, KeyError):
            cache_path.unlink(missing_ok=True)  # corrupt cache: rebuild

    jobs_synth, jobs_file, order = [], [], []
    profile_names = list(synthetic.PROFILES)
    for i, u in enumerate(utterances):
        split = assignment[u.speaker_key]
        if u.corpus == "synthetic":
            if speakers is None or u.speaker not in speakers:
                raise DataError(f"synthetic speaker {u.speaker} is unknown")
            take = int(u.source.rsplit("/", 1)[-1])
            spk_index = list(speakers).index(u.speaker)
            rng_key = (seed, spk_index, profile_names.index(u.label), take)
            jobs_synth.append((speakers[u.speaker], u.label, rng_key, split, augment_config))
            order.append(("synth", len(jobs_synth) - 1))
        else:
            jobs_file.append((u.source, (seed, i), split, augment_config))
            order.append(("file", len(jobs_file) - 1))

    results: dict[tuple[str, int], list] = {}
    skipped: dict[str, tuple[str, str]] = {}
    for kind, func, jobs in (("synth", _synth_job, jobs_synth), ("file", _file_job, jobs_file)):
        if not jobs:
            continue
        try:
            for j, clips in enumerate(_run_jobs(func, jobs, workers, progress, f"clips ({kind})")):
                if isinstance(clips, tuple):  # a file found unusable: (reason, detail)
                    skipped[jobs[j][0]] = clips
                    clips = []
                results[(kind, j)] = clips
        except AudioError as exc:
            raise DataError(f"preprocessing failed: {exc}") from None

    buckets: dict[str, dict[str, list]] = {s: {"x": [], "y": [], "spk": [], "aug": [], "vad": []} for s in SPLITS}
    check_w, check_y = [], []
    pending: list[tuple[str, np.ndarray, int, str, bool]] = []

    def flush() -> None:
        if not pending:
            return
        with torch.no_grad():
            clips = np.stack([p[1] for p in pending])
            feats = fe(torch.from_numpy(clips)).numpy()
        vad_frames = vad.frame_probabilities(clips, contract.SAMPLE_RATE)
        for (split, _, target, spk, aug), f, v in zip(pending, feats, vad_frames):
            b = buckets[split]
            b["x"].append(f)
            b["vad"].append(v)
            b["y"].append(target)
            b["spk"].append(spk)
            b["aug"].append(aug)
        pending.clear()

    from tqdm import tqdm

    for u, ref in tqdm(list(zip(utterances, order)), desc="features", unit="clip",
                       disable=not progress, leave=False):
        split = assignment[u.speaker_key]
        for clip, aug in results.pop(ref):
            pending.append((split, clip, label_index[u.label], u.speaker_key, aug))
            if split == "test" and not aug:
                check_w.append(clip)
                check_y.append(label_index[u.label])
        if len(pending) >= 64:
            flush()
    flush()

    splits = {}
    for s, b in buckets.items():
        shape = (0, 1, frontend.n_mels, frontend.n_frames(contract.N_SAMPLES))
        splits[s] = FeatureSet(
            features=np.stack(b["x"]).astype(np.float32) if b["x"] else np.zeros(shape, np.float32),
            targets=np.asarray(b["y"], dtype=np.int64),
            speakers=list(b["spk"]),
            augmented=np.asarray(b["aug"], dtype=bool),
            vad_frames=(np.stack(b["vad"]).astype(np.float32) if b["vad"] else
                        np.zeros((0, vad.params.n_frames(contract.N_SAMPLES, contract.SAMPLE_RATE)), np.float32)),
        )
    pick = _spread(np.asarray(check_y, dtype=np.int64), n_check)
    check_waveforms = (np.stack([check_w[i] for i in pick]) if pick
                       else np.zeros((0, contract.N_SAMPLES), np.float32))
    dataset = Dataset(splits=splits, labels=labels, check_waveforms=check_waveforms,
                      check_targets=np.asarray([check_y[i] for i in pick], dtype=np.int64),
                      description=dict(description or {}), skipped=skipped)
    if cache_path is not None:
        _save_cache(cache_path, dataset)
    return dataset


def _spread(targets: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` indices taking the classes in turn (deterministic)."""
    per_class = [list(np.flatnonzero(targets == c)) for c in np.unique(targets)]
    picked: list[int] = []
    while len(picked) < k and any(per_class):
        for idx in per_class:
            if idx and len(picked) < k:
                picked.append(int(idx.pop(0)))
    return sorted(picked)


def _save_cache(path: Path, ds: Dataset) -> None:
    import io

    arrays = {"labels": np.asarray(ds.labels), "check_w": ds.check_waveforms,
              "check_y": ds.check_targets, "skipped": np.asarray(json.dumps(ds.skipped, sort_keys=True))}
    for s, fs in ds.splits.items():
        arrays[f"{s}_x"] = fs.features
        arrays[f"{s}_y"] = fs.targets
        arrays[f"{s}_spk"] = np.asarray(fs.speakers, dtype=str)
        arrays[f"{s}_aug"] = fs.augmented
        arrays[f"{s}_vad"] = fs.vad_frames
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _load_cache(path: Path, labels: tuple[str, ...], description: dict) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        if tuple(str(x) for x in z["labels"]) != labels:
            raise ValueError("label mismatch")
        splits = {
            s: FeatureSet(features=z[f"{s}_x"], targets=z[f"{s}_y"],
                          speakers=[str(x) for x in z[f"{s}_spk"]], augmented=z[f"{s}_aug"],
                          vad_frames=z[f"{s}_vad"])
            for s in SPLITS
        }
        skipped = {source: tuple(v) for source, v in json.loads(str(z["skipped"])).items()}
        return Dataset(splits=splits, labels=labels, check_waveforms=z["check_w"],
                       check_targets=z["check_y"], description=description, cache_hit=True, skipped=skipped)


def synthetic_utterances(spec: synthetic.SyntheticCorpusSpec) -> tuple[list[Utterance], dict]:
    """The utterances of the synthetic corpus and its speakers by id."""
    speakers = {s.speaker_id: s for s in synthetic.make_speakers(spec.n_speakers, spec.seed)}
    utterances = [
        Utterance(corpus="synthetic", speaker=s.speaker_id, label=label,
                  source=f"{s.speaker_id}/{label}/{take}", sex=s.sex)
        for s in speakers.values() for label in spec.labels for take in range(spec.takes)
    ]
    return utterances, speakers


def describe_utterances(utterances: Iterable[Utterance], assignment: Mapping[str, str],
                        reports: Mapping[str, ScanReport] | None = None) -> dict:
    """Speakers per split and clips per split and label, per corpus (for the manifest and model card).

    With the corpora's scan ``reports``, each corpus also lists its file counts and
    every skipped file with the reason (:meth:`ScanReport.to_dict`).
    """
    out: dict = {}
    for u in utterances:
        split = assignment[u.speaker_key]
        c = out.setdefault(u.corpus, {"speakers": {s: set() for s in SPLITS}, "clips": {}})
        c["speakers"][split].add(u.speaker)
        c["clips"].setdefault(split, {}).setdefault(u.label, 0)
        c["clips"][split][u.label] += 1
    for c in out.values():
        c["speakers"] = {s: sorted(v) for s, v in c["speakers"].items()}
    for corpus, report in (reports or {}).items():
        out.setdefault(corpus, {"speakers": {s: [] for s in SPLITS}, "clips": {}}).update(report.to_dict())
    return json.loads(json.dumps(out, sort_keys=True))
