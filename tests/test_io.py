"""The one reader of untrusted files, the one atomic writer, and the one way sessions are made."""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.errors import SerExportError
from ser_export.io import (FILE_MODE, UntrustedFileError, atomic_write_bytes, read_untrusted, replace_staged,
                           stage_bytes)
from tests.e2e import ROOT

LIMIT = 64


def _file(tmp_path, data: bytes, name="f.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------- the rules ----
def test_a_symbolic_link_is_refused_even_to_a_good_file_beside_it(tmp_path):
    good = _file(tmp_path, b'{"a": 1}')
    assert read_untrusted(good, max_bytes=LIMIT) == {"a": 1}
    (tmp_path / "link.json").symlink_to(good.name)
    with pytest.raises(UntrustedFileError, match=r"link\.json: is a symbolic link"):
        read_untrusted(tmp_path / "link.json", max_bytes=LIMIT, folder=tmp_path)


def test_a_file_whose_folder_leads_outside_is_refused(tmp_path):
    outside, release = tmp_path / "outside", tmp_path / "release"
    outside.mkdir()
    release.mkdir()
    _file(outside, b"{}")
    (release / "sub").symlink_to(outside)
    with pytest.raises(UntrustedFileError, match="is outside"):
        read_untrusted(release / "sub" / "f.json", max_bytes=LIMIT, folder=release)


def test_the_size_limit_is_inclusive(tmp_path):
    exact = b'{"k": "' + b"x" * (LIMIT - 9) + b'"}'
    assert len(exact) == LIMIT
    assert read_untrusted(_file(tmp_path, exact), max_bytes=LIMIT)["k"]
    with pytest.raises(UntrustedFileError, match=f"is {LIMIT + 1} bytes, over the {LIMIT}-byte limit"):
        read_untrusted(_file(tmp_path, exact + b" "), max_bytes=LIMIT)


@pytest.mark.parametrize("text, message", [
    (b'{"a": {"b": 1, "b": 2}}', "key 'b' appears twice in one object"),
    (b'[{"x": 1}, {"y": 1, "y": 1}]', "key 'y' appears twice"),
    (b'{"a": 1}\xff', "not UTF-8 text (byte 8)"),
    (b'{"a": "\xc3"}', "not UTF-8 text"),
    (b'{"a": NaN}', "NaN is not JSON"),
    (b'[Infinity]', "Infinity is not JSON"),
    (b'{"a": ', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_json_that_is_not_strict_utf8_json_with_distinct_keys_is_refused(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(UntrustedFileError) as info:
        read_untrusted(path, max_bytes=1 << 20)
    assert message in str(info.value) and str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    (b'a = 1\na = 2\n', "not valid TOML"),
    (b'a = "\xff"\n', "not UTF-8 text"),
    (b'a = [\n', "not valid TOML"),
])
def test_toml_is_read_by_the_same_rules(tmp_path, text, message):
    assert read_untrusted(_file(tmp_path, b'a = 1\n[t]\nb = "x"\n', "c.toml"), max_bytes=LIMIT) == {"a": 1,
                                                                                                  "t": {"b": "x"}}
    with pytest.raises(UntrustedFileError, match=message):
        read_untrusted(_file(tmp_path, text, "c.toml"), max_bytes=LIMIT)


def test_missing_directory_and_fifo_are_refused(tmp_path):
    with pytest.raises(UntrustedFileError, match="no such file"):
        read_untrusted(tmp_path / "none.json", max_bytes=LIMIT)
    (tmp_path / "d.json").mkdir()
    with pytest.raises(UntrustedFileError, match="is a directory"):
        read_untrusted(tmp_path / "d.json", max_bytes=LIMIT)
    os.mkfifo(tmp_path / "p.json")
    with pytest.raises(UntrustedFileError, match="is not a regular file"):  # never opened: no blocking read
        read_untrusted(tmp_path / "p.json", max_bytes=LIMIT)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(value=_JSON)
def test_any_json_written_by_json_dumps_reads_back_unchanged(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("rt") / "v.json"
    path.write_text(json.dumps(value, allow_nan=False), encoding="utf-8")
    assert read_untrusted(path, max_bytes=1 << 20) == value


# ------------------------------------------------- every reader goes through it ----
def _contract_toml(tmp_path):
    from tests.parity import foreign_models

    return _file(tmp_path, foreign_models.KWS_CONTRACT.encode(), "c.toml")


def _readers(tmp_path):
    """(what, a good file for it, the function reading it)."""
    from parity.record import read_json
    from ser_export import tolerances
    from ser_export.export.measured_ops import read_table
    from ser_export.export.release import read_manifest
    from ser_export.manifest import Manifest
    from ser_export.model_contract import ModelContract

    release = tmp_path / "release"
    release.mkdir()
    manifest = _file(release, (ROOT / "saved_models" / "manifest.json").read_bytes(), "manifest.json")
    return [
        ("Manifest.read", manifest, lambda p: Manifest.read(p.parent)),
        ("read_manifest", manifest, lambda p: read_manifest(p.parent)),
        ("record.read_json", _file(tmp_path, b'{"format": 1}', "index.json"), lambda p: read_json(p, 1 << 20, "x")),
        ("tolerances", _file(tmp_path, b'{"defaults": {}}', "tol.json"), tolerances.load_overrides),
        ("measured ops", _file(tmp_path, (ROOT / "ser_export/export/measured_ops.json").read_bytes(), "ops.json"),
         read_table),
        ("contract", _contract_toml(tmp_path), ModelContract.read),
    ]


@pytest.mark.parametrize("index", range(6))
def test_every_reader_of_a_release_run_contract_or_tolerances_refuses_a_symlink_and_a_repeated_key(tmp_path,
                                                                                                    index):
    what, good, read = _readers(tmp_path)[index]
    read(good)  # the good file is read
    moved = good.with_name("elsewhere" + good.suffix)
    good.rename(moved)
    good.symlink_to(moved.name)
    with pytest.raises((ValueError, SerExportError), match="symbolic link") as info:
        read(good)
    assert str(good) in str(info.value) and "\n" not in str(info.value), what
    good.unlink()
    text = moved.read_text()
    if good.suffix == ".toml":
        doubled = text.replace('name = "kws"', 'name = "kws"\nname = "kws"', 1)
        assert doubled != text
    else:
        doubled = re.sub(r"^\{", '{"zz": 1, "zz": 1, ', text, count=1)
    good.write_text(doubled)
    with pytest.raises((ValueError, SerExportError), match="appears twice|Cannot overwrite") as info:
        read(good)
    assert str(good) in str(info.value), what


def test_no_module_parses_json_or_toml_files_itself():
    """Reading a file's text and parsing it is the reader's job: no ``json.loads(...read_text())`` elsewhere."""
    found = []
    for folder in ("ser_export", "parity"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if path.name == "io.py":
                continue
            for m in re.finditer(r"(json|tomllib)\.loads?\([^)]*(read_text|read_bytes|open)\(", text):
                found.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    # not a release, a run, a contract or tolerances: the installed npm packages' package.json (build.py,
    # optables.py) and a JSON `bench` itself wrote (cli.py's bench --markdown)
    allowed = {"ser_export/build.py", "ser_export/export/optables.py", "ser_export/cli.py"}
    assert [f for f in found if f.split(":")[0] not in allowed] == []


# --------------------------------------------------------------- the writer ----
def test_a_staged_file_is_complete_beside_its_target_and_replaces_it_at_once(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    staged = stage_bytes(target, b"new bytes")
    assert staged.parent == tmp_path and staged.read_bytes() == b"new bytes" and target.read_bytes() == b"old"
    assert staged.stat().st_mode & 0o777 == FILE_MODE
    replace_staged(staged, target)
    assert target.read_bytes() == b"new bytes" and not staged.exists()
    atomic_write_bytes(target, b"again")
    assert target.read_bytes() == b"again" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


# ------------------------------------------------------------- the sessions ----
def test_sessions_are_made_in_one_place_with_threads_stated():
    sites = [f"{p.relative_to(ROOT)}" for folder in ("ser_export", "parity") for p in (ROOT / folder).rglob("*.py")
             if "InferenceSession(" in p.read_text() and p.name != "ortsession.py"]
    assert sites == []


def test_cpu_session_states_its_threads_and_gives_the_same_numbers(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from ser_export.ortsession import cpu_session

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [64, 8],
                                                  np.random.default_rng(0).normal(size=512).astype(np.float32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    outs = [cpu_session(m, threads=t, optimize=o).run(None, {"x": x})[0]
            for m in (model, model.SerializeToString(), tmp_path / "m.onnx") for t in (1, 2) for o in (True, False)]
    assert all(np.array_equal(outs[0], o) for o in outs)
    s = cpu_session(model, threads=2)
    assert s.get_session_options().intra_op_num_threads == 2 and s.get_session_options().inter_op_num_threads == 1
    assert s.get_providers() == ["CPUExecutionProvider"]
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="threads must be an integer"):
            cpu_session(model, threads=bad)
