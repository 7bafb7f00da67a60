"""Files in and out: the one reader of untrusted JSON/TOML files and the one atomic writer.

Reading (:func:`read_untrusted`): every JSON or TOML file that comes from outside the code (a
release's manifest, a saved run and its index, a gate report, a model contract, tolerances, the
measured operator table) is read by this one function, under these rules:

* the path is a regular file: not missing, not a directory or device, and **not a symbolic link**
  (the link itself is refused, wherever it points; the file is opened with ``O_NOFOLLOW`` so a link
  swapped in after the check is refused too);
* with ``folder``, the file's real path lies inside ``folder``'s real path;
* at most ``max_bytes`` bytes (the caller's limit; checked on the open file, and no more than
  ``max_bytes + 1`` bytes are ever read);
* strict UTF-8 text;
* JSON: one value of RFC 8259 JSON; a key repeated in one object, ``NaN``/``Infinity`` and nesting
  too deep for the parser are refused.  TOML: ``tomllib`` (which refuses a repeated key itself).

JSON text that arrives inside another file (the JSON values of a model's ONNX metadata) is parsed by
:func:`loads_json` under the same JSON rules.

A file that breaks a rule is an :class:`UntrustedFileError` (a ``ValueError``) whose text is one
line, ``"<path>: <problem>"``; ``path`` and ``problem`` are attributes, so a caller can say what it
was reading (``"<path>: not a saved run (<problem>)"``) in its own error type.

Writing (:func:`stage_bytes`, :func:`replace_staged`, :func:`staged_file`, :func:`atomic_write_bytes`):
a file is written in full to a temporary file beside its target, fsynced, then renamed over the
target and the folder fsynced: a reader sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Mode of written files: what a plain ``open(path, "w")`` would give.
FILE_MODE = 0o666 & ~_umask()


def fsync_folder(directory: Path) -> None:
    """fsync ``directory`` (a rename in it is durable); silently nothing where the system cannot."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_beside(path: Path) -> tuple[int, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, FILE_MODE)
    return fd, Path(tmp)


def stage_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` written in full and fsynced to a new temporary file beside ``path`` (returned);
    :func:`replace_staged` puts it in place.  ``path`` itself is untouched."""
    fd, tmp = _temporary_beside(Path(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace_staged(staged: Path, path: str | os.PathLike, sync_folder: bool = True) -> None:
    """Rename the complete file ``staged`` over ``path`` (atomic), then fsync the folder (unless
    ``sync_folder`` is false: a caller renaming several files syncs once, after the last)."""
    os.replace(staged, path)
    if sync_folder:
        fsync_folder(Path(path).parent)


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp_path = _temporary_beside(path)
    os.close(fd)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        replace_staged(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    replace_staged(stage_bytes(path, data), path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------- reading ----
class UntrustedFileError(ValueError):
    """A file :func:`read_untrusted` refuses: ``str()`` is ``"<path>: <problem>"``, one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def _no_duplicate_keys(path: str | os.PathLike):
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            dup = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise UntrustedFileError(path, f"key {dup!r} appears twice in one object")
        return out
    return hook


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _inside(path: Path, folder: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, top]) == top


def read_untrusted_bytes(path: str | os.PathLike, *, max_bytes: int,
                         folder: str | os.PathLike | None = None) -> bytes:
    """The bytes of ``path`` under the file rules of the module docstring (no decoding)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UntrustedFileError(path, "no such file") from None
    except OSError as exc:
        raise UntrustedFileError(path, f"cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedFileError(path, f"is a symbolic link (to {os.readlink(path)}); only regular files are read")
    if stat.S_ISDIR(st.st_mode):
        raise UntrustedFileError(path, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UntrustedFileError(path, "is not a regular file")
    if folder is not None and not _inside(path, Path(folder)):
        raise UntrustedFileError(path, f"is outside {folder}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UntrustedFileError(path, f"cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedFileError(path, "is not a regular file")
        if st.st_size > max_bytes:
            raise UntrustedFileError(path, f"is {st.st_size} bytes, over the {max_bytes}-byte limit")
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise UntrustedFileError(path, f"cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:  # grew after the check
        raise UntrustedFileError(path, f"is over the {max_bytes}-byte limit")
    return data


def read_untrusted(path: str | os.PathLike, *, max_bytes: int, folder: str | os.PathLike | None = None,
                   format: str | None = None) -> Any:
    """The JSON or TOML value in ``path``, read under the rules of the module docstring.

    Parameters
    ----------
    path : path-like
        The file.
    max_bytes : int
        The largest size accepted, in bytes.
    folder : path-like, optional
        The folder the file must lie in (a release, a saved run), symbolic links resolved.
    format : {"json", "toml"}, optional
        How to parse it; by default TOML for a ``.toml`` suffix, JSON otherwise.

    Returns
    -------
    object
        The parsed value (for TOML always a ``dict``).

    Raises
    ------
    UntrustedFileError
        One line naming ``path`` and the broken rule.
    """
    path = Path(path)
    format = format or ("toml" if path.suffix.lower() == ".toml" else "json")
    if format not in ("json", "toml"):
        raise ValueError(f"format must be 'json' or 'toml', not {format!r}")
    raw = read_untrusted_bytes(path, max_bytes=max_bytes, folder=folder)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedFileError(path, f"not UTF-8 text (byte {exc.start})") from None
    if format == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UntrustedFileError(path, f"not valid TOML ({exc})") from None
        except RecursionError:
            raise UntrustedFileError(path, "not valid TOML (nested too deeply)") from None
    return loads_json(text, path)


def loads_json(text: str, where: str | os.PathLike) -> Any:
    """The value of the JSON ``text``, parsed under the JSON rules of the module docstring.

    Parameters
    ----------
    text : str
        The JSON text (already decoded), e.g. a value of a model's ONNX metadata.
    where : str or path-like
        What the text is, for the error: a file, or ``"<model file>: metadata 'labels'"``.

    Returns
    -------
    object
        The parsed value.

    Raises
    ------
    UntrustedFileError
        One line, ``"<where>: <problem>"`` (a repeated key, ``NaN``/``Infinity``, nesting too deep,
        anything that is not one JSON value); ``path`` is ``where``.
    """
    if not isinstance(text, str):
        raise UntrustedFileError(where, f"not JSON text (a {type(text).__name__})")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(where), parse_constant=_no_constant)
    except UntrustedFileError:
        raise
    except json.JSONDecodeError as exc:
        raise UntrustedFileError(where, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") \
            from None
    except ValueError as exc:
        raise UntrustedFileError(where, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise UntrustedFileError(where, "not valid JSON (nested too deeply)") from None
