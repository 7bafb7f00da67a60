"""The benchmark command prints and writes every figure (no timing assertions: machines are noisy)."""
import json

import pytest

from tests.e2e import run_cli


@pytest.mark.node
def test_bench_reports_every_subject_runtime_and_ratio(quick_release, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(quick_release["out"]), "--threads", "1", "--repeat", "2", "--warmup", "1",
                   "--arch", "alexnet", "--json", str(out), "--live-seconds", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    subjects = {(r["subject"], r["runtime"]) for r in report["results"]}
    for s in ("frontend/conv2d", "frontend/fft", "alexnet/conv2d", "alexnet/fft"):
        for rt in ("pytorch", "onnxruntime-python", "onnxruntime-web-wasm"):
            assert (s, rt) in subjects
    assert ("librosa", "librosa") in subjects
    kinds = {r["ratio"] for r in report["ratios"]}
    timed_in_chromium = report["chromium"].startswith("timed")
    assert kinds == {"frontend/librosa", "onnxruntime-web/onnxruntime-python", "x onnxruntime-python float",
                     "x onnxruntime-python int8"} | ({"chromium/node"} if timed_in_chromium else set())
    assert all(r["median_ms"] > 0 for r in report["results"])
    assert report["file_bytes"]["alexnet/fft"] < report["file_bytes"]["alexnet/conv2d"]
    assert "ratios:" in proc.stdout
    # the release's variants: latency and session creation per runtime, and download sizes per file
    for name in ("alexnet/fft.fp16", "alexnet/fft.int8"):
        for rt in ("onnxruntime-python", "onnxruntime-web-wasm"):
            assert (name, rt) in subjects
        assert (name, "pytorch") not in subjects  # a variant has no PyTorch module
    sizes = report["downloads"]
    manifest = json.loads((quick_release["out"] / "manifest.json").read_text())
    released = {"alexnet/fft"} | {f"alexnet/fft.{v}" for v in manifest["models"]["alexnet"]["variants"]}
    assert set(sizes) == released and {"alexnet/fft.fp16", "alexnet/fft.int8"} <= released
    for name, d in sizes.items():
        assert 0 < d["brotli"] < d["bytes"] and 0 < d["gzip"] < d["bytes"] and d["session_ms_onnxruntime_python"] > 0
        assert f"download {name}: " in proc.stdout
    assert sizes["alexnet/fft.int8"]["bytes"] < sizes["alexnet/fft.fp16"]["bytes"] < sizes["alexnet/fft"]["bytes"]
    web = [r for r in report["results"] if r["runtime"].startswith(("onnxruntime-web-wasm", "chromium-wasm"))]
    assert all(r["session_ms"] > 0 for r in web)
    if timed_in_chromium:  # in the page with each onnxruntime-web build, beside Node at the same threads
        for runtime, bundle in (("chromium-wasm", "ort.all.min.mjs"), ("chromium-wasm/ort.wasm", "ort.wasm.min.mjs")):
            rows = [r for r in report["results"] if r["runtime"] == runtime]
            assert {r["subject"] for r in rows} == set(sizes) and {r["bundle"] for r in rows} == {bundle}
            assert {r["subject"] for r in report["ratios"] if r["ratio"] == "chromium/node"
                    and r["runtime"] == runtime} == set(sizes)
    else:  # no Chromium on this machine: the report says so (CI installs it, so there the rows are checked)
        assert "chromium" in report["chromium"].lower()
    # every released model and variant in every runtime beside onnxruntime-python's float model and int8 variant
    by = {(r["ratio"], r["subject"], r["runtime"]): r["value"] for r in report["ratios"]}
    ms = {(r["subject"], r["runtime"]): r["median_ms"] for r in report["results"]}
    web_runtimes = ["onnxruntime-web-wasm"] + (["chromium-wasm", "chromium-wasm/ort.wasm"] if timed_in_chromium else [])
    for name in released:
        for rt in web_runtimes:
            assert by[("x onnxruntime-python float", name, rt)] == round(ms[(name, rt)] / ms[("alexnet/fft", "onnxruntime-python")], 3)
            assert by[("x onnxruntime-python int8", name, rt)] == round(ms[(name, rt)] / ms[("alexnet/fft.int8", "onnxruntime-python")], 3)
    assert ("x onnxruntime-python float", "alexnet/fft", "onnxruntime-python") not in by  # not a model against itself
    assert not any(s == "alexnet/conv2d" for _, s, _ in by if _ .startswith("x "))  # not released: no such ratio
    # what a page fetches per model and variant: the model, the VAD, the package (and onnxruntime-web's files)
    page = report["page_downloads"]["subjects"]
    assert set(page) == released
    for name, d in page.items():
        assert d["parts"]["model"]["bytes"] == sizes[name]["bytes"], name
        assert d["parts"]["vad"]["bytes"] == (quick_release["out"] / "silero_vad.onnx").stat().st_size
        assert all(0 < p["brotli"] < p["bytes"] for p in d["parts"].values()), d
        assert d["bytes"] == sum(p["bytes"] for p in d["parts"].values()) and d["brotli"] < d["bytes"]
        assert f"page fetches for {name}: " in proc.stdout
    live = report["live"]
    if timed_in_chromium:  # live mode in the page: one run, the package's worker, every part timed
        f = live["models"]["alexnet"]
        assert f["results"] >= 1 and f["thread"] == ["worker"] and f["latency_max_ms"] >= f["latency_median_ms"] > 0
        assert set(f["parts_median_ms"]) == {"preprocessMs", "modelMs", "vadMs", "postprocessMs", "messagingMs"}
        assert f["main_thread_longest_gap_ms"] > 0 and f["dropped"] >= 0 and "live mode in Chromium" in proc.stdout
        wasm = [p for p in page["alexnet/fft"]["parts"] if p.startswith("onnxruntime-web/")]
        assert any(p.endswith(".wasm") for p in wasm) and any(p.endswith(".mjs") for p in wasm), wasm
    else:
        assert "chromium" in live["skipped"].lower() and "live mode: not measured" in proc.stdout


def test_markdown_table_ratios_and_sizes():
    from ser_export.bench import render_markdown

    row = lambda subject, runtime, ms: {"subject": subject, "runtime": runtime, "threads": 1, "median_ms": ms}  # noqa: E731
    report = {"results": [row("librosa", "librosa", 2.0), row("frontend/fft", "onnxruntime-python", 1.0),
                          row("frontend/fft", "onnxruntime-web-wasm", 5.0), row("alexnet/fft", "onnxruntime-python", 4.0),
                          row("alexnet/fft", "onnxruntime-web-wasm", 10.0)],
              "file_bytes": {"frontend/fft": 700_000, "alexnet/fft": 17_229_987}}
    lines = render_markdown(report).splitlines()
    assert lines[2] == "| front-end, `fft` | 2.00 | 1.00 | 5.00 (2.5 x librosa) | 0.7 MB |"
    assert lines[3] == "| AlexNet, `fft` |  | 4.00 | 10.00 (2.5 x ORT-python) | 17.2 MB |"
