"""The whole Conv2d (reference) front-end against librosa float64 (same pad mode), on hypothesis waveforms
(the FFT one: tests/frontend/test_fft.py)."""
import numpy as np
import pytest
import torch
from hypothesis import given, note, settings

from ser_export import tolerances
from ser_export.contract import FrontEnd
from ser_export.frontend import build_frontend
from ser_export.frontend.reference import features_reference
from parity.judge import judge_features
from tests.strategies import waveforms

_FRONTENDS = {mode: build_frontend(FrontEnd(pad_mode=mode, implementation="conv2d")).eval()
              for mode in ("constant", "reflect")}


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@settings(max_examples=15)
@given(y=waveforms(normalised=False))
def test_logmel_matches_librosa(pad_mode, y):
    params = FrontEnd(pad_mode=pad_mode, implementation="conv2d")
    tol = tolerances.for_stage("logmel_db", "pytorch")
    with torch.no_grad():
        ours = _FRONTENDS[pad_mode](torch.from_numpy(y)[None]).numpy()
    ref = features_reference(y, params)
    assert ours.shape == ref.shape == (1, 1, 128, 91)
    above, all_bins = judge_features("frontend", pad_mode, "librosa", ours, ref, ["y"], tol, params.log.floor(),
                                     "logmel")
    note(f"errors: {above.message()}; {all_bins.message()}")
    assert all_bins.max_abs <= tol["all_bins"] and all_bins.passed
    assert above.max_abs <= tol["above_floor"] and above.passed


def test_pad_modes_differ_only_at_the_edges(rng):
    y = rng.standard_normal(46305).astype(np.float32)
    y[20000:26000] *= 10  # the clip's maximum (the dB reference) lies away from the edges
    with torch.no_grad():
        a = _FRONTENDS["constant"](torch.from_numpy(y)[None]).numpy()[0, 0]
        b = _FRONTENDS["reflect"](torch.from_numpy(y)[None]).numpy()[0, 0]
    # frames 0-1 and the last two see padding; the middle ones are identical
    assert np.abs(a[:, 3:-3] - b[:, 3:-3]).max() < 1e-3
    assert np.abs(a[:, 0] - b[:, 0]).max() > 0.1
