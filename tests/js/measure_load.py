"""Figures of the installed ser-export-web in headless Chromium, options on and off side by side
(runs alternating, one process), both committed models:

    python -m tests.js.measure_load --repeat 5          # loadClassifier on WebGPU, proveBackend on/off
    python -m tests.js.measure_load --live --repeat 3   # listen() on wasm, 1 thread: the package's worker,
                                                        # the page's thread, onnxruntime-web's proxy worker

It installs the packed package into a temporary consumer project (as the browser tests do), serves
the committed release, and prints each run and the medians (milliseconds, from the page's clock).
``--live``: 20 s of Chromium's fake microphone per run, hop 0.5 s; the result latency (from the hop's
last sample, in the AudioContext's clock), the longest gap between the page's 10 ms timer ticks
(how long its main thread was blocked), the dropped hops, and the median of each part of the latency
(result.timings: preprocessing, model, VAD, post-processing, messaging).  Not a test: figures for the README, on this machine's noise.
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
    parser.add_argument("--live", action="store_true", help="listen() in the package's worker, on the page's thread "
                        "and in onnxruntime-web's proxy worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = make_consumer(root)
        for f in PAGE.iterdir():
            shutil.copy(f, app / f.name)
        speaker = make_speakers(2, 9)[0]
        write_wav(root / "speech.wav", 0.2 * synthesize(speaker, "angry", clip_rng(9, 0, 0, 1)), sr=22050,
                  subtype="FLOAT")
        if args.live:
            return _live(app, root, args.repeat)
        runs: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for model in MODELS:
                for prove in ("1", "0"):
                    page = (f"/page.html?backend={args.backend}&model=/models/{model}&wav=/audio/speech.wav"
                            f"&rate=22050&prove={prove}")
                    out = _drive(app, page, root)
                    runs.setdefault((model, prove), []).append(out["loadMs"])
                    print(f"{model} proveBackend={prove == '1'}: {out['loadMs']:.0f} ms "
                          f"(placement {out['placement']['providers']})", flush=True)
        for model in MODELS:
            with_proof, without = (statistics.median(runs[(model, p)]) for p in ("1", "0"))
            print(f"{model} on {args.backend}: loadClassifier median {with_proof:.0f} ms with the proof, "
                  f"{without:.0f} ms without (x{with_proof / without:.2f}; {args.repeat} runs each)")


def _drive(app: Path, page: str, audio: Path, *extra: str) -> dict:
    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "package_e2e.mjs"), "--root", str(app), "--page",
                           page, "--models", str(ROOT / "saved_models"), "--audio", str(audio), *extra],
                          capture_output=True, text=True, cwd=HARNESS_DIR, timeout=600)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if not out.get("ok"):
        raise SystemExit(f"{page}: {out.get('name')}: {out.get('message')}")
    return out


#: The live modes compared: the package's worker (the default), the page's thread, onnxruntime-web's proxy worker.
LIVE_MODES = {"worker": "&worker=1", "page thread": "&worker=0", "proxy worker": "&proxy=1"}
#: The parts of a result's latency (result.timings), milliseconds.
LIVE_PARTS = ("preprocessMs", "modelMs", "vadMs", "postprocessMs", "messagingMs")


def _live(app: Path, root: Path, repeat: int, seconds: float = 20.0) -> None:
    import librosa
    import numpy as np

    speaker = make_speakers(2, 9)[0]
    y = np.concatenate([synthesize(speaker, e, clip_rng(9, 1, i, 0)) for i, e in enumerate(["sad", "angry"] * 6)])
    y = librosa.resample(0.2 * y / np.abs(y).max(), orig_sr=22050, target_sr=48000)
    mic = write_wav(root / "mic.wav", y, sr=48000, subtype="PCM_16")
    figures: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _ in range(repeat):
        for model in MODELS:
            for mode, query in LIVE_MODES.items():
                out = _drive(app, f"/page.html?backend=wasm&threads=1&model=/models/{model}&seconds={seconds}&hop=0.5"
                                  f"{query}", root, "--mic", str(mic))
                timeline = out["timeline"]
                latency = [r["latencyMs"] for r in timeline]
                parts = {k: statistics.median(r["timings"][k] for r in timeline) for k in LIVE_PARTS}
                f = figures.setdefault((model, mode), {"latency": [], "max": [], "gap": [], "dropped": [],
                                                       **{k: [] for k in LIVE_PARTS}})
                f["latency"].append(statistics.median(latency))
                f["max"].append(max(latency))
                f["gap"].append(out["mainThreadLongestGapMs"])
                f["dropped"].append(out["dropped"])
                for k, v in parts.items():
                    f[k].append(v)
                print(f"{model} {mode}: {len(timeline)} results, {out['dropped']} dropped, latency median "
                      f"{statistics.median(latency):.0f} ms, max {max(latency):.0f} ms, main thread's longest gap "
                      f"{out['mainThreadLongestGapMs']:.0f} ms; parts " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()),
                      flush=True)
    for model in MODELS:
        for mode in LIVE_MODES:
            f = figures[(model, mode)]
            print(f"{model} on wasm, 1 thread, {mode}: result latency median {statistics.median(f['latency']):.0f} ms "
                  f"(max {max(f['max']):.0f}), main thread's longest gap median {statistics.median(f['gap']):.0f} ms, "
                  f"dropped {sum(f['dropped'])}; medians per part: "
                  + ", ".join(f"{k} {statistics.median(f[k]):.1f}" for k in LIVE_PARTS)
                  + f" ({repeat} runs of {seconds:g} s)")


if __name__ == "__main__":
    main()
