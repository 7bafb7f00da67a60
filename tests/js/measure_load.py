"""How long ``loadClassifier`` takes on WebGPU in headless Chromium with and without the placement
proof (``proveBackend``), both models, runs alternating side by side in one process::

    python -m tests.js.measure_load --repeat 5

It installs the packed package into a temporary consumer project (as the browser tests do), serves
the committed release, and prints each run and the medians (milliseconds, from the page's clock).
Not a test: a figure for the README, on this machine's noise.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.jsenv import HARNESS_DIR, find_node
from tests.conftest import write_wav
from tests.e2e import ROOT
from tests.js.consumer import make_consumer

PAGE = Path(__file__).resolve().parent / "package_page"
MODELS = ("voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", default="webgpu", choices=("wasm", "webgl", "webgpu"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = make_consumer(root)
        for f in PAGE.iterdir():
            shutil.copy(f, app / f.name)
        speaker = make_speakers(2, 9)[0]
        write_wav(root / "speech.wav", 0.2 * synthesize(speaker, "angry", clip_rng(9, 0, 0, 1)), sr=22050,
                  subtype="FLOAT")
        runs: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for model in MODELS:
                for prove in ("1", "0"):
                    page = (f"/page.html?backend={args.backend}&model=/models/{model}&wav=/audio/speech.wav"
                            f"&rate=22050&prove={prove}")
                    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "package_e2e.mjs"), "--root",
                                           str(app), "--page", page, "--models", str(ROOT / "saved_models"),
                                           "--audio", str(root)], capture_output=True, text=True, cwd=HARNESS_DIR,
                                          timeout=600)
                    out = json.loads(proc.stdout.strip().splitlines()[-1])
                    if not out.get("ok"):
                        raise SystemExit(f"{model} on {args.backend}: {out.get('name')}: {out.get('message')}")
                    runs.setdefault((model, prove), []).append(out["loadMs"])
                    print(f"{model} proveBackend={prove == '1'}: {out['loadMs']:.0f} ms "
                          f"(placement {out['placement']['providers']})", flush=True)
        for model in MODELS:
            with_proof, without = (statistics.median(runs[(model, p)]) for p in ("1", "0"))
            print(f"{model} on {args.backend}: loadClassifier median {with_proof:.0f} ms with the proof, "
                  f"{without:.0f} ms without (x{with_proof / without:.2f}; {args.repeat} runs each)")


if __name__ == "__main__":
    main()
