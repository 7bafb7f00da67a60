"""The one reader of untrusted files, the one atomic writer, and the one way sessions are made."""
import ast
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.errors import SerExportError
from ser_export.io import (FILE_MODE, UntrustedFileError, atomic_write_bytes, loads_json, read_untrusted,
                           replace_staged, stage_bytes)
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


#: The JSON/TOML parser calls allowed in ser_export/ and parity/ besides the reader: (file, function) and why.
#: Everything else that comes from outside (a release, a saved run, a report, a contract, tolerances, a
#: model's metadata) goes through ser_export.io (read_untrusted, read_untrusted_bytes, loads_json).
PARSER_CALLS_ALLOWED = {
    ("ser_export/io.py", "read_untrusted"): "the reader itself (TOML)",
    ("ser_export/io.py", "loads_json"): "the reader itself (JSON)",
    ("ser_export/manifest.py", "json_schema"): "the manifest's JSON Schema, text this module made",
    ("ser_export/schema.py", "_validator"): "a schema passed in by our code, as its cache key",
    ("ser_export/export/optables.py", "_ort_web_version"): "the installed onnxruntime-web package.json",
    ("ser_export/toolchain.py", "library_versions"): "the installed onnxruntime-web package.json",
    ("ser_export/cli.py", "_run_bench"): "bench --markdown: a JSON `bench` itself wrote, errors one line",
    ("ser_export/data/dataset.py", "_load_cache"): "the build's own feature cache (any error: a cache miss)",
    ("parity/runners/node.py", "NodeHarnessRunner._request"): "a reply line of the Node harness we started",
}
PARSERS = {"json": ("load", "loads"), "tomllib": ("load", "loads")}


def _parser_calls(tree: ast.Module):
    """``(enclosing function, call text)`` of every call of ``json.load(s)``/``tomllib.load(s)`` in ``tree``,
    however imported (``import json as j``, ``from json import loads``).  A call whose argument is
    ``json.dumps(...)`` (a round trip of a value already in memory) is not a parse of outside text."""
    modules, functions = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({a.asname or a.name: a.name for a in node.names if a.name in PARSERS})
        elif isinstance(node, ast.ImportFrom) and node.module in PARSERS:
            functions.update({a.asname or a.name: a.name for a in node.names if a.name in PARSERS[node.module]})

    def is_parser(func) -> bool:
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
            return func.attr in PARSERS[modules[func.value.id]]
        return isinstance(func, ast.Name) and func.id in functions

    def is_dumps(arg) -> bool:
        return (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "dumps"
                and isinstance(arg.func.value, ast.Name) and modules.get(arg.func.value.id) == "json")

    found = []

    def walk(node, where: tuple[str, ...]):
        for child in ast.iter_child_nodes(node):
            inner = where + (child.name,) if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef)) else where
            if isinstance(child, ast.Call) and is_parser(child.func) and not (
                    len(child.args) == 1 and is_dumps(child.args[0])):
                found.append((".".join(where) or "<module>", ast.unparse(child)))
            walk(child, inner)

    walk(tree, ())
    return found


def _all_parser_calls():
    return [(str(path.relative_to(ROOT)), where, call) for folder in ("ser_export", "parity")
            for path in sorted((ROOT / folder).rglob("*.py"))
            for where, call in _parser_calls(ast.parse(path.read_text()))]


def test_no_module_parses_json_or_toml_itself():
    """Parsing outside text is the reader's job: every ``json.load(s)``/``tomllib.load(s)`` call in ser_export/
    and parity/ is one of :data:`PARSER_CALLS_ALLOWED`, and every allowed one still exists."""
    found = _all_parser_calls()
    unexplained = [f"{path}: {where}: {call}" for path, where, call in found
                   if (path, where) not in PARSER_CALLS_ALLOWED]
    assert unexplained == []
    assert set(PARSER_CALLS_ALLOWED) - {(path, where) for path, where, _ in found} == set()


@pytest.mark.parametrize("source", [
    "import json\ndef f(p):\n    return json.loads(open(p).read())\n",
    "import json\ndef f(p):\n    with open(p) as h:\n        return json.load(h)\n",
    "import json as j\nclass C:\n    def f(self, p):\n        return j.loads(p.read_text())\n",
    "from json import loads\nX = loads(open('x').read())\n",
    "from tomllib import loads as parse\ndef f(t):\n    return parse(t)\n",
    "import json\ndef f(meta):\n    return json.loads(meta['labels'])\n",
])
def test_the_walk_finds_a_parser_call_however_it_is_written(source):
    assert len(_parser_calls(ast.parse(source))) == 1
    assert _parser_calls(ast.parse("import json\nx = json.loads(json.dumps({}))\n")) == []


@pytest.mark.parametrize("text, message", [
    ('{"a": {"b": 1, "b": 2}}', "key 'b' appears twice in one object"),
    ('{"a": NaN}', "NaN is not JSON"),
    ('[-Infinity]', "-Infinity is not JSON"),
    ('{"a": ', "not valid JSON"),
    ('[1] [2]', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
])
def test_loads_json_applies_the_reader_s_json_rules_to_text(text, message):
    where = "m.onnx: metadata 'labels'"
    with pytest.raises(UntrustedFileError) as info:
        loads_json(text, where)
    assert message in str(info.value) and str(info.value).startswith(f"{where}: ") and "\n" not in str(info.value)
    assert info.value.path == where
    assert loads_json('{"a": [1, 2.5, null]}', where) == {"a": [1, 2.5, None]}


def _model_with_metadata(path: Path, **metadata: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _metadata_readers():
    """(what, reads a model file's metadata) for every reader of a release model's metadata JSON."""
    from ser_export import predict
    from ser_export.export.metadata import read_metadata
    from ser_export.export.model_file import open_model

    return [("read_metadata(path)", read_metadata),
            ("read_metadata(ModelFile)", lambda p: read_metadata(open_model(p))),
            ("predict.load_session", predict.load_session)]


@pytest.mark.parametrize("key", ["labels", "normalization", "postprocessing", "variant"])
@pytest.mark.parametrize("value, message", [
    ('["a", {"k": 1, "k": 2}]', "key 'k' appears twice"),
    ('{"rms_level_db": NaN}', "NaN is not JSON"),
    ('{"x": Infinity}', "Infinity is not JSON"),
    ("neutral,happy", "not valid JSON"),
])
@pytest.mark.parametrize("reader", range(3))
def test_a_model_s_metadata_json_is_parsed_strictly_naming_the_file_and_key(tmp_path, key, value, message, reader):
    from ser_export.export.model_file import ReleaseFileError

    what, read = _metadata_readers()[reader]
    good = {"labels": '["a","b"]', "sample_rate": "16000", "input_length": "4",
            "normalization": '{"min_rms":1e-06,"rms_level_db":0.0}'}
    path = _model_with_metadata(tmp_path / "m.onnx", **{**good, key: value})
    with pytest.raises(ReleaseFileError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: metadata {key!r}: ") and message in str(info.value), what
    assert "\n" not in str(info.value), what
    read(_model_with_metadata(tmp_path / "m.onnx", **good))  # the same model with strict JSON is read


def test_post_processing_text_is_parsed_strictly():
    from ser_export.postprocess import postprocessing_of

    with pytest.raises(SerExportError, match=r"^postprocessing metadata: key 'temperature' appears twice"):
        postprocessing_of({"postprocessing": '{"temperature": 1.0, "temperature": 2.0}'})
    with pytest.raises(SerExportError, match=r"^postprocessing metadata: not valid JSON \(NaN is not JSON\)$"):
        postprocessing_of({"postprocessing": '{"temperature": NaN}'})


# --------------------------------------------------- a saved run's arrays ----
_OPENS: list[tuple[str, int]] = []
_RECORD_OPENS = [False]


def _audit(event: str, args) -> None:
    if _RECORD_OPENS[0] and event == "open" and args and isinstance(args[0], (str, os.PathLike)):
        _OPENS.append((os.fspath(args[0]), args[2] if len(args) > 2 and isinstance(args[2], int) else 0))


sys.addaudithook(_audit)


def _saved_run(folder: Path) -> Path:
    from parity import record

    rng = np.random.default_rng(1)
    run = record.ModelRun(record.Subject("m", "m.onnx", "out", "f", ("a", "b")), ["c0", "c1"], np.array([True, False]),
                          {"pytorch": {"out": rng.normal(size=(2, 2)), "f": rng.normal(size=(2, 1, 3, 4))}},
                          reference=rng.normal(size=(2, 1, 3, 4)), baseline="pytorch")
    run.save(folder, "m")
    return folder / "m.npz"


def test_a_saved_run_s_arrays_are_read_once_by_the_reader_never_through_a_link(tmp_path):
    """The ``.npz`` of a saved run is opened only by the one reader (``O_NOFOLLOW``) and parsed from those bytes;
    a symlinked one is refused in one line."""
    from parity import record

    npz = _saved_run(tmp_path)
    _OPENS.clear()
    _RECORD_OPENS[0] = True
    try:
        run = record.ModelRun.load(tmp_path, "m")
    finally:
        _RECORD_OPENS[0] = False
    assert run.outputs["pytorch"]["out"].shape == (2, 2)
    opens = [flags for path, flags in _OPENS if os.path.realpath(path) == os.path.realpath(npz)]
    assert len(opens) == 1 and opens[0] & os.O_NOFOLLOW, _OPENS
    moved = npz.with_name("elsewhere.npz")
    npz.rename(moved)
    npz.symlink_to(moved.name)
    with pytest.raises(record.RecordError, match=r"m\.npz: not a saved run's arrays \(is a symbolic link") as info:
        record.ModelRun.load(tmp_path, "m")
    assert "\n" not in str(info.value)


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
