"""The one place that opens a model file of a release: it treats the file as untrusted.

``verify``, ``predict``, ``bench``, the build's re-checks and the runners' probe copies all
read models through :func:`open_model`, which refuses, with a one-line
:class:`ReleaseFileError` (exit code 2) naming the file and the reason:

- a path that is not a regular file inside its folder (a directory, a device, a symlink
  that leads out of the folder, a name with a directory part);
- a file over :data:`MAX_MODEL_BYTES`;
- bytes that are not an ONNX model (truncated, corrupt, another format) or a model that
  ``onnx.checker`` rejects;
- external data that is not a plain file inside the model's folder (an absolute path,
  ``..``, a symlink out of the folder, a directory) or that is shorter than the tensor
  it should hold.

The file is read once; the returned :class:`ModelFile` holds the parsed model with its
external data loaded (from inside the folder only), so nothing downstream opens the
release again, and probe copies are self-contained.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

import onnx

from ..errors import SerExportError

#: Largest model file read (protobuf's own limit is 2 GiB; our models are under 50 MB).
MAX_MODEL_BYTES = 1 << 30


class ReleaseFileError(SerExportError):
    """A release file that cannot be used as it is: the gate answers "could not check" (exit 2)."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A model file as read: where it is, its sha256 and size, and the parsed model (external data
    loaded)."""

    path: Path
    sha256: str
    size: int
    proto: onnx.ModelProto = dataclasses.field(repr=False)


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def _regular_file_inside(path: Path, folder: Path, what: str) -> os.stat_result:
    """``lstat`` of ``path`` after refusing anything but a regular file inside ``folder``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ReleaseFileError(f"{what}: no such file") from None
    except OSError as exc:
        raise ReleaseFileError(f"{what}: cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        if not _inside(path, folder):
            raise ReleaseFileError(f"{what}: is a symlink to {os.path.realpath(path)}, outside {folder}")
        st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise ReleaseFileError(f"{what}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ReleaseFileError(f"{what}: is not a regular file")
    if not _inside(path, folder):
        raise ReleaseFileError(f"{what}: is outside {folder}")
    return st


def _tensors(graph: onnx.GraphProto):
    """Every tensor a graph holds: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _check_external_data(model: onnx.ModelProto, path: Path) -> bool:
    """Refuse external data that is not a plain file inside the model's folder, or too short;
    whether the model has any."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    folder = path.parent
    found = False
    for tensor in _tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        found = True
        info = ExternalDataInfo(tensor)
        location = info.location or ""
        where = f"{path}: external data of {tensor.name!r} ({location!r})"
        parts = PurePosixPath(location.replace("\\", "/")).parts
        if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ".." in parts or (
                len(location) > 1 and location[1] == ":"):
            raise ReleaseFileError(f"{where}: points outside the model's folder")
        st = _regular_file_inside(folder / location, folder, where)
        offset, length = int(info.offset or 0), info.length
        if offset < 0 or (length is not None and (length < 0 or offset + int(length) > st.st_size)):
            raise ReleaseFileError(f"{where}: asks for bytes {offset}..{offset + int(length or 0)} of a "
                                   f"{st.st_size}-byte file")
    return found


def read_release_file(path: str | os.PathLike, folder: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The bytes of a release file that is a regular file inside ``folder`` (no symlink out), at most
    ``max_bytes``; :class:`ReleaseFileError` naming the file otherwise."""
    path = Path(path)
    st = _regular_file_inside(path, Path(folder), str(path))
    if st.st_size > max_bytes:
        raise ReleaseFileError(f"{path}: is {st.st_size} bytes, over the {max_bytes}-byte limit")
    try:
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise ReleaseFileError(f"{path}: cannot be read ({exc.strerror})") from None


def open_model(path: str | os.PathLike, folder: str | os.PathLike | None = None,
               max_bytes: int = MAX_MODEL_BYTES) -> ModelFile:
    """Read and check a model file of ``folder`` (default: the file's own folder).

    Raises
    ------
    ReleaseFileError
        One line naming the file and the problem (see the module docstring).
    """
    path = Path(path)
    folder = Path(folder) if folder is not None else path.parent
    if path.parent.resolve() != folder.resolve() and not _inside(path.parent, folder):
        raise ReleaseFileError(f"{path}: is outside {folder}")
    st = _regular_file_inside(path, folder, str(path))
    if st.st_size > max_bytes:
        raise ReleaseFileError(f"{path}: is {st.st_size} bytes, over the {max_bytes}-byte limit for a model")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ReleaseFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if not data:
        raise ReleaseFileError(f"{path}: is empty (0 bytes)")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ReleaseFileError(f"{path}: not an ONNX model (truncated or corrupt: "
                               f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    if not model.graph.node or not model.opset_import:
        raise ReleaseFileError(f"{path}: not an ONNX model (no graph or no opset: truncated or another format?)")
    if _check_external_data(model, path):
        from onnx.external_data_helper import load_external_data_for_model

        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as exc:
            raise ReleaseFileError(f"{path}: external data cannot be read ({str(exc).splitlines()[0][:120]})") \
                from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ReleaseFileError(f"{path}: not a valid ONNX model ({str(exc).splitlines()[0][:160]})") from None
    return ModelFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), proto=model)
