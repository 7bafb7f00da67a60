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
