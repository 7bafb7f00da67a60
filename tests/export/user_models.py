"""Two small audio CNNs as a user would export them: plain ``torch.onnx.export``, no onnxsim.

- ``stft_cnn``: 16 kHz, a ``torch.stft`` front-end, opset 17 (ONNX ``STFT``);
- ``dft_cnn``: 22.05 kHz, a MatMul DFT with reflect padding, opset 13.

Both have a symbolic batch dimension and keep the exporter's ``Constant`` nodes,
``Shape``/``Gather`` shape arithmetic, ``ConstantOfShape`` and int64 ``Slice`` ends.
"""
from __future__ import annotations

import io

import numpy as np
import onnx
import torch
from torch import nn


class StftCnn(nn.Module):
    def __init__(self, n_fft: int = 512, hop: int = 160, n_mels: int = 40):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        mel = np.abs(np.random.default_rng(0).standard_normal((n_mels, n_fft // 2 + 1))).astype(np.float32)
        self.register_buffer("mel", torch.from_numpy(mel))
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        s = torch.stft(x, self.n_fft, self.hop, window=self.window, center=True, return_complex=False)
        power = s[..., 0] ** 2 + s[..., 1] ** 2
        m = torch.log(torch.matmul(self.mel, power) + 1e-6)
        h = torch.relu(self.conv(m.unsqueeze(1)))
        return self.fc(h.mean(dim=(2, 3)))


class DftCnn(nn.Module):
    def __init__(self, n_samples: int = 22050, n_fft: int = 1024, hop: int = 256):
        super().__init__()
        self.n_fft = n_fft
        k = np.arange(n_fft // 2 + 1)[:, None]
        n = np.arange(n_fft)[None]
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        self.register_buffer("cos", torch.tensor((np.cos(2 * np.pi * k * n / n_fft) * w).astype(np.float32)))
        self.register_buffer("sin", torch.tensor((-np.sin(2 * np.pi * k * n / n_fft) * w).astype(np.float32)))
        starts = torch.arange(0, n_samples + 1, hop)
        self.register_buffer("frame_index", starts[:, None] + torch.arange(n_fft)[None])
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = nn.functional.pad(x.unsqueeze(1), (self.n_fft // 2, self.n_fft // 2), mode="reflect").squeeze(1)
        frames = x[:, self.frame_index]
        re, im = torch.matmul(frames, self.cos.t()), torch.matmul(frames, self.sin.t())
        db = 10 * torch.log10(torch.clamp(re * re + im * im, min=1e-10)).transpose(1, 2)
        h = torch.relu(self.conv(db.unsqueeze(1)))
        return self.fc(h.mean(dim=(2, 3)))


def export(model: nn.Module, n_samples: int, opset: int) -> onnx.ModelProto:
    """``torch.onnx.export`` with a symbolic batch, as its documentation shows; no simplification."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.randn(1, n_samples), buf, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


def stft_cnn() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export(StftCnn(), 16000, 17)


def dft_cnn() -> onnx.ModelProto:
    torch.manual_seed(0)
    return export(DftCnn(), 22050, 13)
