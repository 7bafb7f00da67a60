"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``, shape ``(n_classes, n_classes)``."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return cm


def classification_report(targets: np.ndarray, predictions: np.ndarray,
                          labels: Sequence[str]) -> dict:
    """Accuracy, macro F1 and per-class precision, recall, F1 and support."""
    cm = confusion_matrix(targets, predictions, len(labels))
    total = int(cm.sum())
    per_class = {}
    f1s = []
    for i, label in enumerate(labels):
        tp = int(cm[i, i])
        support = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support:
            f1s.append(f1)
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": support}
    return {
        "accuracy": round(float(np.trace(cm)) / total, 4) if total else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "n": total,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_axes": "rows: true label, columns: predicted label",
    }


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, n_bins: int = 15) -> dict:
    """Expected calibration error with ``n_bins`` equal-width confidence bins (Guo et al. 2017).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n, n_classes)]
    targets : np.ndarray [shape=(n,), dtype=int]

    Returns
    -------
    dict
        ``ece`` (the count-weighted mean |accuracy - confidence| over bins) and per bin
        ``bins``: ``[lower, upper, count, accuracy, confidence]`` (the reliability diagram).
    """
    probabilities = np.asarray(probabilities, np.float64)
    targets = np.asarray(targets, np.int64)
    conf = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)  # (lower, upper]
    ece, bins = 0.0, []
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        acc = float(correct[sel].mean()) if count else 0.0
        c = float(conf[sel].mean()) if count else 0.0
        ece += count / max(conf.size, 1) * abs(acc - c)
        bins.append([round(float(edges[b]), 4), round(float(edges[b + 1]), 4), count, round(acc, 4), round(c, 4)])
    return {"ece": round(float(ece), 4), "n_bins": n_bins, "bins": bins}


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve for scores where ``positives`` should be higher (ties count half).

    The Mann-Whitney U statistic divided by ``len(negatives) * len(positives)`` (scipy).
    """
    from scipy.stats import mannwhitneyu

    negatives, positives = np.asarray(negatives, np.float64), np.asarray(positives, np.float64)
    if not negatives.size or not positives.size:
        return float("nan")
    return float(mannwhitneyu(positives, negatives).statistic / (negatives.size * positives.size))
