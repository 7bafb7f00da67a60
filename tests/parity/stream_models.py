"""A small stateful streaming model built with plain torch, for the ``drive = "inputs"`` reference: a
leaky integrator of each chunk's energy with a sigmoid score (state ``[1, 4]``), exported with
``torch.onnx.export`` with named inputs ``input``, ``state`` and outputs ``score``, ``state_out``."""
from __future__ import annotations

from pathlib import Path

import torch

CONTRACT = """
version = 2
name = "integrator"
targets = ["wasm"]

[signal]
name = "input"
sample_rate = 16000
chunk = 160
context = 32

[[states]]
name = "state"
output = "state_out"
shape = ["batch", 4]

[[scores]]
name = "score"
decision = { threshold = 0.5, hysteresis = 0.1 }

[reference]
drive = "inputs"
"""


class Integrator(torch.nn.Module):
    """``state' = leak * state + W @ [log energy of the window's 4 quarters]``; ``score = sigmoid(sum(state'))``."""

    def __init__(self, leak: float = 0.9):
        super().__init__()
        self.leak = leak
        self.mix = torch.nn.Linear(4, 4)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(4) * 0.25 + 0.05)
            self.mix.bias.fill_(0.5)

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        quarters = x.reshape(x.shape[0], 4, -1)
        energy = torch.log(quarters.pow(2).mean(-1) + 1e-6)
        new = self.leak * state + self.mix(energy) * 0.1
        return torch.sigmoid(new.sum(-1, keepdim=True) + 2.0), new


def integrator_factory() -> torch.nn.Module:
    return Integrator()


def leaky_factory() -> torch.nn.Module:
    """The same module with another leak: a reference the exported file does not match."""
    return Integrator(leak=0.8)


def build(folder: Path) -> Path:
    """``integrator.onnx`` and ``integrator.toml`` in ``folder``."""
    path = Path(folder) / "integrator.onnx"
    with torch.no_grad():
        torch.onnx.export(Integrator().eval(), (torch.zeros(1, 192), torch.zeros(1, 4)), str(path),
                          input_names=["input", "state"], output_names=["score", "state_out"], opset_version=17,
                          dynamo=False)
    (Path(folder) / "integrator.toml").write_text(CONTRACT)
    return path


class SelfDriven(torch.nn.Module):
    """A reference that keeps its own state (``drive = "self"``): a running sum of each chunk's energy, scored by a
    sigmoid; ``reset_states`` zeroes it unless built without one (``reset=False``)."""

    def __init__(self, reset: bool = True):
        super().__init__()
        self.total = torch.zeros(())
        if reset:
            self.reset_states = self._reset

    def _reset(self) -> None:
        self.total = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total = self.total + x.pow(2).mean()
        return torch.sigmoid(self.total).reshape(1, 1)
