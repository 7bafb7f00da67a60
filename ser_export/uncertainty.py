"""Fit and evaluate a trained model's post-processing (the build's step after training).

Fits the temperature on the validation speakers, the out-of-distribution score on the
training speech (its threshold on the validation speakers) and the low-confidence threshold
on the validation speakers, then measures what the model
says about inputs it never saw: the held-out test speakers and the offline OOD set
(:mod:`ser_export.data.ood`).  Everything measured is returned as data for the manifest
and model card (:func:`evaluate`); nothing here writes files.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .audio import rms_normalize
from .data.dataset import Dataset
from .data.ood import OOD_VERSION, OodClip
from .metrics import auroc, expected_calibration_error
from .postprocess import (CONFIDENT_PROBABILITY, PostProcessing, calibrated_probabilities, decide, energy_scores,
                          fit_confidence, fit_ood, fit_temperature)
from .vad import VoiceActivity, is_speech


@dataclasses.dataclass
class Evaluation:
    postprocessing: PostProcessing
    report: dict              # the manifest's ``postprocessing.evaluation``
    ece_before: dict          # reliability bins (the plot)
    ece_after: dict


def _logits(model, features: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model.classify(torch.from_numpy(features[i:i + batch]))
                          for i in range(0, features.shape[0], batch)] or [torch.zeros(0, 0)]).numpy()


def _forward(model, waveforms: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    logits, logmel = [], []
    with torch.no_grad():
        for i in range(0, waveforms.shape[0], batch):
            f = model.features(torch.from_numpy(waveforms[i:i + batch]))
            logmel.append(f.numpy())
            logits.append(model.classify(f).numpy())
    return np.concatenate(logits), np.concatenate(logmel)


def _rate(mask) -> float:
    mask = np.asarray(mask, bool)
    return round(float(mask.mean()), 4) if mask.size else 0.0


def _outcomes(d, targets: np.ndarray | None = None) -> dict:
    """Rates of the verdicts over a set of windows (and accuracy on the classified ones)."""
    classified = d.speech & ~d.uncertain
    confident = classified & (d.probabilities.max(axis=1) >= CONFIDENT_PROBABILITY)
    out = {"n": int(d.speech.size), "speech_rate": _rate(d.speech), "no_speech_rate": _rate(~d.speech),
           "uncertain_rate": _rate(d.speech & d.uncertain),
           "uncertain_rate_of_speech": _rate(d.uncertain[d.speech]) if d.speech.any() else 0.0,
           "classified_rate": _rate(classified), "confident_emotion_rate": _rate(confident),
           "no_speech_or_uncertain_rate": _rate(~classified)}
    if targets is not None:
        pred = d.probabilities.argmax(axis=1)
        out["accuracy_all"] = _rate(pred == targets)
        out["accuracy_classified"] = _rate(pred[classified] == targets[classified]) if classified.any() else 0.0
    return out


def evaluate(model, dataset: Dataset, vad: VoiceActivity, ood_set: list[OodClip], sr: int) -> Evaluation:
    """Fit the post-processing of ``model`` and measure it (see the module docstring)."""
    train, val, test = (dataset.splits[s] for s in ("train", "val", "test"))
    val_logits = _logits(model, val.features)
    test_logits = _logits(model, test.features)
    temperature = round(fit_temperature(val_logits, val.targets), 6)
    ood = fit_ood(train.features[~train.augmented], val.features)
    confidence = fit_confidence(calibrated_probabilities(val_logits, temperature))
    pp = PostProcessing(temperature=temperature, vad=vad.params, ood=ood, confidence=confidence)

    before = expected_calibration_error(calibrated_probabilities(test_logits, 1.0), test.targets)
    after = expected_calibration_error(calibrated_probabilities(test_logits, temperature), test.targets)
    held = decide(test.vad_frames, test_logits, test.features, pp)
    val_d = decide(val.vad_frames, val_logits, val.features, pp)

    waves = np.stack([rms_normalize(c.waveform, what=f"OOD clip {c.family}") for c in ood_set])
    ood_logits, ood_logmel = _forward(model, waves)
    ood_frames = vad.frame_probabilities(waves, sr)
    ood_d = decide(ood_frames, ood_logits, ood_logmel, pp)
    parts = {"non_speech": np.array([not c.speech_like for c in ood_set]),
             "speech_like": np.array([c.speech_like for c in ood_set])}

    def sub(d, mask):
        return dataclasses.replace(d, **{f.name: getattr(d, f.name)[mask] for f in dataclasses.fields(d)})

    candidates = {  # higher: less like the training speech
        "logmel_band_mahalanobis": (held.ood_score, ood_d.ood_score),
        "max_probability": (-held.probabilities.max(axis=1), -ood_d.probabilities.max(axis=1)),
        "energy": (energy_scores(test_logits, temperature), energy_scores(ood_logits, temperature)),
    }
    auc = {name: {part: round(auroc(held_s, ood_s[mask]), 4) for part, mask in
                  (("all", np.ones(len(ood_set), bool)), *parts.items())}
           for name, (held_s, ood_s) in candidates.items()}
    families = {}
    for fam in dict.fromkeys(c.family for c in ood_set):
        mask = np.array([c.family == fam for c in ood_set])
        families[fam] = _outcomes(sub(ood_d, mask))
    report = {
        "temperature": temperature,
        "ece_test": {"before": before["ece"], "after": after["ece"], "n_bins": before["n_bins"], "n": int(test.targets.size)},
        "held_out_test": _outcomes(held, test.targets),
        "validation": _outcomes(val_d, val.targets),
        "ood_set": {"version": OOD_VERSION, "n": len(ood_set),
                    **{part: _outcomes(sub(ood_d, mask)) for part, mask in parts.items()},
                    "families": families},
        "ood_auroc": {"chosen": ood.score, "held_out_vs": auc},
        "vad": {"held_out_speech_rate": _rate(is_speech(test.vad_frames, vad.params)),
                "train_speech_rate": _rate(is_speech(train.vad_frames[~train.augmented], vad.params))},
    }
    return Evaluation(pp, report, before, after)


def ece_noise_floor(probabilities: np.ndarray, draws: int = 500, seed: int = 0) -> dict:
    """The ECE a *perfectly calibrated* model with these confidences would show on this many windows.

    Each draw makes every window correct with probability equal to its top probability and
    measures the ECE (15 bins); the spread is pure sampling noise.  Returns the median and
    90th percentile over ``draws``.
    """
    probabilities = np.asarray(probabilities, np.float64)
    rng = np.random.default_rng(seed)
    top, conf = probabilities.argmax(axis=1), probabilities.max(axis=1)
    n_classes = probabilities.shape[1]
    eces = []
    for _ in range(draws):
        correct = rng.random(conf.size) < conf
        targets = np.where(correct, top, (top + 1) % n_classes)
        eces.append(expected_calibration_error(probabilities, targets)["ece"])
    return {"median": round(float(np.median(eces)), 4), "p90": round(float(np.percentile(eces, 90)), 4),
            "draws": draws, "n": int(conf.size)}


def extra_takes_calibration(release_dir, extra_takes: int = 48, draws: int = 500) -> dict:
    """ECE of a synthetic release's models on ``extra_takes`` more takes per emotion of its held-out
    test speakers (takes the build never made, so never trained or validated on), with each model's
    shipped temperature, and the sampling-noise floor of the ECE at the test split's size and at this one.

    Runs the released ONNX files with onnxruntime; ``python -m ser_export calibration`` prints it.
    """
    from .audio import prepare_clip
    from .data import synthetic
    from .errors import SerExportError
    from .export.model_file import open_model
    from .manifest import Manifest
    from .ortsession import cpu_session
    from .postprocess import postprocessing_of
    from .export.metadata import read_metadata

    manifest = Manifest.read(release_dir).raw
    data = manifest["training_data"]
    if not data.get("synthetic") or "spec" not in data:
        raise SerExportError(f"{release_dir}: not trained on the synthetic corpus: no more takes can be made")
    spec = data["spec"]
    speakers = {s.speaker_id: (i, s) for i, s in enumerate(synthetic.make_speakers(spec["n_speakers"], spec["seed"]))}
    labels = manifest["labels"]
    profile_names = list(synthetic.PROFILES)
    waves, targets = [], []
    for sid in data["corpora"]["synthetic"]["speakers"]["test"]:
        index, speaker = speakers[sid]
        for li, label in enumerate(labels):
            for take in range(spec["takes"], spec["takes"] + extra_takes):
                rng = synthetic.clip_rng(spec["seed"], index, profile_names.index(label), take)
                waves.append(prepare_clip(synthetic.synthesize(speaker, label, rng)))
                targets.append(li)
    x, y = np.stack(waves), np.asarray(targets)
    out = {}
    for arch, entry in manifest["models"].items():
        model = open_model(Path(release_dir) / entry["file"], folder=release_dir)
        pp = postprocessing_of(read_metadata(model))
        if pp is None:
            raise SerExportError(f"{entry['file']}: has no post-processing metadata")
        session = cpu_session(model.proto.SerializeToString(), threads=1)  # was unset: bit-identical on the release
        name = session.get_inputs()[0].name
        logits = np.concatenate([session.run([entry["output"]["name"]], {name: x[i:i + 64]})[0]
                                 for i in range(0, len(x), 64)])
        before = calibrated_probabilities(logits, 1.0)
        after = calibrated_probabilities(logits, pp.temperature)
        ev = entry["postprocessing"]["evaluation"]
        out[arch] = {
            "temperature": pp.temperature, "n": int(y.size), "accuracy": round(float((after.argmax(1) == y).mean()), 4),
            "ece_before": expected_calibration_error(before, y)["ece"],
            "ece_after": expected_calibration_error(after, y)["ece"],
            "ece_test_split_after": ev["ece_test"]["after"],
            "noise_floor_here": ece_noise_floor(after, draws),
            "noise_floor_test_split": ece_noise_floor(after[:: max(1, y.size // ev["ece_test"]["n"])]
                                                      [: ev["ece_test"]["n"]], draws),
        }
    return out
