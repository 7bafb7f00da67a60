"""ser_export: build, export and release-verify speech-emotion CNNs for onnxruntime-web."""
from __future__ import annotations

__version__ = "0.1.0"


def verify(model, contract=None, runtimes=None, examples: int = 200, seed: int = 0, torch: str | None = None,
           torch_weights=None, tolerances=None, shrink: bool = True, save_outputs=None):
    """The release gate as a function: returns the report (``.exit_code``, ``.models[i].results``, ``.to_dict()``).

    Parameters
    ----------
    model : str or Path
        A release folder (with ``manifest.json``), or one ``.onnx`` model.
    contract : ModelContract, str, Path or None
        The model's contract (an object, or a TOML/JSON file); required for a single model.
    runtimes : sequence of str, optional
        Runner names (default: pytorch for a release or with ``torch``, onnxruntime-python,
        onnxruntime-web-wasm, onnxruntime-node).
    examples, seed : int
        Hypothesis cases per model, and their seed.
    torch : str, optional
        ``"pkg.module:factory"`` returning the ``nn.Module`` to compare with (single models).
    torch_weights : str or Path, optional
        Its state dict (``torch.load(weights_only=True)`` or safetensors).
    tolerances : dict, optional
        Tolerances in ``tolerances.json``'s layout (default: the shipped ones).
    """
    from pathlib import Path

    from parity.config import DEFAULT_RUNTIMES, GateConfig
    from parity.foreign import verify_model
    from parity.gate import verify_release

    from .model_contract import ModelContract

    model = Path(model)
    single = model.suffix == ".onnx" or contract is not None
    default = DEFAULT_RUNTIMES if not single else tuple(r for r in DEFAULT_RUNTIMES if r != "pytorch")
    cfg = GateConfig(runtimes=tuple(runtimes or default), examples=examples, seed=seed, shrink=shrink,
                     tolerances=tolerances, save_outputs=Path(save_outputs) if save_outputs else None,
                     counterexample_dir=None)
    if not single:
        return verify_release(model, cfg)
    if contract is None:
        raise ValueError("a single model needs its contract")
    if not isinstance(contract, ModelContract):
        contract = ModelContract.read(contract)
    return verify_model(model, contract, cfg, torch_factory=torch, torch_weights=torch_weights)
