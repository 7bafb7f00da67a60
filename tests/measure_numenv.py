"""What the declared numeric environment costs in training time, measured side by side.

``python -m tests.measure_numenv [--repeat 3]`` runs one training step (batch 64 of log-mel
features, SGD, the ``channels_last`` layout the build trains in) of each model, alternately in a
process with this machine's own kernels and PyTorch's default threads, and in one under
:data:`ser_export.numenv.ENV` with :data:`~ser_export.numenv.INTRA_OP_THREADS` threads, and prints
the median step time of each and their ratio.  Each process reports the sha256 of the weights
after its steps, so the run also shows that each environment is repeatable.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

STEP = r"""
import hashlib, json, sys, time
import torch
from ser_export import contract, numenv
from ser_export.models import VoiceEmotionCnn
if sys.argv[1] == "declared":
    numenv.activate()
out = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
for arch in ("alexnet", "resnet18"):
    torch.manual_seed(0)
    labels = contract.labels_for(contract.DEFAULT_LABEL_SET)
    m = VoiceEmotionCnn(arch, labels=labels)
    f = contract.FrontEnd()
    frames = 1 + contract.N_SAMPLES // f.hop_length
    x = torch.randn(64, 1, f.n_mels, frames).contiguous(memory_format=torch.channels_last)
    m = m.to(memory_format=torch.channels_last)
    y = torch.randint(0, len(labels), (64,))
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m.classify(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in m.parameters())).hexdigest()[:12]
    out[arch] = {"ms": 1000 * statistics.median(times[1:]), "sha256": digest}
print(json.dumps(out))
"""


def _run(kind: str) -> dict:
    from ser_export import numenv

    env = dict(os.environ)
    if kind == "declared":
        env = numenv.target_environment(env, numenv.unmet())
    proc = subprocess.run([sys.executable, "-c", "import statistics\n" + STEP, kind], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each environment")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict]] = {"native": [], "declared": []}
    for _ in range(args.repeat):
        for kind in runs:
            runs[kind].append(_run(kind))
    for arch in ("alexnet", "resnet18"):
        med = {k: statistics.median(r[arch]["ms"] for r in v) for k, v in runs.items()}
        hashes = {k: sorted({r[arch]["sha256"] for r in v}) for k, v in runs.items()}
        print(f"{arch}: one training step (batch 64) native {med['native']:.0f} ms "
              f"({runs['native'][0]['capability']}, {runs['native'][0]['threads']} threads), declared "
              f"{med['declared']:.0f} ms ({runs['declared'][0]['capability']}, {runs['declared'][0]['threads']} "
              f"thread): x{med['declared'] / med['native']:.2f}; weights after the steps: native {hashes['native']}, "
              f"declared {hashes['declared']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
