"""The declared numeric environment (ser_export/numenv.py): what it sets, who meets it, what is recorded."""
import json

import pytest

from ser_export import numenv
from ser_export.build import incomparable_out_dir
from ser_export.manifest import Manifest, ManifestError


@pytest.mark.parametrize("machine, flags, why", [
    ("x86_64", {"sse4_2", "avx", "avx2", "fma"}, None),
    ("AMD64", {"avx2", "fma", "avx512f"}, None),
    ("x86_64", {"sse4_2", "avx"}, "the CPU has no AVX2/FMA"),
    ("x86_64", {"avx2"}, "the CPU has no FMA"),
    ("aarch64", {"asimd"}, "the CPU is aarch64, not x86-64"),
])
def test_who_meets_the_environment(machine, flags, why):
    assert numenv.unmet(machine, flags) == why


def test_the_callers_values_are_overridden_and_said():
    caller = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1", "HOME": "/h"}
    env = numenv.target_environment(caller, None)
    assert {k: env[k] for k in numenv.ENV} == dict(numenv.ENV) and env["HOME"] == "/h"
    assert env[numenv.MARKER] == str(numenv.VERSION)
    assert numenv.overridden(caller) == {"ATEN_CPU_CAPABILITY": ("default", "avx2"),
                                         "ONEDNN_MAX_CPU_ISA": ("SSE41", "AVX2")}


def test_a_machine_that_cannot_meet_it_gets_the_thread_counts_only():
    """No instruction-set cap where the CPU lacks AVX2 (OPENBLAS_CORETYPE=Haswell would not even run there)."""
    env = numenv.target_environment({"ONEDNN_MAX_CPU_ISA": "SSE41"}, "the CPU has no AVX2")
    assert env["ONEDNN_MAX_CPU_ISA"] == "SSE41" and "OPENBLAS_CORETYPE" not in env
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_DYNAMIC"] == "FALSE"


def test_the_record_says_when_the_process_did_not_run_under_it(monkeypatch):
    """This test process was not started by the build: unless its environment happens to be the declared
    one, the record is not comparable and names each difference."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    rec = numenv.record()
    assert rec["comparable"] is False and "ATEN_CPU_CAPABILITY='default' (declared 'avx2')" in rec["reason"]
    assert rec["env"] == dict(numenv.ENV) and rec["intra_op_threads"] == numenv.INTRA_OP_THREADS
    no_avx2 = numenv.record(reason="the CPU has no AVX2")
    assert no_avx2["comparable"] is False and no_avx2["reason"] == "the CPU has no AVX2"


def _release(tmp_path, comparable):
    raw = json.loads((__import__("tests.e2e", fromlist=["ROOT"]).ROOT / "saved_models" / "manifest.json").read_text())
    raw["build"]["numeric_env"] = {"version": 1, "env": dict(numenv.ENV), "intra_op_threads": 1,
                                   "interop_threads": 1, "comparable": comparable,
                                   **({} if comparable else {"reason": "the CPU has no AVX2"})}
    out = tmp_path / "saved_models"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(raw))
    return out, raw


def test_an_incomparable_build_never_replaces_a_comparable_release(tmp_path, capsys):
    out, _ = _release(tmp_path, comparable=True)
    target = incomparable_out_dir(out, "the CPU has no AVX2")
    assert target == tmp_path / "saved_models-incomparable"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not comparable" in err and "is kept" in err


def test_an_incomparable_build_may_replace_an_incomparable_release_or_fill_an_empty_folder(tmp_path):
    out, _ = _release(tmp_path, comparable=False)
    assert incomparable_out_dir(out, "the CPU has no AVX2") == out
    assert incomparable_out_dir(tmp_path / "new", "the CPU has no AVX2") == tmp_path / "new"


def test_the_manifest_reader_checks_the_record(tmp_path):
    out, raw = _release(tmp_path, comparable=True)
    Manifest.from_dict(raw)  # well formed
    bad = json.loads(json.dumps(raw))
    bad["build"]["numeric_env"]["comparable"] = "yes"
    with pytest.raises(ManifestError, match="numeric_env.comparable"):
        Manifest.from_dict(bad)
    unexplained = json.loads(json.dumps(raw))
    unexplained["build"]["numeric_env"]["comparable"] = False
    with pytest.raises(ManifestError, match="numeric_env.reason"):
        Manifest.from_dict(unexplained)
