"""Training plots for the model card (PNG, deterministic bytes for the same data)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

_PNG_METADATA = {"Software": None}  # no version string: same data, same bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: Sequence[str], title: str, path: str | Path) -> None:
    """Confusion matrix normalised per true label (each row sums to 100 %), counts in brackets."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(labels), 0.8 + 0.8 * len(labels)), dpi=100)
    ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{pct[i, j]:.0f}%\n({int(cm[i, j])})", ha="center", va="center",
                    fontsize=7, color="white" if pct[i, j] > 60 else "black")
    fig.tight_layout()
    fig.savefig(path, metadata=_PNG_METADATA)
    plt.close(fig)


def plot_history(history: Sequence[dict], best_epoch: int, title: str, path: str | Path) -> None:
    """Loss and accuracy per epoch (train and held-out validation); red line: chosen epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for ax, key, name in ((ax_loss, "loss", "cross-entropy loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in history], marker="o", ms=3, label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], marker="o", ms=3,
                label="validation (held-out speakers)")
        ax.axvline(best_epoch, color="red", lw=1, label=f"early stopping: epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata=_PNG_METADATA)
    plt.close(fig)


def plot_reliability(before: dict, after: dict, title: str, path: str | Path) -> None:
    """Reliability diagram: accuracy per confidence bin, before and after temperature scaling.

    ``before``/``after``: :func:`ser_export.metrics.expected_calibration_error` results.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), dpi=100, sharey=True)
    for ax, res, name in ((axes[0], before, "raw softmax"), (axes[1], after, "temperature-scaled")):
        bins = [b for b in res["bins"] if b[2]]
        lo = [b[0] for b in bins]
        width = [b[1] - b[0] for b in bins]
        ax.bar(lo, [b[3] for b in bins], width=width, align="edge", edgecolor="black", alpha=0.7,
               label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.plot([b[4] for b in bins], [b[3] for b in bins], "ro", ms=3, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_title(f"{name}: ECE {res['ece']:.3f}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata=_PNG_METADATA)
    plt.close(fig)
