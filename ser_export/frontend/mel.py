"""Mel filterbank and power-to-dB conversion as ONNX-friendly torch modules."""
from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

#: Upper bound given to every ``Clip``: onnxruntime-web's WebGL backend only
#: honours ``min`` when ``max`` is given too, so a lone lower bound would be
#: skipped there silently (silent bins would become -inf).
FLOAT32_MAX = float(np.finfo(np.float32).max)

_LN10 = float(np.log(10.0))


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa's Slaney-scale, Slaney-normalised mel filterbank in float64.

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float64]
    """
    return librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney",
        dtype=np.float64,
    )


def power_to_db(power: torch.Tensor, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """``librosa.power_to_db(S, ref=np.max, amin=amin, top_db=top_db)`` per example.

    The reference is the maximum of *each example* (all axes but the first), so
    an example's features never depend on the other examples in its batch.

    Parameters
    ----------
    power : torch.Tensor [shape=(batch, ...)]
        Non-negative power values.
    amin : float > 0
        Floor applied before the logarithm.
    top_db : float >= 0 or None
        Values more than ``top_db`` below the example's maximum are raised to it.

    Returns
    -------
    torch.Tensor [shape=power.shape]
        dB relative to each example's maximum: at most 0, at least ``-top_db``.

    Notes
    -----
    Written with ONNX operators that every onnxruntime-web backend has: ``Clip``
    with both bounds (not a lone ``min``), ``Log`` (no ``Log10``), ``ReduceMax``,
    and ``x + relu(t - x)`` for ``max(x, t)`` (no elementwise ``Max``).  That
    form is exact wherever ``x >= t``.
    """
    if amin <= 0:
        raise ValueError(f"amin must be strictly positive, not {amin}")
    log_spec = torch.log(torch.clamp(power, min=amin, max=FLOAT32_MAX)) * (10.0 / _LN10)
    reduce_dims = tuple(range(1, power.dim()))
    log_spec = log_spec - torch.amax(log_spec, dim=reduce_dims, keepdim=True)
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db must be non-negative, not {top_db}")
        # After subtracting the example's maximum, that maximum is exactly 0,
        # so librosa's floor ``log_spec.max() - top_db`` is ``-top_db``.
        log_spec = log_spec + torch.relu(-top_db - log_spec)
    return log_spec


class LogmelFilterBank(nn.Module):
    """Mel projection of a power spectrogram followed by per-example dB.

    Input: ``(batch, 1 + n_fft // 2, n_frames)`` power; or, with ``column_bins``,
    ``(batch, n_frames, n_columns)`` where column ``c`` holds the power of bin
    ``column_bins[c]`` (``-1``: ignored), as
    :class:`ser_export.frontend.fft.FftSpectrogram` returns it.  With ``mel_groups``,
    the bands are projected in that many groups, each gathering only the columns of
    the bins its bands cover (33 K instead of 131 K multiply-adds per frame for 4 groups).
    Output: ``(batch, 1, n_mels, n_frames)`` log-mel in dB relative to each
    example's maximum, floored at ``-top_db``.

    The filterbank is derived from the parameters and kept in a non-persistent
    buffer (not trained, not saved in checkpoints).
    """

    def __init__(self, sr: int = 22050, n_fft: int = 2048, n_mels: int = 128, fmin: float = 0.0,
                 fmax: float | None = None, amin: float = 1e-10, top_db: float | None = 80.0,
                 column_bins: np.ndarray | None = None, mel_groups: int | None = None):
        super().__init__()
        fmax = float(sr) / 2.0 if fmax is None else float(fmax)
        self.amin = float(amin)
        self.top_db = None if top_db is None else float(top_db)
        basis = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)  # (n_mels, n_freqs)
        self.time_major = column_bins is not None
        self.n_groups = 0
        if mel_groups:
            if not self.time_major or mel_groups < 1 or n_mels % mel_groups:
                raise ValueError("mel_groups needs column_bins and must divide n_mels")
            column_bins = np.asarray(column_bins)
            column_of_bin = np.full(basis.shape[1], -1, dtype=np.int64)
            for col in range(column_bins.size - 1, -1, -1):  # the first column holding each bin
                if column_bins[col] >= 0:
                    column_of_bin[column_bins[col]] = col
            if (column_of_bin < 0).any():
                raise ValueError("column_bins does not hold every bin")
            size = n_mels // mel_groups
            for g in range(mel_groups):
                weights = basis[g * size:(g + 1) * size]  # (size, n_freqs)
                nonzero = np.flatnonzero(np.abs(weights).sum(axis=0) > 0)
                lo, hi = int(nonzero.min()), int(nonzero.max()) + 1
                self.register_buffer(f"cols_{g}", torch.from_numpy(column_of_bin[lo:hi]), persistent=False)
                self.register_buffer(f"melW_{g}", torch.from_numpy(weights[:, lo:hi].T.astype(np.float32)),
                                     persistent=False)
            self.n_groups = mel_groups
            return
        if self.time_major:
            column_bins = np.asarray(column_bins)
            if column_bins.max() >= basis.shape[1]:
                raise ValueError("column_bins refers to bins beyond 1 + n_fft // 2")
            permuted = np.zeros((column_bins.size, n_mels))
            valid = column_bins >= 0
            permuted[valid] = basis[:, column_bins[valid]].T
            basis = permuted  # (n_columns, n_mels)
        self.register_buffer("melW", torch.from_numpy(basis.astype(np.float32)), persistent=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        if self.n_groups:  # band-limited: each group of mel bands gathers only its bins
            mel = torch.cat([torch.matmul(power.index_select(2, getattr(self, f"cols_{g}")),
                                          getattr(self, f"melW_{g}")) for g in range(self.n_groups)],
                            dim=-1).transpose(1, 2)
        elif self.time_major:
            mel = torch.matmul(power, self.melW).transpose(1, 2)
        else:
            mel = torch.matmul(self.melW, power)
        return power_to_db(mel, amin=self.amin, top_db=self.top_db).unsqueeze(1)
