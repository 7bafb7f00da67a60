"""The page's side of ``python -m ser_export bench``: live mode in headless Chromium, and what a page downloads.

Live: ser-export-web's ``listen()`` on Chromium's fake microphone (synthetic speech), wasm at 1 thread,
hop 0.5 s, one run per model: the result latency (median and max, from the hop's last sample in the
AudioContext's clock), the longest gap between the page's 10 ms timer ticks (how long its main thread
was blocked), the dropped hops, the median of each part of the latency (``result.timings``), and the
onnxruntime-web files the page fetched.  The page is the package tests' consumer page
(``tests/js/package_page``), served with the working tree's package and the harness's onnxruntime-web.

Downloads: per model and variant, what that page fetches for wasm: the model, the VAD, the
onnxruntime-web files of the live run, and the package's modules, raw and brotli.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from . import contract
from .errors import SerExportError
from .io import loads_json
from .jsenv import HARNESS_DIR, find_node, ort_web_dir

PACKAGE_DIR = HARNESS_DIR / "packages" / "ser-export-web"
#: The consumer page the package's browser tests drive (``window.result`` holds the live timeline).
PAGE_DIR = HARNESS_DIR.parent / "tests" / "js" / "package_page"
#: The parts of a live result's latency (``result.timings``), milliseconds.
LIVE_PARTS = ("preprocessMs", "modelMs", "vadMs", "postprocessMs", "messagingMs")
VAD_FILE = "silero_vad.onnx"


def _mic_wav(path: Path, seconds: float) -> Path:
    """``seconds`` (+ 3) of synthetic speech of changing emotions, 48 kHz PCM (what Chromium's fake microphone plays)."""
    import librosa
    import soundfile as sf

    from .data.synthetic import clip_rng, make_speakers, synthesize

    speaker = make_speakers(2, 9)[0]
    emotions = ["sad", "angry", "happy", "neutral"]
    clips, total, i = [], 0, 0
    while total < (seconds + 3) * contract.SAMPLE_RATE:
        clips.append(synthesize(speaker, emotions[i % len(emotions)], clip_rng(9, 1, i % len(emotions), i)))
        total += len(clips[-1])
        i += 1
    y = np.concatenate(clips)
    y = librosa.resample(0.2 * y / np.abs(y).max(), orig_sr=contract.SAMPLE_RATE, target_sr=48000)
    sf.write(str(path), y, 48000, subtype="PCM_16")
    return path


def _page_root(root: Path) -> Path:
    """A folder serving the consumer page with the package and onnxruntime-web under node_modules/ (links)."""
    if not (PAGE_DIR / "page.html").is_file():
        raise SerExportError(f"{PAGE_DIR}: the package's consumer page is missing (a source checkout has it)")
    app = root / "app"
    (app / "node_modules").mkdir(parents=True)
    for f in PAGE_DIR.iterdir():
        shutil.copy(f, app / f.name)
    (app / "node_modules" / "ser-export-web").symlink_to(PACKAGE_DIR, target_is_directory=True)
    (app / "node_modules" / "onnxruntime-web").symlink_to(ort_web_dir(), target_is_directory=True)
    return app


def _drive(app: Path, page: str, models: Path, audio: Path, chromium: str, mic: Path) -> dict:
    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "package_e2e.mjs"), "--root", str(app),
                           "--page", page, "--models", str(models), "--audio", str(audio), "--mic", str(mic),
                           "--chromium", chromium], capture_output=True, text=True, cwd=HARNESS_DIR, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SerExportError(f"the live page did not run ({(proc.stderr.strip().splitlines() or ['no output'])[-1]})")
    out = loads_json(lines[-1], "the live page's last output line")
    if not out.get("ok"):
        raise SerExportError(f"the live page failed: {out.get('name')}: {out.get('message')}")
    return out


def live_figures(release_dir: Path, archs: Iterable[str], chromium: str, seconds: float = 20.0,
                 hop_seconds: float = 0.5) -> dict:
    """One live run per model in headless Chromium (wasm, 1 thread, the package's defaults).

    Parameters
    ----------
    release_dir : the release folder (models and ``silero_vad.onnx``)
    archs : the architectures, as in ``contract.MODEL_FILES``
    chromium : the Chromium binary
    seconds : audio time of each run (the page stops at the first result ending at or after it)
    hop_seconds : seconds between results

    Returns
    -------
    dict
        ``{"seconds", "hop_seconds", "threads": 1, "backend": "wasm", "models": {arch: figures},
        "ort_files": [file names]}``; figures: ``results``, ``hops``, ``dropped``, ``latency_median_ms``,
        ``latency_max_ms``, ``main_thread_longest_gap_ms``, ``thread`` (where the results were computed),
        ``parts_median_ms`` (``LIVE_PARTS``).
    """
    report = {"seconds": seconds, "hop_seconds": hop_seconds, "threads": 1, "backend": "wasm", "models": {},
              "ort_files": []}
    with tempfile.TemporaryDirectory(prefix="ser_export_live_") as tmp:
        root = Path(tmp)
        app = _page_root(root)
        mic = _mic_wav(root / "mic.wav", seconds)
        for arch in archs:
            page = (f"/page.html?backend=wasm&threads=1&model=/models/{contract.MODEL_FILES[arch]}"
                    f"&seconds={seconds}&hop={hop_seconds}")
            out = _drive(app, page, Path(release_dir).resolve(), root, chromium, mic)
            timeline = out["timeline"]
            if not timeline:
                raise SerExportError(f"{arch}: the live page gave no result in {seconds} s")
            latency = [r["latencyMs"] for r in timeline]
            report["models"][arch] = {
                "results": len(timeline), "hops": out["hops"], "dropped": out["dropped"],
                "latency_median_ms": round(statistics.median(latency), 2), "latency_max_ms": round(max(latency), 2),
                "main_thread_longest_gap_ms": round(out["mainThreadLongestGapMs"], 2),
                "thread": sorted({r["thread"] for r in timeline}),
                "parts_median_ms": {k: round(statistics.median(r["timings"][k] for r in timeline), 2)
                                    for k in LIVE_PARTS}}
            report["ort_files"] = sorted(set(report["ort_files"]) | set(out["ortFiles"]))
    return report


def _sizes(path: Path, cache: dict) -> dict:
    """Raw and brotli (quality 9, window 24) bytes of ``path``, computed once per file."""
    import brotli

    if path not in cache:
        data = path.read_bytes()
        cache[path] = {"bytes": len(data), "brotli": len(brotli.compress(data, quality=9, lgwin=24))}
    return cache[path]


def page_downloads(release_dir: Path, subjects: dict[str, Path], ort_files: Iterable[str]) -> dict:
    """What a wasm page with ser-export-web fetches for each model or variant.

    Parameters
    ----------
    release_dir : the release folder (its ``silero_vad.onnx`` goes with every model)
    subjects : name (e.g. ``"alexnet/fft.int8"``) -> model file
    ort_files : the onnxruntime-web ``dist/`` files the page fetched (from the live run)

    Returns
    -------
    dict
        name -> ``{"parts": {part: {"bytes", "brotli"}}, "bytes", "brotli"}`` (the totals); the parts are
        ``model``, ``vad``, ``onnxruntime-web/<file>`` and ``ser-export-web`` (every module of its ``src/``).
    """
    cache: dict = {}
    vad = Path(release_dir) / VAD_FILE
    ort = [ort_web_dir() / "dist" / f for f in sorted(ort_files)]
    package = {"bytes": 0, "brotli": 0}
    for f in sorted((PACKAGE_DIR / "src").glob("*.mjs")):
        s = _sizes(f, cache)
        package = {k: package[k] + s[k] for k in package}
    out = {}
    for name, path in subjects.items():
        parts = {"model": _sizes(Path(path), cache)}
        if vad.is_file():
            parts["vad"] = _sizes(vad, cache)
        parts.update({f"onnxruntime-web/{f.name}": _sizes(f, cache) for f in ort})
        parts["ser-export-web"] = package
        out[name] = {"parts": parts, "bytes": sum(p["bytes"] for p in parts.values()),
                     "brotli": sum(p["brotli"] for p in parts.values())}
    return out


def format_live(live: dict) -> list[str]:
    """The live figures as lines of text."""
    if "skipped" in live:
        return [f"live mode: not measured ({live['skipped']})"]
    lines = [f"live mode in Chromium ({live['backend']}, {live['threads']} thread, hop {live['hop_seconds']} s, "
             f"{live['seconds']:g} s of fake microphone, one run):"]
    for arch, f in live["models"].items():
        parts = ", ".join(f"{k.removesuffix('Ms')} {v:.1f}" for k, v in f["parts_median_ms"].items())
        lines.append(f"  {arch:<10} in the {'/'.join(f['thread'])}: {f['results']} results, {f['dropped']} dropped; "
                     f"latency median {f['latency_median_ms']:.0f} ms, max {f['latency_max_ms']:.0f} ms; the page's "
                     f"longest timer gap {f['main_thread_longest_gap_ms']:.0f} ms; medians per part (ms): {parts}")
    return lines


def format_downloads(downloads: dict) -> list[str]:
    """The page downloads as lines of text (MB)."""
    lines = []
    for name, d in downloads.items():
        parts = ", ".join(f"{p} {s['bytes'] / 1e6:.2f}/{s['brotli'] / 1e6:.2f}" for p, s in d["parts"].items())
        lines.append(f"page fetches for {name}: {d['bytes'] / 1e6:.2f} MB, brotli {d['brotli'] / 1e6:.2f} MB "
                     f"(raw/brotli MB: {parts})")
    return lines
