"""The voice-activity model a release ships: its manifest record (``vad``), with its stream contract.

The release carries a copy of Silero VAD (:data:`ser_export.vad.VAD_FILE`) and declares how it is run in
each model's metadata (``postprocessing.vad``, :class:`ser_export.vad.VadParams`).  From those parameters
alone :meth:`~ser_export.vad.VadParams.stream_contract` makes the VAD's stream contract (version 2); the
manifest records it as ``vad.contract`` (:func:`vad_record`, what the build writes), the reader refuses a
manifest whose contract is not the one its models' parameters make (:func:`contract_problem`), and the
release gate runs the stream stages on the file by it (:mod:`parity.vad_stream`).

A manifest written before the contract was recorded gains it without a rebuild:
``python -m ser_export.vad_release saved_models/`` rewrites the ``vad`` entry by :func:`vad_record` from the
release's own file and parameters (the recorded ``version`` kept), so a build and this command write the
same entry (:func:`refresh_manifest`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from .errors import SerExportError
from .io import atomic_write_bytes
from .manifest import MANIFEST, MAX_MANIFEST_BYTES, ManifestError, VadRecord
from .vad import VAD_FILE, VAD_LICENSE, VAD_SOURCE, VadParams


def vad_record(data: bytes, params: VadParams, version: str) -> VadRecord:
    """The manifest's ``vad`` entry for the Silero file's bytes ``data``, run as ``params`` declare.

    Parameters
    ----------
    data : bytes
        The release's copy of :data:`~ser_export.vad.VAD_FILE`.
    params : VadParams
        The parameters the release's models declare (``postprocessing.vad``).
    version : str
        The ``silero-vad`` package version the file comes from.
    """
    return VadRecord(file=VAD_FILE, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), source=VAD_SOURCE,
                     license=VAD_LICENSE, version=version, contract=params.stream_contract().to_dict())


def declared_params(models: Mapping[str, Mapping]) -> VadParams | None:
    """The VAD parameters the release's models declare (``models.<arch>.postprocessing.vad``); ``None`` when no
    model declares any.  Models that declare different parameters are a :class:`ManifestError`."""
    found: dict[str, Mapping] = {arch: (e.get("postprocessing") or {})["vad"] for arch, e in models.items()
                                 if "vad" in (e.get("postprocessing") or {})}
    if not found:
        return None
    first, *others = found.items()
    for arch, params in others:
        if dict(params) != dict(first[1]):
            raise ManifestError(f"models.{arch}.postprocessing.vad differs from models.{first[0]}.postprocessing.vad "
                                f"(one VAD per release)")
    try:
        return VadParams.from_dict(first[1])
    except SerExportError as exc:
        raise ManifestError(f"models.{first[0]}.{exc}") from None


def contract_problem(vad: Mapping[str, Any], models: Mapping[str, Mapping]) -> str | None:
    """Why the manifest's ``vad.contract`` cannot be trusted (one line naming the field), or ``None``: it must be
    a version 2 contract and the one :meth:`VadParams.stream_contract` makes from the models' parameters."""
    from .model_contract import ContractError
    from .stream_contract import StreamContract

    try:
        declared = StreamContract.from_mapping(vad["contract"], "vad.contract")
    except ContractError as exc:
        return str(exc)
    try:
        params = declared_params(models)
    except ManifestError as exc:
        return str(exc)
    if params is None:  # nothing it could contradict (the reader refuses a release without models)
        return None
    made = params.stream_contract().to_dict()
    got = json.loads(json.dumps(declared.to_dict()))
    want = json.loads(json.dumps(made))
    for key in want:
        if got.get(key) != want[key]:
            return (f"vad.contract.{key} is {json.dumps(got.get(key))}, but the models' postprocessing.vad make "
                    f"{json.dumps(want[key])}")
    return None


def release_contract(manifest) -> "StreamContract | None":
    """The VAD's stream contract of a release (:class:`ser_export.manifest.Manifest`, already checked by the
    reader), or ``None`` when its manifest records none (a release before the contract)."""
    from .stream_contract import StreamContract

    vad = manifest.raw.get("vad") or {}
    return StreamContract.from_mapping(vad["contract"], "vad.contract") if "contract" in vad else None


def refresh_manifest(release_dir: str | os.PathLike) -> bool:
    """Rewrite ``release_dir``'s ``vad`` entry by :func:`vad_record` (its file, its models' parameters, the
    recorded ``version``); every other field as it is.  Returns whether the file changed."""
    from .export.model_file import ReleaseFileError, read_release_file
    from .io import read_untrusted
    from .manifest import Manifest

    release_dir = Path(release_dir)
    path = release_dir / MANIFEST
    try:
        data = read_untrusted(path, max_bytes=MAX_MANIFEST_BYTES, folder=release_dir)
    except ValueError as exc:
        raise ManifestError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("vad"), dict) or "models" not in data:
        raise ManifestError(f"{path}: no vad entry to refresh")
    try:
        blob = read_release_file(release_dir / data["vad"]["file"], release_dir)
    except ReleaseFileError as exc:
        raise ManifestError(str(exc)) from None
    params = declared_params(data["models"])
    if params is None:
        raise ManifestError(f"{path}: no model declares postprocessing.vad")
    new = dict(data, vad=vad_record(blob, params, data["vad"]["version"]).to_dict())
    Manifest.from_dict(json.loads(json.dumps(new)), where=str(path))  # never write what the reader refuses
    text = json.dumps(new, indent=2, sort_keys=True) + "\n"  # the release writer's layout
    if text.encode() == path.read_bytes():
        return False
    atomic_write_bytes(path, text.encode())
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m ser_export.vad_release RELEASE_DIR``: record the VAD's stream contract in its manifest."""
    ap = argparse.ArgumentParser(prog="python -m ser_export.vad_release", description=main.__doc__)
    ap.add_argument("release_dir", type=Path)
    args = ap.parse_args(argv)
    try:
        changed = refresh_manifest(args.release_dir)
    except SerExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.release_dir / MANIFEST}: vad entry {'rewritten' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
