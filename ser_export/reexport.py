"""Re-export a release model with another front-end or opset, without retraining (``python -m ser_export export``).

A command: it wires the exporter (``export/``) to the release check of ``parity/``.

The front-end is fixed DSP and holds no weights, so the trained body rebuilt from
the release file (:func:`ser_export.export.recover.model_from_onnx`) loads into a
model with either STFT implementation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from parity.cases import golden_specs, render
from parity.heldout import check_heldout

from . import contract
from .errors import ExportError
from .export.lint import lint_model, require_compatible
from .export.metadata import build_metadata, read_metadata
from .export.model_file import open_model
from .export.onnx_export import export_onnx, serialize, set_metadata
from .export.optables import BACKENDS
from .export.recover import model_from_onnx, require_recoverable
from .io import atomic_write_bytes
from .models import VoiceEmotionCnn


def reexport(model_path: Path, out_path: Path, frontend: str, opset: int = contract.DEFAULT_OPSET,
             backends: Sequence[str] | None = None) -> dict:
    """Write ``out_path``: the model of ``model_path`` with the ``frontend`` STFT; returns a summary."""
    model_path, out_path = Path(model_path), Path(out_path)
    if model_path.resolve() == out_path.resolve():
        raise ExportError("--out must differ from the input model (the release file is never rewritten in place)")
    release_model = open_model(model_path).proto
    source = model_from_onnx(release_model)
    meta = read_metadata(release_model)
    params = dataclasses.replace(source.frontend_params, implementation=frontend)
    net = VoiceEmotionCnn(source.arch, source.labels, params).eval()
    net.load_state_dict(source.state_dict())
    proto = export_onnx(net, opset=opset)
    set_metadata(proto, build_metadata(source.arch, source.labels, meta.get("label_set", ""), params,
                                       meta.get("training_data", ""), features_output=contract.FEATURES_NAME))
    require_recoverable(proto, net)
    backends = list(backends or BACKENDS)
    lint = lint_model(proto, backends)
    require_compatible(lint, backends, what=f"{model_path.name} with the {frontend} front-end")
    blob = serialize(proto)
    clips = np.stack([render(s) for s in golden_specs()])
    check = check_heldout(net, blob, clips)
    # the trained body is the same: logits of both front-ends must agree within the logit tolerance
    import torch

    with torch.no_grad():
        diff = float((net(torch.from_numpy(clips)) - source(torch.from_numpy(clips))).abs().max())
    atomic_write_bytes(out_path, blob)
    return {"file": str(out_path), "bytes": len(blob), "arch": source.arch, "frontend": frontend, "opset": opset,
            "ops": lint.ops, "backends": {b: lint.compatible(b) for b in backends},
            "max_abs_logit_diff_vs_source_frontend": diff, "release_check": check}
