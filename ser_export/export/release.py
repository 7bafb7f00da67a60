"""Write a release directory: models, plots, model card and ``manifest.json``.

Every file is first written in full to a temporary file beside its target and
fsynced; only when all of them exist are they renamed into place, the manifest
last.  A build interrupted before that point leaves the previous release
untouched; the renames themselves take microseconds, and ``verify`` detects the
one remaining window (a model renamed, the manifest not yet) by its sha256.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from ..io import fsync_folder, read_untrusted, replace_staged, stage_bytes
from ..manifest import FORMAT as MANIFEST_FORMAT
from ..manifest import FORMAT_VERSION as MANIFEST_VERSION  # noqa: F401 (build.py's import)
from ..manifest import MANIFEST, MAX_MANIFEST_BYTES, MODEL_CARD  # noqa: F401 (MODEL_CARD: build.py's import)




@dataclasses.dataclass
class ReleaseWriter:
    """Collects a release's files in temporary files, then commits them together."""

    out_dir: Path
    _staged: dict[str, Path] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, data: bytes) -> str:
        """Stage ``data`` as ``name``; returns its sha256."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"release file names are plain names, not {name!r}")
        if name in self._staged:
            raise ValueError(f"{name} staged twice")
        self._staged[name] = stage_bytes(self.out_dir / name, data)
        return hashlib.sha256(data).hexdigest()

    @property
    def staged_names(self) -> list[str]:
        """The names staged so far."""
        return list(self._staged)

    def staged_path(self, name: str) -> Path:
        """Where ``name`` is staged (a complete file, not yet in place)."""
        return self._staged[name]

    def commit(self, manifest: dict, check=None) -> Path:
        """Rename every staged file into place, then write the manifest; drop stale files.

        ``check`` (optional) is called with the final manifest (``files`` filled in) before anything is
        renamed; if it raises, nothing of the release is replaced."""
        try:
            previous = read_manifest(self.out_dir, missing_ok=True)
        except (OSError, ValueError):  # a broken previous manifest: replace it, delete nothing it lists
            previous = None
        manifest = dict(manifest, files=sorted([*self._staged, MANIFEST]))
        if check is not None:  # e.g. the reader's layout: a manifest readers would refuse is never written
            check(json.loads(json.dumps(manifest)))
        self.add(MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        order = [n for n in self._staged if n != MANIFEST] + [MANIFEST]
        for name in order:
            replace_staged(self._staged[name], self.out_dir / name, sync_folder=False)
        self._staged.clear()
        fsync_folder(self.out_dir)
        if previous and isinstance(previous.get("files"), list):
            for name in set(previous["files"]) - set(manifest["files"]):
                path = self.out_dir / str(name)
                if isinstance(name, str) and "/" not in name and name not in (".", "..") and path.is_file():
                    path.unlink(missing_ok=True)
        return self.out_dir / MANIFEST

    def abort(self) -> None:
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> "ReleaseWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort()  # no-op after commit


def read_manifest(release_dir: str | os.PathLike, missing_ok: bool = False) -> dict | None:
    """The manifest as a plain dict, checked only for its format (what the writer needs of a previous
    release).  Readers that trust it use :meth:`ser_export.manifest.Manifest.read`."""
    path = Path(release_dir) / MANIFEST
    if not os.path.lexists(path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path}: no manifest (not a ser_export release directory?)")
    data = read_untrusted(path, max_bytes=MAX_MANIFEST_BYTES, folder=release_dir)  # refusals are ValueErrors
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a ser_export manifest")
    return data
