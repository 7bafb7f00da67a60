"""A fast STFT: a four-step FFT from plain ONNX operators (MatMul, Mul, Add, Reshape, Slice, Concat).

The Conv2d STFT (:mod:`.stft`) multiplies every frame by the whole 2048 x 2050 DFT
basis (4.2 M multiply-adds per frame, 16.8 MB of constants).  This module factors
the DFT of size ``N = N1 * N2`` (Cooley-Tukey four-step) into

1. ``N1``-point real DFTs over the rows of the frame seen as an ``(N1, N2)`` matrix
   (``x[N2 * n1 + n2]``): two ``MatMul`` with ``(N1, N1)`` cosine/sine matrices;
2. twiddle factors ``exp(-2 pi i n2 k1 / N)``: two ``Mul`` and an ``Add``;
3. ``N2``-point complex DFTs over the columns, keeping only ``k2 <= N2 / 2``
   (bins above ``N / 2`` of a real signal are redundant): one ``MatMul`` with a
   ``(2 N2, 2 K2)`` matrix.

Bin ``k = k1 + N1 * k2`` of the result sits in column ``k1 * 2 K2 + k2`` (real part)
and ``k1 * 2 K2 + K2 + k2`` (imaginary part).  The front-end squares those columns
and hands them to the mel projection, whose matrix is permuted to this layout
(:class:`ser_export.frontend.mel.LogmelFilterBank` with ``column_bins``), so no
reordering op is needed.  Frames are built from hop-sized blocks with ``Slice``
and ``Concat`` (``n_fft`` must be a multiple of ``hop_length``), with no basis at all.

For ``n_fft = 2048 = 32 * 64``: about 0.41 M multiply-adds per frame for the FFT and
0.6 MB of constants (plus the permuted mel matrix).  Every operator is in the
WebGL, WebGPU and wasm tables of onnxruntime-web.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .stft import hann_window


def _angles(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """``2 pi (a * b mod n) / n`` computed exactly in integers before the float conversion."""
    return (2.0 * np.pi / n) * ((a.astype(np.int64) * b.astype(np.int64)) % n).astype(np.float64)


def four_step_constants(n_fft: int, n1: int) -> dict[str, np.ndarray]:
    """The float64 matrices of the four-step real FFT of size ``n_fft = n1 * n2``.

    Returns
    -------
    dict with
        ``c1``, ``s1``: ``(n1, n1)`` first-stage cosine and minus-sine matrices;
        ``tw_u``, ``tw_v``: ``(n1, 2 n2)`` twiddle multipliers for ``[Ar|Ai]`` and ``[Ai|Ar]``;
        ``f2``: ``(2 n2, 2 k2)`` second-stage matrix mapping ``[Br|Bi]`` to ``[Xr|Xi]``;
        ``column_bins``: ``(n1 * 2 k2,)`` the bin of each output column (-1: discarded).
    """
    if n_fft % n1:
        raise ValueError(f"n1={n1} does not divide n_fft={n_fft}")
    n2 = n_fft // n1
    k2 = n2 // 2 + 1
    k1_idx = np.arange(n1)[:, None]
    a1 = _angles(k1_idx, np.arange(n1)[None, :], n1)
    c1, s1 = np.cos(a1), -np.sin(a1)
    at = _angles(k1_idx, np.arange(n2)[None, :], n_fft)  # (k1, n2)
    tc, ts = np.cos(at), -np.sin(at)
    tw_u = np.concatenate([tc, tc], axis=1)
    tw_v = np.concatenate([-ts, ts], axis=1)
    a2 = _angles(np.arange(n2)[:, None], np.arange(k2)[None, :], n2)  # (n2, k2)
    f2c, f2s = np.cos(a2), -np.sin(a2)
    f2 = np.block([[f2c, f2s], [-f2s, f2c]])
    bins = np.arange(n1)[:, None] + n1 * np.arange(k2)[None, :]  # (k1, k2)
    bins = np.where(bins <= n_fft // 2, bins, -1)
    column_bins = np.concatenate([bins, bins], axis=1).reshape(-1)
    return {"c1": c1, "s1": s1, "tw_u": tw_u, "tw_v": tw_v, "f2": f2, "column_bins": column_bins}


def _buffer(module: nn.Module, name: str, value: np.ndarray) -> None:
    module.register_buffer(name, torch.from_numpy(value.astype(np.float32)), persistent=False)


class FftSpectrogram(nn.Module):
    """Squared real and imaginary STFT parts by a four-step FFT, time-major.

    Parameters
    ----------
    n_fft, hop_length, center, pad_mode
        As :class:`ser_export.frontend.stft.STFT` (``n_fft`` a multiple of ``hop_length``).
    n1 : int
        First-stage size; ``n_fft = n1 * n2``.

    Notes
    -----
    Input ``(batch, n_samples)``; output ``(batch, n_frames, n1 * 2 * k2)`` where
    column ``c`` holds the squared real or imaginary part of bin ``column_bins[c]``
    (``-1``: a redundant bin above ``n_fft / 2``).  Summing a bin's two columns gives
    the power spectrogram.
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, center: bool = True,
                 pad_mode: str = "constant", n1: int = 32):
        super().__init__()
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {pad_mode!r}")
        if n_fft % hop_length:
            raise ValueError(f"the FFT front-end needs n_fft ({n_fft}) to be a multiple of hop_length ({hop_length})")
        self.n_fft, self.hop_length, self.center, self.pad_mode = n_fft, hop_length, center, pad_mode
        self.n1, self.n2 = n1, n_fft // n1
        consts = four_step_constants(n_fft, n1)
        self.column_bins = consts.pop("column_bins")
        for name, value in consts.items():
            _buffer(self, name, value)
        _buffer(self, "window", hann_window(n_fft))

    def frames(self, waveform: torch.Tensor) -> torch.Tensor:
        """Windowed frames ``(batch, n_frames, n_fft)``."""
        x = waveform
        n_samples = x.shape[-1]
        if self.center:
            pad = self.n_fft // 2
            x = F.pad(x.unsqueeze(1), (pad, pad), mode=self.pad_mode).squeeze(1)
            n_frames = 1 + n_samples // self.hop_length
        else:
            n_frames = 1 + (n_samples - self.n_fft) // self.hop_length
        per_frame = self.n_fft // self.hop_length
        n_blocks = n_frames + per_frame - 1
        x = x[:, : n_blocks * self.hop_length]
        blocks = x.reshape(-1, n_blocks, self.hop_length)
        frames = torch.cat([blocks[:, j:j + n_frames] for j in range(per_frame)], dim=-1)
        return frames * self.window

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = self.frames(waveform)
        x = frames.reshape(-1, frames.shape[1], self.n1, self.n2)       # x[n1, n2]
        a_re = torch.matmul(self.c1, x)                                   # (…, k1, n2)
        a_im = torch.matmul(self.s1, x)
        u = torch.cat([a_re, a_im], dim=-1)                               # [Ar | Ai]
        v = torch.cat([a_im, a_re], dim=-1)                               # [Ai | Ar]
        b = u * self.tw_u + v * self.tw_v                                 # [Br | Bi]
        y = torch.matmul(b, self.f2)                                      # [Xr | Xi], (…, k1, 2 k2)
        y = y * y
        return y.reshape(-1, frames.shape[1], y.shape[-2] * y.shape[-1])
