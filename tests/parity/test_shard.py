"""Sharded gate runs: N shards merged are exactly one unsharded run; a failing shard fails the merge; a missing,
duplicated or foreign shard cannot be merged (exit 2)."""
import json
import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.merge import merge_reports
from parity.shard import Shard
from tests.e2e import ROOT, run_cli

#: Three runtimes (one of them Node, for the JS preprocessing and post-processing), 12 cases in batches of 4:
#: three shards of one batch each.
RUNTIMES = "pytorch,onnxruntime-python,onnxruntime-node"
ARGS = ("--runtimes", RUNTIMES, "--examples", "12", "--batch-size", "4", "--no-shrink")


@settings(max_examples=200, deadline=None)
@given(n_cases=st.integers(1, 500), batch=st.integers(1, 70), data=st.data())
def test_shards_cover_every_case_once_in_whole_batches(n_cases, batch, data):
    """Any K/N with any case count: the batches split as evenly as they go, the first shard holds the first
    batch, and with fewer batches than shards the last shards are empty (at the end of the cases)."""
    n_batches = -(-n_cases // batch)
    count = data.draw(st.integers(1, n_batches + 5), label="count")
    bounds = [Shard(k, count).bounds(n_cases, batch) for k in range(1, count + 1)]
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(n_cases)), f"counterexample n={n_cases} batch={batch} N={count}: {bounds}"
    assert bounds[0][0] == 0 and bounds[0][1] > 0, bounds
    full = [(a, b) for a, b in bounds if a < b]
    assert all(a % batch == 0 for a, b in full), f"counterexample n={n_cases} batch={batch}: {bounds}"
    assert len(full) == min(count, n_batches) and bounds[:len(full)] == full, bounds  # empty ones come last
    assert all(a == b == n_cases for a, b in bounds[len(full):]), bounds
    sizes = [-(-(b - a) // batch) for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1, f"counterexample n={n_cases} batch={batch} N={count}: {bounds}"


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ValueError, match="--shard|needs 1 <= K <= N"):
        Shard.parse(text)


@pytest.fixture(scope="module")
def shards(quick_release, tmp_path_factory):
    """The quick release checked once whole and once as three shards."""
    out = tmp_path_factory.mktemp("shards")
    release = str(quick_release["out"])
    whole = run_cli("verify", release, *ARGS, "--report", str(out / "whole.json"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    for k in (1, 2, 3):
        proc = run_cli("verify", release, *ARGS, "--shard", f"{k}/3", "--report", str(out / f"shard-{k}.json"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"(shard {k}/3)" in proc.stdout
    return out


def _results(report: dict) -> dict:
    """Every judged stage by (model, stage, runner), the JS timings left out of the details."""
    out = {}
    for m in report["models"]:
        for r in m["results"]:
            r = dict(r, detail=re.sub(r"JS took \d+ ms", "", r.get("detail") or ""))
            out[(m["arch"], r["stage"], r["runner"])] = r
    return out


def _copy(shards, tmp_path, ks=(1, 2, 3)):
    for k in ks:
        shutil.copy(shards / f"shard-{k}.json", tmp_path / f"shard-{k}.json")
        shutil.copytree(shards / f"shard-{k}.run", tmp_path / f"shard-{k}.run")
    return [tmp_path / f"shard-{k}.json" for k in ks]


def test_three_shards_merged_are_the_unsharded_run(shards, tmp_path):
    sizes = [json.loads((shards / f"shard-{k}.json").read_text())["shard"]["cases"] for k in (1, 2, 3)]
    assert sizes == [[0, 4], [4, 8], [8, 12]]
    proc = run_cli("merge-reports", *(str(shards / f"shard-{k}.json") for k in (1, 2, 3)),
                   "--report", str(tmp_path / "merged.json"), "--junit", str(tmp_path / "merged.xml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = json.loads((tmp_path / "merged.json").read_text())
    whole = json.loads((shards / "whole.json").read_text())
    assert merged["exit_code"] == whole["exit_code"] == 0
    assert merged["cases_checked"] == whole["cases_checked"] > 0
    assert [m["arch"] for m in merged["models"]] == [m["arch"] for m in whole["models"]]
    a, b = _results(whole), _results(merged)
    assert set(a) == set(b)
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"merged differs from the unsharded run at {differ[:3]}"
    # the once-per-model checks were judged (from shard 1), and per-case stages cover every case
    stages = {k[1] for k in b}
    assert {"determinism[logits]", "batch_invariance[logits]", "golden_logits"} <= stages
    assert any(s.startswith("js_preprocessing") for s in stages) and any(s.startswith("vs_parent") for s in stages)
    assert all(r["n_cases"] == 12 for k, r in b.items() if k[1] == "logmel_vs_librosa[all_bins]")
    assert "<testsuites" in (tmp_path / "merged.xml").read_text()


def test_a_failure_in_one_shard_fails_the_merge(shards, tmp_path):
    paths = _copy(shards, tmp_path)
    npz = tmp_path / "shard-2.run" / "alexnet.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.startswith("outputs/onnxruntime-node/") and arrays[k].ndim == 2)
    arrays[key] = arrays[key].copy()
    arrays[key][1] += 1.0  # onnxruntime-node's logits of the shard's second case (case 5 of the run)
    np.savez_compressed(npz, **arrays)
    report = merge_reports(paths)
    assert report.exit_code == 1
    failed = [r for m in report.models for r in m.failures]
    assert failed and all(r.model == "alexnet" and r.runner == "onnxruntime-node" for r in failed)
    assert any(r.where.get("case") == 5 for r in failed), [r.where for r in failed]
    proc = run_cli("merge-reports", *map(str, paths))
    assert proc.returncode == 1 and "alexnet" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("case, message", [
    ("missing", r"shard\(s\) 2/3 of runtimes .* missing"),
    ("twice", "shard 1/3 of runtimes .* is given twice"),
    ("escape", "is not a folder name beside the report"),
    ("unsharded", "not the report of a sharded run"),
    ("other_release", "checked another release"),
    ("other_cases", "examples 13 differs"),
])
def test_shards_that_are_not_one_run_cannot_be_merged(shards, tmp_path, case, message):
    paths = _copy(shards, tmp_path)
    if case == "missing":
        paths = [paths[0], paths[2]]
    elif case == "twice":
        (tmp_path / "again").mkdir()
        paths = [paths[0], *_copy(shards, tmp_path / "again", (1,)), paths[1], paths[2]]
    elif case == "escape":
        data = json.loads(paths[1].read_text())
        data["shard"]["outputs"] = "../shard-2.run"
        paths[1].write_text(json.dumps(data))
    elif case == "unsharded":
        paths[1] = shards / "whole.json"
    else:
        index = tmp_path / "shard-3.run" / "index.json"
        data = json.loads(index.read_text())
        if case == "other_release":
            data["files"]["alexnet"]["sha256_actual"] = "0" * 64
        else:
            data["config"]["examples"] = 13
        index.write_text(json.dumps(data))
    report = merge_reports(paths)
    assert report.exit_code == 2
    assert re.search(message, report.verdict_line()), report.verdict_line()
    proc = run_cli("merge-reports", *map(str, paths))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_verify_refuses_a_shard_it_cannot_run(quick_release, tmp_path):
    release = str(quick_release["out"])
    proc = run_cli("verify", release, *ARGS, "--shard", "1/3")
    assert proc.returncode == 2 and "needs --report FILE" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def _whole_and_three_shards(subject: str, args: tuple[str, ...], tmp_path) -> list:
    """``verify SUBJECT ARGS`` unsharded into ``whole.json`` and as ``--shard K/3`` into ``shard-K.json`` (each
    must exit 0); the shards' report paths."""
    whole = run_cli("verify", subject, *args, "--report", str(tmp_path / "whole.json"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    paths = []
    for k in (1, 2, 3):
        paths.append(tmp_path / f"shard-{k}.json")
        proc = run_cli("verify", subject, *args, "--shard", f"{k}/3", "--report", str(paths[-1]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return paths


def test_more_shards_than_batches_merged_are_the_unsharded_run(tmp_path):
    """``--examples 9 --shard K/3`` on the committed release (onnxruntime-python; 9 cases are one batch of 64):
    shard 1/3 runs every case and the once-per-model checks, 2/3 and 3/3 keep no case and check the files
    only, and the three merged are the unsharded 9-case run on every stage, bit for bit."""
    release = str(ROOT / "saved_models")
    args = ("--runtimes", "onnxruntime-python", "--examples", "9", "--no-shrink")
    paths = _whole_and_three_shards(release, args, tmp_path)
    for k, path in enumerate(paths, 1):
        shard = json.loads(path.read_text())
        assert shard["shard"]["cases"] == ([0, 9] if k == 1 else [9, 9])
        assert all(m["checksum"]["ok"] for m in shard["models"]), shard["models"]  # every shard checks the files
        judged = {key: r for key, r in _results(shard).items() if r["applicable"]}  # shards 2, 3: the VAD's
        assert bool(judged) == (k == 1)  # row says where its streams are judged (shard 1), nothing is judged
    merged = merge_reports(paths)
    whole = json.loads((tmp_path / "whole.json").read_text())
    assert merged.exit_code == whole["exit_code"] == 0, merged.verdict_line()
    assert merged.cases_checked == whole["cases_checked"] > 0
    merged = json.loads(json.dumps(merged.to_dict()))
    assert [m["arch"] for m in merged["models"]] == [m["arch"] for m in whole["models"]]
    a, b = _results(whole), _results(merged)
    assert set(a) == set(b) and {"golden_logits", "determinism[logits]"} <= {k[1] for k in a}
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"merged differs from the unsharded run at {differ[:3]}"
    assert all(r["n_cases"] == 9 for k, r in b.items() if k[1] == "logmel_vs_librosa[all_bins]")


def test_a_single_models_shards_merged_are_its_unsharded_run(tmp_path):
    """``verify kws.onnx --contract kws.toml --examples 9 --shard K/3`` (onnxruntime-python and
    onnxruntime-web-wasm; shards 2/3 and 3/3 empty): merged, every stage is the unsharded run's, the stages the
    contract declares nothing for (reported as not applicable, not by the judge) included."""
    from tests.parity import foreign_models

    paths = foreign_models.build(tmp_path)
    model, contract = str(paths["kws"]), str(tmp_path / "kws.toml")
    args = ("--contract", contract, "--runtimes", "onnxruntime-python,onnxruntime-web-wasm", "--examples", "9",
            "--no-shrink")
    shards = _whole_and_three_shards(model, args, tmp_path)
    merged = merge_reports(shards)
    whole = json.loads((tmp_path / "whole.json").read_text())
    assert merged.exit_code == whole["exit_code"] == 0, merged.verdict_line()
    a, b = _results(whole), _results(json.loads(json.dumps(merged.to_dict())))
    assert {"golden_logits", "js_preprocessing"} <= {k[1] for k, r in a.items() if not r["applicable"]}
    assert set(a) == set(b), set(a) ^ set(b)
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"merged differs from the unsharded run at {differ[:3]}"
