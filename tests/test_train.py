"""Training: the one-cycle schedule for any number of steps, and training on tiny corpora."""
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from ser_export import contract
from ser_export.data.dataset import Dataset, FeatureSet
from ser_export.errors import DataError
from ser_export.models import VoiceEmotionCnn
from ser_export.train import OneCycleSchedule, TrainConfig, dropout_schedule, train_model

LABELS = contract.labels_for("emotions7")


def _torch_one_cycle(total_steps: int, max_lr: float, warmup_fraction: float) -> list[tuple[float, float]]:
    """``(lr, beta1)`` of every step 0..total_steps as torch's OneCycleLR sets them on AdamW."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps,
                                                pct_start=warmup_fraction)
    out = []
    for _ in range(total_steps):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
        opt.step()
        sched.step()
    out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]))
    return out


@settings(max_examples=60)
@given(total_steps=st.integers(1, 400), warmup=st.floats(0.0, 0.9), max_lr=st.floats(1e-5, 1e-1))
def test_schedule_equals_torch_one_cycle_wherever_torch_has_a_warmup(total_steps, warmup, max_lr):
    """Bit for bit the same rates and beta1 as OneCycleLR when its warm-up ends after step 0
    (the default build's schedules), so the release's training is unchanged."""
    assume(warmup * total_steps - 1 > 0)  # below, torch divides by zero or starts at its final rate
    ours = OneCycleSchedule(total_steps, max_lr, warmup)
    theirs = _torch_one_cycle(total_steps, max_lr, warmup)
    for step, expected in enumerate(theirs):
        assert ours(step) == expected, f"step {step} of {total_steps}: ours {ours(step)}, torch {expected}"


@settings(max_examples=200)
@given(total_steps=st.integers(1, 400), warmup=st.floats(0.0, 0.5), max_lr=st.floats(1e-5, 1e-1))
def test_schedule_is_valid_for_any_number_of_steps(total_steps, warmup, max_lr):
    """Finite rates within [min_lr, max_lr], beta1 within [base, max], and a run that really trains:
    some step runs at half the peak rate or more (OneCycleLR gives 4e-9 for a 1-step run)."""
    s = OneCycleSchedule(total_steps, max_lr, warmup)
    values = [s(step) for step in range(total_steps + 1)]
    for step, (lr, beta1) in enumerate(values):
        assert math.isfinite(lr) and s.min_lr * (1 - 1e-12) <= lr <= max_lr * (1 + 1e-12), (step, lr)
        assert s.base_momentum - 1e-12 <= beta1 <= s.max_momentum + 1e-12, (step, beta1)
    assert max(lr for lr, _ in values[:total_steps]) >= 0.5 * max_lr, values


def test_schedule_single_step_runs_at_the_peak_rate():
    assert OneCycleSchedule(1, 1e-3, 0.25)(0) == (1e-3, 0.85)
    with pytest.raises(ValueError, match="total_steps"):
        OneCycleSchedule(0, 1e-3, 0.25)
    with pytest.raises(ValueError, match="warmup_fraction"):
        OneCycleSchedule(4, 1e-3, 1.0)


def _dataset(n_train: int, n_val: int, n_test: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    shape = (1, 128, contract.FrontEnd().n_frames(contract.N_SAMPLES))

    def fs(n):
        return FeatureSet(features=rng.uniform(-80, 0, (n, *shape)).astype(np.float32),
                          targets=rng.integers(0, len(LABELS), n).astype(np.int64),
                          speakers=["c:s"] * n, augmented=np.zeros(n, bool),
                          vad_frames=rng.uniform(0, 1, (n, 66)).astype(np.float32))

    return Dataset(splits={"train": fs(n_train), "val": fs(n_val), "test": fs(n_test)}, labels=LABELS,
                   check_waveforms=np.zeros((0, contract.N_SAMPLES), np.float32),
                   check_targets=np.zeros(0, np.int64), description={})


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
@settings(max_examples=6)
@given(n_train=st.integers(1, 9), batch_size=st.integers(1, 8), epochs=st.integers(1, 3),
       warmup=st.sampled_from([0.0, 0.25, 0.5]), recalibrate=st.booleans())
def test_training_never_crashes_on_a_tiny_corpus(arch, n_train, batch_size, epochs, warmup, recalibrate):
    """Any corpus size, down to 1 epoch of 1 step of 1 clip: a trained model, no exception
    (OneCycleLR raised ZeroDivisionError for 4 steps)."""
    config = TrainConfig(epochs=epochs, lr=1e-3, batch_size=batch_size, warmup_fraction=warmup, patience=1,
                         recalibrate_bn=recalibrate, recalibration_samples=2)
    result = train_model(arch, _dataset(n_train, 1, 1), config, progress=False, log=False)
    assert 1 <= len(result.history) <= epochs
    assert all(math.isfinite(h["train_loss"]) and h["lr"] > 0 for h in result.history)
    assert result.test_report["n"] == 1


def test_the_reported_four_step_run_trains():
    """The issue's case: 1 epoch of 4 steps (ResNet18's --quick profile on a 6-actor RAVDESS tree)."""
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=2)
    result = train_model("resnet18", _dataset(8, 2, 2), config, progress=False, log=False)
    assert len(result.history) == 1


def test_empty_validation_split_is_a_data_error():
    with pytest.raises(DataError, match="validation 0"):
        train_model("alexnet", _dataset(2, 0, 1), TrainConfig(epochs=1, lr=1e-3), progress=False, log=False)


def test_train_config_refuses_impossible_settings():
    for kwargs in ({"epochs": 0}, {"batch_size": 0}, {"warmup_fraction": 1.0}, {"patience": 0},
                   {"dropout_ramp": -0.1}, {"dropout_ramp": 1.5}):
        with pytest.raises(ValueError):
            TrainConfig(**({"epochs": 1, "lr": 1e-3} | kwargs))


def _dropout_rates(model) -> list[float]:
    return [m.p for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
@settings(max_examples=40)
@given(ramp_steps=st.integers(0, 500), step=st.integers(0, 1000))
def test_curriculum_dropout_rises_linearly_to_the_declared_rates(arch, ramp_steps, step):
    model = VoiceEmotionCnn(arch, labels=LABELS)
    declared = _dropout_rates(model)
    set_dropout = dropout_schedule(model, ramp_steps)
    set_dropout(step)
    scale = 1.0 if ramp_steps == 0 else min(1.0, step / ramp_steps)
    note(f"declared {declared}, now {_dropout_rates(model)}, scale {scale}")
    assert _dropout_rates(model) == pytest.approx([p * scale for p in declared], abs=1e-12)
    set_dropout(max(step, ramp_steps))
    assert _dropout_rates(model) == declared


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
def test_a_model_trained_with_a_ramp_keeps_its_declared_dropout(arch):
    """Early stopping mid-ramp still returns the architecture as printed (the rates are not left low)."""
    declared = _dropout_rates(VoiceEmotionCnn(arch, labels=LABELS))
    config = TrainConfig(epochs=3, lr=1e-3, batch_size=4, patience=1, warmup_fraction=0.0, dropout_ramp=1.0)
    result = train_model(arch, _dataset(8, 2, 2), config, progress=False, log=False)
    assert _dropout_rates(result.model) == declared
    assert repr(result.model) == repr(VoiceEmotionCnn(arch, labels=LABELS))
