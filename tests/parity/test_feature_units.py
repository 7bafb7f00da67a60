"""Feature tolerances are in dB whatever the log unit: the same filterbank error fails equally in a dB,
a natural-log and a log10 model (plain torch + ``torch.onnx.export``, judged by ``verify`` on
onnxruntime-python against librosa with the declared front-end)."""
import math

import librosa
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from parity import judge
from ser_export.model_contract import ModelContract

SR, N, N_FFT, HOP, N_MELS = 16000, 16000, 512, 160, 40
#: the mel bands whose gain the faulty models raise by 1 % (10 * log10(1.01) = 0.0432 dB)
BANDS, GAIN = slice(10, 16), 1.01
LOGS = {"dB": {"kind": "power_to_db", "ref": "max", "top_db": 80.0}, "ln": {"kind": "log", "eps": 1e-6},
        "log10": {"kind": "log10", "eps": 1e-6}}


class MelModel(nn.Module):
    """Waveform ``(batch, 16000)`` -> ``(logits (batch, 3), logmel (batch, 1, 40, 101))`` in ``unit``."""

    def __init__(self, unit: str, gain: float = 1.0):
        super().__init__()
        self.unit = unit
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(N_FFT, dtype=torch.float64)[None, :]
        angle = 2 * torch.pi * k * n / N_FFT
        self.register_buffer("basis", (torch.cat([torch.cos(angle), -torch.sin(angle)]) * window)[:, None].float())
        mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)
        mel[BANDS] *= gain
        self.register_buffer("mel", torch.from_numpy(mel).float())
        self.head = nn.Linear(N_MELS, 3)

    def forward(self, waveform):
        x = F.pad(waveform[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = F.conv1d(x, self.basis, stride=HOP)
        half = spec.shape[1] // 2
        power = torch.matmul(self.mel, spec[:, :half] ** 2 + spec[:, half:] ** 2)
        if self.unit == "dB":
            db = 10 * torch.log10(torch.clamp(power, min=1e-10))
            db = db - db.amax(dim=(1, 2), keepdim=True)
            logmel = torch.maximum(db, torch.full_like(db, -80.0))
        elif self.unit == "ln":
            logmel = torch.log(power + 1e-6)
        else:
            logmel = torch.log10(power + 1e-6)
        return self.head(logmel.mean(dim=2)), logmel[:, None]


def _contract(unit: str) -> ModelContract:
    return ModelContract.from_mapping({
        "name": f"mel-{unit}", "targets": ["wasm"],
        "input": {"name": "waveform", "shape": ["batch", N], "sample_rate": SR, "normalization": {"kind": "none"}},
        "outputs": {"logits": "logits", "labels": ["a", "b", "c"], "features": "logmel",
                    "frontend": {"sr": SR, "n_fft": N_FFT, "hop_length": HOP, "n_mels": N_MELS,
                                 "pad_mode": "reflect", "log": LOGS[unit]}}}, f"{unit} contract")


def _verify(tmp_path, unit: str, gain: float):
    import ser_export

    torch.manual_seed(0)
    path = tmp_path / f"{unit}-{gain}.onnx"
    torch.onnx.export(MelModel(unit, gain).eval(), (torch.randn(2, N),), str(path), input_names=["waveform"],
                      output_names=["logits", "logmel"], opset_version=17, dynamo=False,
                      dynamic_axes={"waveform": {0: "batch"}, "logits": {0: "batch"}, "logmel": {0: "batch"}})
    report = ser_export.verify(path, _contract(unit), runtimes=["onnxruntime-python"], examples=4, shrink=False)
    return report, {r.stage: r for r in report.models[0].results if r.stage.startswith("logmel_vs_librosa")}


@pytest.mark.parametrize("unit", list(LOGS))
def test_the_same_filterbank_error_fails_equally_in_every_unit(tmp_path, unit):
    good, good_rows = _verify(tmp_path, unit, 1.0)
    assert good.exit_code == 0, [r.message() for r in good.models[0].results if not r.passed]
    bad, rows = _verify(tmp_path, unit, GAIN)
    above = rows["logmel_vs_librosa[above_floor]"]
    assert bad.exit_code == 1 and not above.passed, above.message()
    # the error is the gain in dB of power, whatever unit the features are in
    assert above.max_abs == pytest.approx(10 * math.log10(GAIN), rel=0.02), above.message()
    assert above.metrics["bins"] > 0
    if unit != "dB":  # (in dB relative to each clip's maximum, a changed band holding the maximum moves every bin)
        assert above.where["mel_band"] in range(BANDS.start, BANDS.stop)
    assert above.metrics["unit"] == "dB" and above.metrics.get("features_unit", "dB") == unit
    assert above.tolerance == good_rows["logmel_vs_librosa[above_floor]"].tolerance == 0.001
    assert "dB above the" in above.detail and (unit == "dB") == ("features as dB" not in above.detail)


@pytest.mark.parametrize("unit, scale", [("dB", 1.0), ("ln", 10 / math.log(10)), ("log10", 10.0)])
def test_features_and_their_floor_are_judged_in_db(unit, scale):
    """A bin counts as above the floor by its level in dB, and its error is measured in dB."""
    ref = np.full((1, 1, 2, 2), -30.0 / scale)  # 30 dB above a -60 dB floor
    ref[0, 0, 1, 1] = -65.0 / scale              # 5 dB above it
    ours = ref + 0.0005 / scale                  # 0.0005 dB everywhere
    ours[0, 0, 1, 1] += 0.01 / scale             # 0.0105 dB near the floor
    tol = {"floor_margin_db": 20.0, "above_floor": 0.001, "all_bins": 0.02}
    above, all_bins = judge.judge_features("m", "r", "ref", ours, ref, ["c"], tol, -70.0 / scale, "logmel",
                                           unit=unit)
    assert above.passed and above.metrics["bins"] == 3 and above.max_abs == pytest.approx(0.0005)
    assert all_bins.passed and all_bins.max_abs == pytest.approx(0.0105)
    assert above.where["reference"] == pytest.approx(-30.0) and "-70 dB floor" in above.detail
