"""The chunking rule of a streamed model input: one home, used by every Python runner.

The JS runners (``js_harness/lib/stream.mjs``) implement the same rule and are checked
against this one by the gate (they must give the same per-chunk outputs).

A stream ``y`` of ``n`` samples is cut into ``ceil(n / chunk)`` chunks; the last one is
zero-padded to ``chunk`` samples.  Chunk ``i`` is fed together with the ``context``
samples before it (zeros before the stream starts):

    history  = concat(zeros(context), y, zeros(pad))
    window_i = history[i * chunk : i * chunk + context + chunk]

so the model input of chunk ``i`` has ``context + chunk`` samples.  This is what
silero-vad's own ``OnnxWrapper`` does (512 samples, the previous 64 prepended).
"""
from __future__ import annotations

import numpy as np


def n_chunks(n_samples: int, chunk: int) -> int:
    """Number of chunks of a stream of ``n_samples`` samples (at least one)."""
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    return max(1, -(-int(n_samples) // int(chunk)))


def stream_windows(y: np.ndarray, chunk: int, context: int) -> np.ndarray:
    """Every model input window of a stream.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        The stream, float32 samples.
    chunk : int > 0
        New samples per chunk.
    context : int >= 0
        Samples carried from before the chunk (zeros before the stream starts).

    Returns
    -------
    windows : np.ndarray [shape=(n_chunks, context + chunk)], float32
    """
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    k = n_chunks(y.shape[0], chunk)
    history = np.zeros(context + k * chunk, dtype=np.float32)
    history[context:context + y.shape[0]] = y
    idx = np.arange(k)[:, None] * chunk + np.arange(context + chunk)[None, :]
    return history[idx]
