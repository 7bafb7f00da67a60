"""The model under test: its contract (from its metadata, or declared), its probe copy, and the checks that
its graph has the contract's input and outputs (:func:`check_model_matches_contract`) and agrees with its
manifest entry (:func:`check_against_manifest`)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ser_export.export.metadata import read_metadata
from ser_export.export.model_file import ModelFile, ReleaseFileError
from ser_export.frontend.reference import features_reference
from ser_export.model_contract import ModelContract

from .cases import CaseSpec
from .config import Cases
from .probe import write_probe
from .record import Subject


class ModelUnderTest:
    """One model made ready for the runners: its contract, subject and a probe copy.

    Our releases' contract comes from their metadata; any other model's from
    ``--contract``.  Every runner (PyTorch too) reads the self-contained probe copy
    written from the already-checked model, never the model's folder.
    """

    def __init__(self, model: ModelFile, arch: str, contract: ModelContract | None = None):
        self.path = model.path
        self.arch = arch
        self.meta = read_metadata(model)
        graph = model.proto.graph
        if contract is None:  # one of ours: the contract is in the metadata
            initializers = {t.name for t in graph.initializer}
            inp = next((i for i in graph.input if i.name not in initializers), None)
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "batch")
                     for d in inp.type.tensor_type.shape.dim] if inp is not None else []
            try:
                contract = ModelContract.from_metadata(self.meta, inp.name if inp is not None else "", shape,
                                                       graph.output[0].name)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ReleaseFileError(f"{self.path}: metadata is not a ser_export model's ({exc})") from None
            if not contract.outputs.features:
                raise ReleaseFileError(f"{self.path}: metadata has no 'features_output' (rebuild with ser_export)")
        self.contract = contract
        check_model_matches_contract(model, contract)
        out = contract.outputs
        fe = out.frontend
        self.subject = Subject(arch, model.path.name, out.logits, out.features,
                               tuple(out.labels) if out.labels else None,
                               floor=fe.log.floor() if fe else 0.0, unit=fe.log.unit if fe else "")
        self._tmp = tempfile.TemporaryDirectory(prefix="ser_export_parity_")
        self.probe = write_probe(model.proto, Path(self._tmp.name) / "probe.onnx",
                                 [out.features] if out.features else [])
        self.outputs = [out.logits] + ([out.features] if out.features else [])

    def cases(self, specs: Sequence[CaseSpec]) -> Cases:
        """``specs`` rendered as the contract's input wants them (rate, length, normalisation)."""
        inp = self.contract.input
        norm = inp.normalization
        return Cases.from_specs(specs, inp.sample_rate, inp.n_samples,
                                rms=norm.target_rms if norm.kind == "rms" else 0.1,
                                all_in_contract=norm.kind == "none")

    def inputs(self, waveforms: np.ndarray) -> np.ndarray:
        """What the model is fed: the waveforms, or the features the contract's input front-end makes of them."""
        inp = self.contract.input
        if inp.kind == "features":
            return features_reference(waveforms, inp.frontend).astype(np.float32)
        return waveforms

    @property
    def feature_frontend(self):
        """The front-end of the features output the librosa reference is computed for (``None``: none)."""
        return self.contract.outputs.frontend if self.contract.outputs.features else None

    def close(self) -> None:
        self._tmp.cleanup()


def check_model_matches_contract(model: ModelFile, contract: ModelContract) -> None:
    """Refuse a model whose graph does not have the contract's input and outputs (exit 2, naming both)."""
    graph = model.proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or inputs[0].name != contract.input.name:
        raise ReleaseFileError(f"{model.path}: has inputs {[i.name for i in inputs]}; the contract declares one, "
                               f"{contract.input.name!r}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    want = list(contract.input.shape)
    if dims and (len(dims) != len(want) or any(isinstance(w, int) and d is not None and d != w
                                               for d, w in zip(dims, want))):
        raise ReleaseFileError(f"{model.path}: input {contract.input.name!r} has shape "
                               f"{['?' if d is None else d for d in dims]}; the contract declares {want}")
    produced = {o for n in graph.node for o in n.output} | {o.name for o in graph.output}
    for what, name in (("logits", contract.outputs.logits), ("features", contract.outputs.features)):
        if name and name not in produced:
            raise ReleaseFileError(f"{model.path}: has no tensor {name!r} (the contract's {what} output)")


def check_against_manifest(model: ModelFile, entry: Mapping) -> None:
    """Refuse a model whose declared input, outputs or labels contradict its manifest entry."""
    graph = model.proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    declared = entry.get("input") or {}
    if len(inputs) != 1:
        raise ReleaseFileError(f"{model.path}: has {len(inputs)} inputs; the manifest declares one "
                               f"({declared.get('name')!r})")
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
             for d in inputs[0].type.tensor_type.shape.dim]
    if declared and (inputs[0].name != declared.get("name") or len(shape) != len(declared.get("shape", []))
                     or any(isinstance(m, int) and m != s for m, s in zip(declared.get("shape", []), shape))):
        raise ReleaseFileError(f"{model.path}: declares input {inputs[0].name!r} {shape}; the manifest says "
                               f"{declared.get('name')!r} {declared.get('shape')}")
    output = (entry.get("output") or {}).get("name")
    if output and graph.output[0].name != output:
        raise ReleaseFileError(f"{model.path}: its first output is {graph.output[0].name!r}; the manifest says "
                               f"{output!r}")
    labels = read_metadata(model).get("labels")
    if "labels" in entry and labels != list(entry["labels"]):
        diff = next((i for i, (a, b) in enumerate(zip(entry["labels"], labels or [])) if a != b),
                    min(len(entry["labels"]), len(labels or [])))
        raise ReleaseFileError(f"{model.path}: its metadata labels {labels} differ from the manifest's "
                               f"{list(entry['labels'])} (first at index {diff})")
    declared_pp = entry.get("postprocessing")
    if declared_pp:
        raw = read_metadata(model).get("postprocessing")
        if not isinstance(raw, dict):
            raise ReleaseFileError(f"{model.path}: the manifest declares post-processing; its metadata has none")
        for key in ("temperature",):
            if raw.get(key) != declared_pp.get(key):
                raise ReleaseFileError(f"{model.path}: its metadata post-processing {key} {raw.get(key)!r} differs "
                                       f"from the manifest's {declared_pp.get(key)!r}")
        if (raw.get("vad") or {}).get("sha256") != declared_pp["vad"]["sha256"]:
            raise ReleaseFileError(f"{model.path}: its metadata names another voice-activity model than the "
                                   f"manifest (sha256 {str((raw.get('vad') or {}).get('sha256'))[:12]}...)")
