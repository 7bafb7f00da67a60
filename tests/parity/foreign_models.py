"""Two audio models built with plain torch and ``torch.onnx.export``, no ser_export code.

(a) :class:`KeywordSpotter`: a 16 kHz keyword-spotting-style CNN, 1.0 s input, with its
    front-end in the graph: ``n_fft=512, win_length=400, hop_length=160, n_mels=40``,
    HTK mels, reflect padding, natural log ``log(S + 1e-6)``.
(b) :class:`MelClassifier`: takes a ``(batch, 1, 64, 101)`` log-mel (no front-end in the graph).

The factories (``kws_factory``, ``mel_factory``) are what ``verify --torch`` imports; weights
come from a state dict (``--torch-weights``), so the factories start from other random weights.
The only non-torch code is librosa's mel filter bank, used as a constant.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

KWS_LABELS = ["yes", "no", "up", "down", "left", "right"]
MEL_LABELS = ["dog", "rain", "siren", "speech", "engine"]

KWS_CONTRACT = """
version = 1
name = "kws"
targets = ["wasm"]

# bounds are dB, ln features too (x10/ln 10): "above the floor" from 5 dB above 10*log10(1e-6) = -60 dB
tolerances = { defaults = { logmel_db = { floor_margin_db = 5.0 }, logmel_between_runtimes = { floor_margin_db = 5.0 } } }

[input]
name = "waveform"
shape = ["batch", 16000]
sample_rate = 16000
normalization = { kind = "none" }

[outputs]
logits = "logits"
labels = ["yes", "no", "up", "down", "left", "right"]
features = "logmel"

[outputs.frontend]
sr = 16000
n_fft = 512
win_length = 400
hop_length = 160
n_mels = 40
htk = true
pad_mode = "reflect"
log = { kind = "log", eps = 1e-6 }
"""

MEL_CONTRACT = """
version = 1
name = "mel-classifier"
targets = ["wasm"]

[input]
name = "logmel"
kind = "features"
shape = ["batch", 1, 64, 101]
sample_rate = 16000
length = 16000
normalization = { kind = "none" }

[input.frontend]
sr = 16000
n_fft = 400
hop_length = 160
n_mels = 64
log = { kind = "power_to_db", ref = "max", top_db = 80.0 }

[outputs]
logits = "logits"
"""


class KeywordSpotter(nn.Module):
    """Waveform ``(batch, 16000)`` -> ``(logits (batch, 6), logmel (batch, 1, 40, 101))``."""

    def __init__(self, n_fft=512, win_length=400, hop_length=160, n_mels=40, sr=16000, pad_mode="reflect"):
        super().__init__()
        self.n_fft, self.hop_length, self.pad_mode = n_fft, hop_length, pad_mode
        window = torch.zeros(n_fft, dtype=torch.float64)
        left = (n_fft - win_length) // 2  # librosa centres a shorter window inside n_fft
        window[left:left + win_length] = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * torch.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("basis", basis[:, None, :].float())
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, htk=True)
        self.register_buffer("mel", torch.from_numpy(mel).float())
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, len(KWS_LABELS))

    def forward(self, waveform: torch.Tensor):
        x = F.pad(waveform[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        spec = F.conv1d(x, self.basis, stride=self.hop_length)
        half = spec.shape[1] // 2
        power = spec[:, :half] ** 2 + spec[:, half:] ** 2
        logmel = torch.log(torch.matmul(self.mel, power) + 1e-6)[:, None]
        return self.head(self.body(logmel)), logmel


class MelClassifier(nn.Module):
    """Log-mel ``(batch, 1, 64, 101)`` -> logits ``(batch, 5)``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, len(MEL_LABELS))

    def forward(self, logmel: torch.Tensor):
        x = F.relu(self.conv1(logmel / 20.0))
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def kws_factory() -> nn.Module:
    torch.manual_seed(999)  # other weights than the exported ones: --torch-weights must be loaded
    return KeywordSpotter()


def mel_factory() -> nn.Module:
    torch.manual_seed(999)
    return MelClassifier()


def build(folder: Path) -> dict[str, Path]:
    """Export both models, their weights and contracts into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    kws = KeywordSpotter().eval()
    with torch.no_grad():  # trained-looking statistics, so BatchNorm is not the identity
        for m in kws.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    torch.manual_seed(1)
    mel = MelClassifier().eval()
    out = {}
    for name, model, example, inp, outputs, contract in (
            ("kws", kws, torch.randn(2, 16000), "waveform", ["logits", "logmel"], KWS_CONTRACT),
            ("mel", mel, torch.randn(2, 1, 64, 101), "logmel", ["logits"], MEL_CONTRACT)):
        path = folder / f"{name}.onnx"
        torch.onnx.export(model, (example,), str(path), input_names=[inp], output_names=outputs,
                          dynamic_axes={inp: {0: "batch"}, **{o: {0: "batch"} for o in outputs}}, opset_version=17,
                          dynamo=False)
        torch.save(model.state_dict(), folder / f"{name}.pt")
        (folder / f"{name}.toml").write_text(contract)
        tomllib.loads(contract)
        out[name] = path
    return out


def set_pad_mode(src: Path, dst: Path, mode: str = "constant") -> None:
    """A copy of (a) whose front-end pads with ``mode`` instead of reflecting."""
    import onnx

    model = onnx.load(str(src))
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert pads, "the keyword spotter has a Pad node"
    for node in pads:
        for attr in node.attribute:
            if attr.name == "mode":
                attr.s = mode.encode()
    onnx.save(model, str(dst))


def change_one_weight(src: Path, dst: Path, initializer_prefix: str = "conv2") -> str:
    """A copy of (b) with one weight of the named layer changed; returns the initializer's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    for i, init in enumerate(model.graph.initializer):
        if init.name.startswith(initializer_prefix) and init.name.endswith("weight"):
            w = numpy_helper.to_array(init).copy()
            w.flat[0] += 0.5
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
            onnx.save(model, str(dst))
            return init.name
    raise AssertionError(f"no initializer {initializer_prefix}*weight")


if __name__ == "__main__":  # python -m tests.parity.foreign_models OUT_DIR
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.parity.foreign_models OUT_DIR")
    for name, path in build(Path(sys.argv[1])).items():
        print(f"{name}: {path} (weights {path.with_suffix('.pt')}, contract {path.with_suffix('.toml')})")
