"""A fast STFT: a four-step FFT from plain ONNX operators (MatMul, Mul, Add, Reshape, Slice, Concat).

The Conv2d STFT (:mod:`.stft`) multiplies every frame by the whole 2048 x 2050 DFT
basis (4.2 M multiply-adds per frame, 16.8 MB of constants).  This module factors
the DFT of size ``N = N1 * N2`` (Cooley-Tukey four-step) into

1. ``N1``-point real DFTs over the rows of the frame seen as an ``(N1, N2)`` matrix
   (``x[N2 * n1 + n2]``), only for ``k1 <= N1 / 2`` (the rest are complex conjugates
   for a real frame): one ``MatMul`` with the stacked cosine and sine matrix, all
   frames at once;
2. the twiddle factors ``exp(-2 pi i n2 k1 / N)`` (an elementwise complex product:
   ``Mul``, ``Sub``, ``Add`` with two ``(N1/2 + 1, N2)`` tables), then ``N2``-point
   complex DFTs, one ``(2 N2, 2 N2)`` real matrix shared by every row (one ``MatMul``);
   an output above ``N / 2`` is the mirror image of a bin that step 1 skipped.  (Folding
   the twiddles into one matrix per ``k1`` took 0.54 MB of constants, three quarters of the
   front-end's, which the reduced-precision variants keep in float32; applied apart they
   take 25 KB.);
3. the power ``Xr**2 + Xi**2`` (``Mul``, ``Slice``, ``Add``: WebGL has no opset-13
   ``ReduceSum``) and a ``Transpose``; the mel projection then ``Gather``s, per group
   of mel bands, just the columns holding the bins those bands cover
   (:class:`ser_export.frontend.mel.LogmelFilterBank` with ``column_bins`` and
   ``mel_groups``).

Frames are built from hop-sized blocks with ``Slice`` and ``Concat`` (``n_fft``
must be a multiple of ``hop_length``), with no basis at all.

For ``n_fft = 2048 = 64 * 32``: about 0.27 M multiply-adds per frame for the FFT
(the Conv2d basis: 4.2 M), 33 K for the mel projection in 4 band-limited groups
(131 K dense), and 0.19 MB of constants.  (With 8 groups the mel projection ends
in a ``Concat`` of 8 inputs, which onnxruntime-web 1.30's WebGPU backend computes
wrongly; the parity suite's chromium-webgpu runner caught it, and the measured
operator table, ``python -m ser_export optable``, shows it is the ``Concat``, not the
16-column ``MatMul``s.)  Every operator is in the WebGL, WebGPU and wasm tables of
onnxruntime-web.
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

    A real frame's first-stage output is conjugate-symmetric (``A[n1 - k1] =
    conj(A[k1])``), so only rows ``k1 = 0 .. n1/2`` are computed.  Row ``k1``'s second
    stage gives ``X[k1 + n1 j]`` for every ``j``; an index above ``n_fft / 2`` is the
    mirror of bin ``n_fft - k`` (``|X[n_fft - k]| = |X[k]|`` for real input), which
    supplies the bins of the rows that were not computed.

    Returns
    -------
    dict with
        ``w1``: ``(2 r, n1)`` first stage for ``r = n1/2 + 1`` rows, cosine rows then
        minus-sine rows (``[Ar; Ai] = w1 @ x`` for ``x[n1, n2]``);
        ``tc``, ``ts``: ``(r, n2)`` twiddles ``exp(-2 pi i n2 k1 / n_fft) = tc + i ts``:
        ``B = A * (tc + i ts)``;
        ``d``: ``(2 n2, 2 n2)`` the ``n2``-point complex DFT in real form, shared by every
        row: ``[Xr | Xi] = [Br | Bi] @ d`` where ``X[k1 + n1 j] = sum_n2 A[k1, n2]
        exp(-2 pi i n2 (k1 + n1 j) / n_fft)``;
        ``gather``: ``(n_fft/2 + 1,)`` for each bin, its column in the ``(k1, j)``
        layout (``column = k1 * n2 + j``).
    """
    if n_fft % n1 or n1 % 2:
        raise ValueError(f"n1={n1} must be even and divide n_fft={n_fft}")
    n2 = n_fft // n1
    rows = n1 // 2 + 1
    a1 = _angles(np.arange(rows)[:, None], np.arange(n1)[None, :], n1)
    w1 = np.concatenate([np.cos(a1), -np.sin(a1)], axis=0)
    tw = _angles(np.arange(rows)[:, None], np.arange(n2)[None, :], n_fft)  # (k1, n2)
    tc, ts = np.cos(tw), -np.sin(tw)
    ang = _angles(np.arange(n2)[:, None], np.arange(n2)[None, :], n2)     # (n2, j)
    dc, ds = np.cos(ang), -np.sin(ang)
    d = np.block([[dc, ds], [-ds, dc]])
    gather = np.full(n_fft // 2 + 1, -1, dtype=np.int64)
    for k1 in range(rows):
        ks = k1 + n1 * np.arange(n2)
        for j, k in enumerate(ks):
            b = k if k <= n_fft // 2 else n_fft - k
            if gather[b] < 0:
                gather[b] = k1 * n2 + j
    if (gather < 0).any():
        raise AssertionError("four-step layout misses a bin")  # cannot happen for even n1
    return {"w1": w1, "tc": tc, "ts": ts, "d": d, "gather": gather}


def four_step_power(frame: np.ndarray, consts: dict[str, np.ndarray]) -> np.ndarray:
    """The power spectrum of one frame computed as the module does, in numpy (float64).

    For tests and documentation: ``four_step_power(x, four_step_constants(N, n1))``
    equals ``abs(np.fft.rfft(x)) ** 2``.
    """
    w1, tc, ts, d, gather = consts["w1"], consts["tc"], consts["ts"], consts["d"], consts["gather"]
    (rows, n2), n1 = tc.shape, w1.shape[1]
    a = w1 @ frame.reshape(n1, n2)                                 # (2 rows, n2)
    ar, ai = a[:rows], a[rows:]
    y = np.concatenate([ar * tc - ai * ts, ar * ts + ai * tc], axis=1) @ d
    power = y[:, :n2] ** 2 + y[:, n2:] ** 2                         # (rows, j)
    return power.reshape(-1)[gather]


def _buffer(module: nn.Module, name: str, value: np.ndarray) -> None:
    module.register_buffer(name, torch.from_numpy(value.astype(np.float32)), persistent=False)


class FftSpectrogram(nn.Module):
    """Power spectrogram by a four-step FFT, time-major.

    Parameters
    ----------
    n_fft, hop_length, center, pad_mode
        As :class:`ser_export.frontend.stft.STFT` (``n_fft`` a multiple of ``hop_length``).
    n1 : int
        First-stage size; ``n_fft = n1 * n2``.

    Notes
    -----
    Input ``(batch, n_samples)``; output ``(batch, n_frames, (n1/2 + 1) * n2)`` power,
    column ``c`` holding bin ``column_bins[c]`` (``-1``: a duplicate, ignored).
    """

    def __init__(self, n_fft: int = 2048, hop_length: int = 512, center: bool = True,
                 pad_mode: str = "constant", n1: int = 64):
        super().__init__()
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {pad_mode!r}")
        if n_fft % hop_length:
            raise ValueError(f"the FFT front-end needs n_fft ({n_fft}) to be a multiple of hop_length ({hop_length})")
        self.n_fft, self.hop_length, self.center, self.pad_mode = n_fft, hop_length, center, pad_mode
        self.n1, self.n2 = n1, n_fft // n1
        consts = four_step_constants(n_fft, n1)
        _buffer(self, "w1", consts["w1"])
        _buffer(self, "tc", consts["tc"][:, None, :])   # (k1, 1, n2): broadcast over frames
        _buffer(self, "ts", consts["ts"][:, None, :])
        _buffer(self, "d", consts["d"])
        _buffer(self, "window", hann_window(n_fft))
        #: The bin each output column holds (-1: a duplicate of another column's bin).
        bins = np.full(consts["tc"].shape[0] * self.n2, -1, dtype=np.int64)
        bins[consts["gather"]] = np.arange(consts["gather"].size)
        self.column_bins = bins

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
        frames = self.frames(waveform)                                        # (B, T, N)
        n_frames = frames.shape[1]
        n1, n2 = self.n1, self.n2
        rows = self.tc.shape[0]
        x = frames.reshape(-1, n_frames, n1, n2).transpose(1, 2)              # (B, n1, T, n2)
        a = torch.matmul(self.w1, x.reshape(-1, n1, n_frames * n2))           # (B, 2 rows, T n2): [Ar; Ai]
        a = a.reshape(-1, 2, rows, n_frames, n2)                              # (B, re/im, k1, T, n2)
        ar, ai = a[:, 0], a[:, 1]
        b = torch.cat([ar * self.tc - ai * self.ts, ar * self.ts + ai * self.tc], dim=-1)  # (B, k1, T, [Br | Bi])
        y = torch.matmul(b, self.d)                                           # (B, k1, T, [Xr | Xi])
        sq = y * y
        power = sq[..., :n2] + sq[..., n2:2 * n2]                             # (B, k1, T, j)
        return power.permute(0, 2, 1, 3).reshape(-1, n_frames, rows * n2)     # (B, T, k1 * n2 + j)
