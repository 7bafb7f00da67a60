"""Training on several processes (torchrun + DistributedDataParallel): the sampler's parts cover each epoch, a
2-process --quick build writes a release the gate passes, and one process stays the single-process build."""
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_export.distributed import Distributed
from ser_export.errors import SerExportError
from tests.e2e import ROOT, run_cli


def test_without_torchrun_the_build_is_one_process():
    d = Distributed.from_env({})
    assert (d.rank, d.world_size, d.enabled, d.is_main) == (0, 1, False, True)
    assert d.sum([1.5, 2]) == [1.5, 2.0] and d.from_main(3) == 3.0


@pytest.mark.parametrize("env", [{"WORLD_SIZE": "2", "RANK": "x"}, {"WORLD_SIZE": "2", "RANK": "2"},
                                 {"WORLD_SIZE": "0"}])
def test_a_bad_torchrun_environment_is_one_line(env):
    with pytest.raises(SerExportError, match="torchrun"):
        Distributed.from_env(env)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), world=st.integers(1, 5), seed=st.integers(0, 1000), epoch=st.integers(1, 30))
def test_the_processes_parts_cover_every_example_of_an_epoch(n, world, seed, epoch):
    parts = [Distributed(rank, world).shard_order(n, seed, epoch).tolist() for rank in range(world)]
    assert len({len(p) for p in parts}) == 1, f"counterexample n={n} world={world}: unequal parts"
    seen = [i for p in parts for i in p]
    assert set(seen) == set(range(n)) and len(seen) == -(-n // world) * world, f"counterexample n={n} world={world}"


def test_two_processes_write_a_release_the_gate_passes(tmp_path):
    out = tmp_path / "release"
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ser_export",
         "build", "--quick", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
         "--verify-examples", "4", "--verify-runtimes", "pytorch,onnxruntime-python"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained on 2 processes (gloo)" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    for arch in ("alexnet", "resnet18"):
        distributed = manifest["models"][arch]["training"]["distributed"]
        assert {k: distributed[k] for k in ("world_size", "backend")} == {"world_size": 2, "backend": "gloo"}
        # every rank re-executed itself under the declared numeric environment, and says so (issue 25)
        assert distributed["numeric_env"] == [manifest["build"]["numeric_env"]] * 2
        assert manifest["build"]["numeric_env"]["comparable"] is True
    gate = run_cli("verify", str(out), "--examples", "8", "--runtimes", "pytorch,onnxruntime-python,onnxruntime-node")
    assert gate.returncode == 0, gate.stdout + gate.stderr
