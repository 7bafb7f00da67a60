import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ser_export.contract import FrontEnd, labels_for
from ser_export.models import ARCHITECTURES, VoiceEmotionCnn

PRINTOUTS = Path(__file__).resolve().parent.parent / "data"


def _normalise_repr(text: str) -> str:
    # torch >= 2.1 prints BatchNorm/LayerNorm's bias flag; the original printout predates it
    return re.sub(r"((?:BatchNorm2d|LayerNorm)\(.*), bias=True", r"\1", text)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_layers_match_the_original_printout(arch):
    """Layer for layer as the original README (its 8 outputs = the RAVDESS label set; its front-end the Conv2d
    STFT, kept as the reference implementation)."""
    expected = (PRINTOUTS / f"printout_{arch}.txt").read_text().strip()
    model = VoiceEmotionCnn(arch, labels=labels_for("ravdess8"), frontend=FrontEnd(implementation="conv2d"))
    assert _normalise_repr(str(model)) == expected


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("label_set, n", [("emotions7", 7), ("ravdess8", 8)])
def test_output_width_follows_the_label_set(arch, label_set, n):
    model = VoiceEmotionCnn(arch, labels=labels_for(label_set)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 46305))
    assert out.shape == (2, n)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_state_dict_holds_no_frontend_basis(arch):
    keys = VoiceEmotionCnn(arch).state_dict().keys()
    assert not [k for k in keys if k.startswith("melspec_extractor")]


def test_checkpoint_loads_into_a_fresh_model():
    from ser_export.train import checkpoint, load_checkpoint

    torch.manual_seed(1)
    model = VoiceEmotionCnn("alexnet").eval()
    x = torch.randn(1, 46305)
    again = load_checkpoint(checkpoint(model))
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_eval_outputs_are_batch_invariant(arch, rng):
    """A clip's logits do not change with the other clips in its batch (the original's defect)."""
    torch.manual_seed(0)
    model = VoiceEmotionCnn(arch).eval()
    x = torch.from_numpy(rng.standard_normal((3, 46305)).astype(np.float32))
    x[1] *= 1000.0  # a much louder neighbour
    with torch.no_grad():
        batch = model(x)
        alone = model(x[:1])
    torch.testing.assert_close(batch[:1], alone, rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown architecture"):
        VoiceEmotionCnn("vgg")
    with pytest.raises(ValueError, match="distinct"):
        VoiceEmotionCnn("alexnet", labels=["a", "a"])
