"""``VoiceEmotionCnn``: log-mel front-end plus a CNN body, waveform in, logits out."""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..contract import FrontEnd, labels_for, DEFAULT_LABEL_SET
from ..frontend import build_frontend
from .alexnet import alexnet_forward, build_alexnet
from .resnet import build_resnet18, resnet18_forward


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How to build one ``VoiceEmotionCnn`` body and run it on log-mel features."""

    name: str
    build: Callable[[int], Mapping[str, nn.Module]]
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    description: str


ARCHITECTURES: Mapping[str, Architecture] = {
    "alexnet": Architecture("alexnet", build_alexnet, alexnet_forward,
                            "tuned AlexNet with Dropout and BatchNorm"),
    "resnet18": Architecture("resnet18", build_resnet18, resnet18_forward,
                             "ResNet18 (torch.nn) with a dropout/LayerNorm head"),
}


class VoiceEmotionCnn(nn.Module):
    """Speech-emotion CNN: RMS-normalised waveform ``(batch, 46305)`` -> logits.

    Parameters
    ----------
    arch : {"alexnet", "resnet18"}
        Body architecture.
    labels : sequence of str
        Class labels in logit order; the classifier has ``len(labels)`` outputs.
    frontend : FrontEnd
        Parameters of the log-mel front-end (``melspec_extractor``).

    Notes
    -----
    The front-end holds no trainable or persistent state, so ``state_dict()``
    contains only the body's weights and a checkpoint can be loaded into a model
    with any front-end implementation.
    """

    def __init__(self, arch: str = "alexnet", labels: Sequence[str] | None = None,
                 frontend: FrontEnd | None = None):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
        self.arch = arch
        self.labels = tuple(labels) if labels is not None else labels_for(DEFAULT_LABEL_SET)
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be at least two distinct names, got {self.labels}")
        self.frontend_params = frontend or FrontEnd()
        self.melspec_extractor = build_frontend(self.frontend_params)
        for name, module in ARCHITECTURES[arch].build(len(self.labels)).items():
            self.add_module(name, module)
        self._body_forward = ARCHITECTURES[arch].forward

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(batch, 1, n_mels, n_frames)`` of waveform ``(batch, n_samples)``."""
        return self.melspec_extractor(waveform)

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_labels)`` from log-mel features."""
        return self._body_forward(self, logmel)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(waveform))
