"""The tuned AlexNet body of ``VoiceEmotionCnn`` (layer for layer as the original)."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def build_alexnet(n_classes: int) -> "OrderedDict[str, nn.Module]":
    """Modules ``convblock1, bnorm1, convblock2, bnorm2, classifier``.

    Input ``(batch, 1, 128, 91)`` log-mel; the flattened ``convblock2`` output has
    ``256 * 3 * 1 = 768`` features.
    """
    return OrderedDict(
        convblock1=nn.Sequential(
            nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Dropout2d(p=0.7),
        ),
        bnorm1=nn.BatchNorm2d(256),
        convblock2=nn.Sequential(
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Dropout2d(p=0.6),
        ),
        bnorm2=nn.BatchNorm2d(256),
        classifier=nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(768, 512),
            nn.ReLU(),
            nn.Dropout(p=0.5),
            nn.LayerNorm(512),
            nn.Linear(512, n_classes),
        ),
    )


def alexnet_forward(model: nn.Module, logmel: torch.Tensor) -> torch.Tensor:
    """Logits ``(batch, n_classes)`` from log-mel ``(batch, 1, 128, 91)``."""
    x = model.bnorm1(model.convblock1(logmel))
    x = model.bnorm2(model.convblock2(x))
    return model.classifier(torch.flatten(x, 1))
