"""Golden outputs: what the trained model gave on fixed cases at build time.

The manifest stores them, so ``verify`` notices a release file whose weights were
changed after the build even when every runtime agrees with every other (the
PyTorch runner rebuilds its model from that same file).
"""
from __future__ import annotations

import numpy as np
import torch

from .cases import batch_digest, golden_specs, render

GOLDEN_N = 8
GOLDEN_SEED = 20241


def golden_record(model: torch.nn.Module, labels, n: int = GOLDEN_N, seed: int = GOLDEN_SEED) -> dict:
    x = np.stack([render(s) for s in golden_specs(n, seed)])
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(x)).numpy()
    return {"n": n, "seed": seed, "input_sha256": batch_digest(x),
            "logits": [[float(v) for v in row] for row in logits],
            "top1": [labels[i] for i in logits.argmax(1)]}
