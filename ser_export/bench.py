"""``python -m ser_export bench``: front-end and model latency, side by side in one run.

Median milliseconds per clip (batch 1) at 1 and 2 threads for librosa's mel
spectrogram, each front-end (Conv2d STFT, four-step FFT) and each full model with
each front-end, in PyTorch, onnxruntime-python and onnxruntime-web (wasm, in
Node, and in headless Chromium with onnxruntime-web's all-backends and wasm-only
builds), plus file sizes and the ratios front-end/librosa and
onnxruntime-web/onnxruntime-python; the release's models and every variant its
manifest lists are also set against onnxruntime-python's float model and int8
variant.  With Chromium, ser-export-web's live mode (``bench_live``: latency,
the page's longest main-thread gap, dropped hops, the parts of the latency) in
one run per model, and what a page downloads per model and variant (model,
VAD, onnxruntime-web, the package), raw and brotli.  Every timing comes from
this one run on this one machine; compare ratios, not absolute numbers, across
machines.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import contract
from .export.onnx_export import export_onnx, serialize
from .export.model_file import open_model
from .export.recover import model_from_onnx
from .frontend import IMPLEMENTATIONS, build_frontend
from .errors import SerExportError
from .io import atomic_write_text
from .models import VoiceEmotionCnn

RUNTIMES = ("pytorch", "onnxruntime-python", "onnxruntime-web-wasm")
#: Timed in headless Chromium (wasm) for the release's own models and their variants, when Chromium is installed:
#: the page loading onnxruntime-web's all-backends build (what the gate's runners and the demo's WebGL page load)
#: and the page loading its wasm-only build (what ser-export-web loads for wasm), bundle file by runtime.
BROWSER_RUNTIMES = {"chromium-wasm": "ort.all.min.mjs", "chromium-wasm/ort.wasm": "ort.wasm.min.mjs"}


def _median_ms(fn, warmup: int, repeat: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(times), times


def _time_librosa(y: np.ndarray, params, threads: int, warmup: int, repeat: int) -> float:
    import librosa
    from threadpoolctl import threadpool_limits

    def run():
        mel = librosa.feature.melspectrogram(y=y, sr=params.sr, n_fft=params.n_fft, hop_length=params.hop_length,
                                             n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax_hz,
                                             center=params.center, pad_mode=params.pad_mode)
        librosa.power_to_db(mel, ref=np.max, amin=params.log.amin, top_db=params.log.top_db)

    with threadpool_limits(threads):
        return _median_ms(run, warmup, repeat)[0]


def _time_torch(module: torch.nn.Module, x: np.ndarray, threads: int, warmup: int, repeat: int) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)
    try:
        with torch.no_grad():
            return _median_ms(lambda: module(xt), warmup, repeat)[0]
    finally:
        torch.set_num_threads(previous)


def _time_ort(path: Path, x: np.ndarray, threads: int, warmup: int, repeat: int) -> float:
    from .ortsession import cpu_session

    session = cpu_session(str(path), threads=threads)
    feeds = {session.get_inputs()[0].name: x}
    return _median_ms(lambda: session.run(None, feeds), warmup, repeat)[0]


def _time_web(runner, path: Path, x: np.ndarray, warmup: int, repeat: int) -> tuple[float, float]:
    """Median ms per run and the ms ``InferenceSession.create`` took, in a Node or Chromium harness."""
    runner.activate(path, [contract.OUTPUT_NAME])
    return statistics.median(runner.bench(x, warmup=warmup, repeat=repeat)), runner.last_load_ms


@dataclasses.dataclass
class Subject:
    """Something to time: a torch module and its exported file."""

    name: str        # e.g. "frontend/fft" or "alexnet/conv2d"
    kind: str        # "frontend" or "model"
    frontend: str
    module: torch.nn.Module | None   # None: a reduced-precision variant (no PyTorch module)
    path: Path


def make_subjects(release_dir: Path, work: Path, archs: Sequence[str]) -> list[Subject]:
    """Front-ends alone and the release models re-exported with every front-end."""
    subjects = []
    models, metadata = {}, {}
    for arch in archs:
        proto = open_model(release_dir / contract.MODEL_FILES[arch], folder=release_dir).proto
        models[arch] = model_from_onnx(proto)
        metadata[arch] = list(proto.metadata_props)
    base_params = next(iter(models.values())).frontend_params
    for impl in IMPLEMENTATIONS:
        params = dataclasses.replace(base_params, implementation=impl)
        fe = build_frontend(params).eval()
        out = work / f"frontend_{impl}.onnx"
        out.write_bytes(serialize(export_onnx(fe)))
        subjects.append(Subject(f"frontend/{impl}", "frontend", impl, fe, out))
        for arch, trained in models.items():
            net = VoiceEmotionCnn(arch, trained.labels, params).eval()
            net.load_state_dict(trained.state_dict())
            out = work / f"{arch}_{impl}.onnx"
            exported = export_onnx(net)
            if impl == trained.frontend_params.implementation:  # the release's own graph: its bytes, metadata too
                del exported.metadata_props[:]
                exported.metadata_props.extend(metadata[arch])
            out.write_bytes(serialize(exported))
            subjects.append(Subject(f"{arch}/{impl}", "model", impl, net, out))
            if impl == trained.frontend_params.implementation:
                for name, path in release_variants(release_dir, arch):
                    subjects.append(Subject(f"{arch}/{impl}.{name}", "variant", impl, None, path))
    return subjects


def release_variants(release_dir: Path, arch: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of each variant the release's manifest lists for ``arch`` (read through the manifest's
    checks; files opened through the release-file guard)."""
    from .manifest import Manifest

    try:
        entry = Manifest.read(release_dir).models.get(arch)
    except SerExportError:
        return []
    if entry is None:
        return []
    out = []
    for name, v in (entry.raw.get("variants") or {}).items():
        open_model(Path(release_dir) / v["file"], folder=release_dir)  # refuses a file that is not a sound model
        out.append((name, Path(release_dir) / v["file"]))
    return out


def download_sizes(path: Path) -> dict:
    """File size, gzip (level 9) and brotli (quality 9, window 24: quality 11 takes minutes on 46 MB) transfer
    sizes of ``path``, in bytes."""
    import gzip

    import brotli

    data = path.read_bytes()
    return {"bytes": len(data), "gzip": len(gzip.compress(data, 9, mtime=0)),
            "brotli": len(brotli.compress(data, quality=9, lgwin=24))}


def _session_ms(path: Path, threads: int, repeat: int) -> float:
    """Median ms to create an onnxruntime-python session of ``path`` (graph optimisation included)."""
    from .ortsession import cpu_session

    data = path.read_bytes()

    def make():
        cpu_session(data, threads=threads)

    return _median_ms(make, 1, repeat)[0]


def run_bench(release_dir: Path = Path("saved_models"), threads: Sequence[int] = (1, 2),
              runtimes: Sequence[str] = RUNTIMES, archs: Sequence[str] = ("alexnet", "resnet18"),
              warmup: int = 10, repeat: int = 20, progress: bool = True, live_seconds: float = 20.0) -> dict:
    """Every figure of the bench, in one run.  ``live_seconds``: audio time of each live run (0: no live run)."""
    from parity.cases import golden_specs, render
    from parity.runners.base import RunnerError
    from parity.runners.node import ChromiumWasmRunner, OrtWebWasmRunner, find_chromium

    try:
        find_chromium()
        browser = None
    except RunnerError as exc:  # the figures that need Chromium are left out, and the report says why
        browser = str(exc)

    x = render(golden_specs()[0])[None]  # one synthetic-speech clip, RMS-normalised
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="ser_export_bench_") as tmp:
        subjects = make_subjects(Path(release_dir), Path(tmp), archs)
        params = model_from_onnx(open_model(Path(release_dir) / contract.MODEL_FILES[archs[0]],
                                            folder=release_dir).proto).frontend_params
        for t in threads:
            ms = _time_librosa(x[0], params, t, warmup, repeat)
            results.append({"subject": "librosa", "kind": "reference", "frontend": "numpy", "runtime": "librosa",
                            "threads": t, "median_ms": round(ms, 3)})
            web = OrtWebWasmRunner(threads=t) if "onnxruntime-web-wasm" in runtimes else None
            pages = {} if browser is not None else {
                name: ChromiumWasmRunner(threads=t, bundle="all" if file == "ort.all.min.mjs" else "wasm")
                for name, file in BROWSER_RUNTIMES.items()}
            try:
                for s in subjects:
                    released = s.kind == "variant" or (s.kind == "model" and s.frontend == params.implementation)
                    for runtime in (*runtimes, *BROWSER_RUNTIMES):
                        if (runtime == "pytorch" and s.module is None) or (
                                runtime in BROWSER_RUNTIMES and (runtime not in pages or not released)):
                            continue
                        row = {"subject": s.name, "kind": s.kind, "frontend": s.frontend, "runtime": runtime,
                               "threads": t, "released": released}
                        if runtime == "pytorch":
                            ms = _time_torch(s.module, x, t, warmup, repeat)
                        elif runtime == "onnxruntime-python":
                            ms = _time_ort(s.path, x, t, warmup, repeat)
                        else:
                            ms, load_ms = _time_web(pages.get(runtime, web), s.path, x, warmup, repeat)
                            row["session_ms"] = round(load_ms, 2)
                            if runtime in BROWSER_RUNTIMES:
                                row["bundle"] = BROWSER_RUNTIMES[runtime]
                        results.append(row | {"median_ms": round(ms, 3)})
                        if progress:
                            print(f"  {s.name:<20} {runtime:<22} {t} thread(s): {ms:8.2f} ms", file=sys.stderr)
                web_info = web.info() if web else None
            finally:
                for r in (web, *pages.values()):
                    if r:
                        r.deactivate()
        sizes = {s.name: s.path.stat().st_size for s in subjects}
        released_subjects = {s.name: s.path for s in subjects
                             if s.kind == "variant" or (s.kind == "model" and s.frontend == params.implementation)}
        live, page = _page_figures(Path(release_dir), archs, released_subjects, browser, live_seconds, progress)
        downloads = {s.name: download_sizes(s.path) | {"session_ms_onnxruntime_python": round(
            _session_ms(s.path, 1, max(3, repeat // 4)), 2)} for s in subjects
            if s.kind == "variant" or (s.kind == "model" and s.frontend == params.implementation)}
    return {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": __import__("os").cpu_count()},
            "clip": "parity.cases.golden_specs()[0] (synthetic speech, RMS 1), batch 1",
            "warmup": warmup, "repeat": repeat, "results": results, "file_bytes": sizes, "downloads": downloads,
            "onnxruntime_web": web_info, "ratios": ratios(results), "live": live, "page_downloads": page,
            "chromium": browser or ("timed: the release's models and variants on chromium-wasm, with "
                                    + " and ".join(f"{f} ({r})" for r, f in BROWSER_RUNTIMES.items()))}


def _page_figures(release_dir: Path, archs: Sequence[str], subjects: dict[str, Path], browser: str | None,
                  live_seconds: float, progress: bool) -> tuple[dict, dict]:
    """The live figures (or why there are none) and the page downloads per released model and variant."""
    from .bench_live import live_figures, page_downloads

    live: dict
    if browser is not None:
        live = {"skipped": browser}
    elif live_seconds <= 0:
        live = {"skipped": "--live-seconds 0"}
    else:
        from parity.runners.node import find_chromium

        if progress:
            print(f"  live mode in Chromium, {live_seconds:g} s per model ...", file=sys.stderr)
        try:
            live = live_figures(release_dir, archs, find_chromium(), seconds=live_seconds)
        except SerExportError as exc:
            live = {"skipped": str(exc)}
    page = {"ort_files_from": "the live run" if "ort_files" in live else f"not measured ({live['skipped']})",
            "subjects": page_downloads(release_dir, subjects, live.get("ort_files", []))}
    return live, page


#: The released float model of a variant's subject ("alexnet/fft.int8" -> "alexnet/fft").
def _parent(subject: str) -> str:
    return subject.split(".", 1)[0]


def ratios(results: list[dict]) -> list[dict]:
    """Front-end / librosa, onnxruntime-web / onnxruntime-python, per subject and threads; and each released
    model and variant in every runtime / onnxruntime-python's float parent and its int8 variant (same threads)."""
    by = {(r["subject"], r["runtime"], r["threads"]): r["median_ms"] for r in results}
    released = {r["subject"] for r in results if r.get("released")}
    out = []
    for (subject, runtime, t), ms in sorted(by.items()):
        if subject.startswith("frontend/"):
            lib = by.get(("librosa", "librosa", t))
            if lib:
                out.append({"ratio": "frontend/librosa", "subject": subject, "runtime": runtime, "threads": t,
                            "value": round(ms / lib, 3)})
        if runtime == "onnxruntime-web-wasm":
            py = by.get((subject, "onnxruntime-python", t))
            if py:
                out.append({"ratio": "onnxruntime-web/onnxruntime-python", "subject": subject, "runtime": runtime,
                            "threads": t, "value": round(ms / py, 3)})
        if runtime in BROWSER_RUNTIMES:  # in the page vs onnxruntime-web in Node, same threads
            node = by.get((subject, "onnxruntime-web-wasm", t))
            if node:
                out.append({"ratio": "chromium/node", "subject": subject, "runtime": runtime, "threads": t,
                            "value": round(ms / node, 3)})
        if subject in released and runtime != "pytorch":
            for kind, ref in (("x onnxruntime-python float", _parent(subject)),
                              ("x onnxruntime-python int8", f"{_parent(subject)}.int8")):
                py = by.get((ref, "onnxruntime-python", t))
                if py and (ref, "onnxruntime-python") != (subject, runtime):
                    out.append({"ratio": kind, "subject": subject, "runtime": runtime, "threads": t,
                                "value": round(ms / py, 3)})
    return out


def format_bench(report: dict) -> str:
    from .bench_live import format_downloads, format_live

    res = report["results"]
    threads = sorted({r["threads"] for r in res})
    runtimes = [r for r in (*RUNTIMES, *BROWSER_RUNTIMES) if any(x["runtime"] == r for x in res)]
    lines = [f"median ms per clip (batch 1), {report['repeat']} runs after {report['warmup']} warm-up; "
             f"{report['machine']['cpus']} CPUs"]
    header = f"{'subject':<20}" + "".join(f"{rt[:22] + f' {t}t':>26}" for t in threads for rt in runtimes)
    lines.append(header)
    lib = "".join(f"{next(r['median_ms'] for r in res if r['subject'] == 'librosa' and r['threads'] == t):>26.2f}"
                  + " " * 26 * (len(runtimes) - 1) for t in threads)
    lines.append(f"{'librosa (numpy)':<20}" + lib)
    for subject in dict.fromkeys(r["subject"] for r in res if r["subject"] != "librosa"):
        row = f"{subject:<20}"
        for t in threads:
            for rt in runtimes:
                v = next((r["median_ms"] for r in res if r["subject"] == subject and r["runtime"] == rt
                          and r["threads"] == t), None)
                row += f"{'-' if v is None else f'{v:.2f}':>26}"
        lines.append(row)
    lines.append("file sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in report["file_bytes"].items()))
    for k, d in report.get("downloads", {}).items():
        web = [f"{r['runtime']} {r['threads']}t {r['session_ms']:.0f} ms" for r in res
               if r["subject"] == k and "session_ms" in r]
        lines.append(f"download {k}: {d['bytes'] / 1e6:.2f} MB, gzip {d['gzip'] / 1e6:.2f} MB, brotli "
                     f"{d['brotli'] / 1e6:.2f} MB; session creation: onnxruntime-python "
                     f"{d['session_ms_onnxruntime_python']:.0f} ms, {', '.join(web) or 'no web runtime'}")
    lines += format_live(report.get("live") or {"skipped": "not in this report"})
    page = report.get("page_downloads") or {"subjects": {}}
    if page["subjects"]:
        lines.append(f"what a wasm page fetches (onnxruntime-web files: {page['ort_files_from']}):")
        lines += ["  " + line for line in format_downloads(page["subjects"])]
    lines.append("ratios:")
    for r in report["ratios"]:
        lines.append(f"  {r['ratio']:<36} {r['subject']:<20} {r['runtime']:<22} {r['threads']}t  {r['value']:.2f}")
    return "\n".join(lines)


def render_markdown(report: dict, threads: int = 1) -> str:
    """The docs' bench table (``docs_blocks.page("bench")``): median ms per clip at ``threads`` threads,
    the ratios, file sizes."""
    res = report["results"]

    def ms(subject, runtime):
        return next((r["median_ms"] for r in res if r["subject"] == subject and r["runtime"] == runtime
                     and r["threads"] == threads), None)

    lib = ms("librosa", "librosa")
    names = {"frontend": "front-end", "alexnet": "AlexNet", "resnet18": "ResNet18"}
    lines = ["| | librosa (numpy) | onnxruntime-python | onnxruntime-web wasm (Node) | file |", "|---|---|---|---|---|"]
    for subject in dict.fromkeys(r["subject"] for r in res if r["subject"] != "librosa"):
        kind, _, frontend = subject.partition("/")
        ort_ms, web_ms = ms(subject, "onnxruntime-python"), ms(subject, "onnxruntime-web-wasm")
        if kind == "frontend":
            ratio = f" ({web_ms / lib:.1f} x librosa)" if web_ms and lib else ""
            first = f"{lib:.2f}" if lib else ""
        else:
            ratio = f" ({web_ms / ort_ms:.1f} x ORT-python)" if web_ms and ort_ms else ""
            first = ""
        size = report["file_bytes"].get(subject)
        lines.append(f"| {names.get(kind, kind)}, `{frontend}` | {first} | "
                     f"{'-' if ort_ms is None else f'{ort_ms:.2f}'} | "
                     f"{'-' if web_ms is None else f'{web_ms:.2f}'}{ratio} | "
                     f"{'-' if size is None else f'{size / 1e6:.1f} MB'} |")
    return "\n".join(lines) + "\n"


def write_bench(report: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
