"""onnxruntime-web in headless Chromium: the parity runners and the demo page."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.export.variants import VARIANTS
from ser_export.jsenv import HARNESS_DIR, find_node
from ser_export.predict import predict_file
from tests.conftest import write_wav
from tests.e2e import ROOT, run_cli

pytestmark = pytest.mark.browser

BACKENDS = ["wasm", "webgl", "webgpu"]
#: The post-processing stages on every JS runner: the VAD's frames as streams (the stream stages), then the rest.
POSTPROCESSING_STAGES = ("vad:stream[output]", "vad:decisions[output]", "vad:segments[output]", "speech", "calibrated",
                         "ood")
#: Cases per model for the Chromium gate run (CI: 6, to keep CI within 40 minutes; `SER_EXPORT_BROWSER_EXAMPLES=100 tox -e browser` for more).
EXAMPLES = os.environ.get("SER_EXPORT_BROWSER_EXAMPLES", "6")


@pytest.fixture(scope="module")
def committed_release():
    """The committed release (the browser tests only read it)."""
    return {"out": ROOT / "saved_models"}


def test_browser_runners_pass_the_gate_and_prove_their_backend(committed_release):
    """The release gate on the committed models in Chromium (wasm, WebGL, WebGPU), with the JS
    preprocessing run inside the page; the report and JUnit go to parity-out/ for CI."""
    out = ROOT / "parity-out"
    report = out / "browser-report.json"
    proc = run_cli("verify", str(committed_release["out"]), "--runtimes",
                   "pytorch,onnxruntime-python,chromium-wasm,chromium-webgl,chromium-webgpu", "--examples", EXAMPLES,
                   "--report", str(report), "--junit", str(out / "browser-junit.xml"),
                   # measured 497 s on CI's last run and over 900 s on a fresh clone here (SwiftShader WebGL and
                   # WebGPU): the limit is sized far above both, so a slow machine is not a red CI
                   timeout=3000)
    data = json.loads(report.read_text())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    info = data["runners"]
    assert info["chromium-webgpu"]["placement"]["providers"] == {
        "JsExecutionProvider": info["chromium-webgpu"]["placement"]["providers"]["JsExecutionProvider"]}
    assert info["chromium-wasm"]["placement"]["providers"].keys() == {"CPUExecutionProvider"}
    assert "SwiftShader" in info["chromium-webgl"]["webglRenderer"]
    assert info["chromium-webgpu"]["webgpuAdapter"]["available"] is True
    assert info["chromium-wasm"]["browser"].startswith("chromium")
    stages = {(r["stage"], r["runner"]) for m in data["models"] for r in m["results"]}
    for backend in BACKENDS:
        assert ("logmel_vs_librosa[above_floor]", f"chromium-{backend}") in stages
        assert ("logits", f"chromium-{backend}") in stages
    # the shipped JS preprocessing ran in Chromium's JS engine (once per engine: on its first runner)
    pre = {(r["stage"], r["runner"], r["passed"]) for m in data["models"] for r in m["results"]
           if r["stage"].startswith("js_preprocessing[")}
    assert {r for _, r, _ in pre} == {"chromium-wasm"} and all(ok for _, _, ok in pre)
    assert {"js_preprocessing[44100Hz-stereo-3.3s]", "js_preprocessing[48000Hz-mono-2.1s]"} <= {s for s, _, _ in pre}
    # the shipped post-processing (Silero VAD on wasm, calibration, OOD flag) inside every page, against Python's
    post = {(r["stage"], r["runner"]) for m in data["models"] for r in m["results"]
            if r["stage"].startswith("postprocessing[") and r["passed"]}
    assert post == {(f"postprocessing[{k}]", f"chromium-{b}") for k in POSTPROCESSING_STAGES for b in BACKENDS}
    # every variant, on every Chromium backend it declares (and only those), judged against its float parent
    manifest = json.loads((committed_release["out"] / "manifest.json").read_text())
    for arch, entry in manifest["models"].items():
        assert list(entry["variants"]) == list(VARIANTS)  # every variant the build makes (int8s: wasm only)
        for name, v in entry["variants"].items():
            m = next(m for m in data["models"] if m["arch"] == f"{arch}.{name}")
            ran = {r["runner"] for r in m["results"] if r["applicable"] and r["stage"] == "logits"}
            assert ran == {"chromium-" + b for b in v["declared_backends"]}, (arch, name, ran)
            assert any(r["stage"] == "vs_parent[top1]" and r["passed"] for r in m["results"])


def run_demo(url: str, *args: str) -> dict:
    """What the demo page at ``url`` showed, driven by ``js_harness/test/demo_e2e.mjs`` (``args``: its options);
    the page must finish without an error or a console error."""
    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "demo_e2e.mjs"), "--url", url, *args],
                          capture_output=True, text=True, timeout=600, cwd=HARNESS_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout)
    assert "error" not in shown and shown["consoleErrors"] == [], shown
    return shown


@pytest.fixture(scope="module")
def demo_server(committed_release):
    node = find_node().node
    proc = subprocess.Popen([node, str(HARNESS_DIR / "serve.mjs"), "--models", str(committed_release["out"])],
                            cwd=HARNESS_DIR, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    speaker = make_speakers(2, 5)[0]
    y = np.concatenate([synthesize(speaker, "angry", clip_rng(5, 0, 3, 0)), synthesize(speaker, "sad", clip_rng(5, 0, 2, 1))])
    return write_wav(tmp_path_factory.mktemp("wav") / "speech.wav", 0.2 * y, sr=22050, subtype="FLOAT")


# WebGPU: the demo runs the fp16 variant there (below); the package page test runs both float models there.
@pytest.mark.parametrize("backend", ["wasm", "webgl"])
def test_demo_page_shows_what_onnxruntime_python_predicts(demo_server, committed_release, speech_wav, backend, tmp_path):
    model = "voice_emotion_cnn.onnx"
    shot_dir = Path(os.environ.get("SER_EXPORT_SCREENSHOTS", tmp_path)).resolve()
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / f"demo-{backend}.png"
    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "demo_e2e.mjs"), "--url",
                           f"{demo_server}?backend={backend}&model=/models/{model}", "--file", str(speech_wav),
                           "--screenshot", str(shot)], capture_output=True, text=True, timeout=600, cwd=HARNESS_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout)
    assert "error" not in shown, shown
    assert shown["consoleErrors"] == [], shown["consoleErrors"]
    expected = predict_file(speech_wav, committed_release["out"] / model)
    probs = {b["label"]: b["prob"] for b in shown["shown"]["bars"]}
    assert list(probs) == list(expected.labels)
    tol = 1e-4 if backend == "wasm" else 2e-3  # GPU backends: float32 shader arithmetic (SwiftShader)
    np.testing.assert_allclose([probs[l] for l in expected.labels], expected.probabilities, atol=tol)
    assert shown["shown"]["top"] == expected.top and shown["backend"] == backend
    assert len(shown["windows"]) == len(expected.window_starts_s)
    spec = shown["shown"]["spectrogram"]
    assert (spec["width"], spec["height"]) == (91, 128) and spec["litPixels"] > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("variant, backend", [("int8", "wasm"), ("fp16", "webgpu")])
def test_demo_page_runs_a_variant_as_predict_does(demo_server, committed_release, speech_wav, variant, backend):
    from ser_export.predict import variant_path

    model = variant_path(committed_release["out"] / "voice_emotion_cnn.onnx", variant)
    shown = run_demo(f"{demo_server}?backend={backend}&model=/models/{model.name}", "--file", str(speech_wav))
    expected = predict_file(speech_wav, committed_release["out"] / "voice_emotion_cnn.onnx", variant=variant)
    probs = {b["label"]: b["prob"] for b in shown["shown"]["bars"]}
    np.testing.assert_allclose([probs[l] for l in expected.labels], expected.probabilities,
                               atol=1e-4 if backend == "wasm" else 2e-3)
    assert shown["shown"]["top"] == expected.top and shown["model"].endswith(model.name)
    # the page says where the nodes ran, and how that is known (on WebGPU: onnxruntime's placement log)
    provider = {"wasm": "CPUExecutionProvider", "webgpu": "WebGpuExecutionProvider"}[backend]
    assert shown["placement"]["proven"] is True and list(shown["placement"]["providers"]) == [provider]
    assert provider in shown["shown"]["contract"] and shown["placement"]["source"] in shown["shown"]["contract"]


def test_demo_page_refuses_a_variant_on_a_backend_it_does_not_declare(demo_server, committed_release, speech_wav):
    manifest = json.loads((committed_release["out"] / "manifest.json").read_text())
    v = manifest["models"]["alexnet"]["variants"]["int8"]
    assert "webgl" not in v["declared_backends"]
    proc = subprocess.run([find_node().node, str(HARNESS_DIR / "test" / "demo_e2e.mjs"), "--url",
                           f"{demo_server}?backend=webgl&model=/models/{v['file']}", "--expect-error"],
                          capture_output=True, text=True, timeout=600, cwd=HARNESS_DIR)
    shown = json.loads(proc.stdout)
    assert shown["state"] == "error" and shown["consoleErrors"] == [], shown
    assert f"{v['file']}: this variant runs on wasm and webgpu, not webgl" in shown["error"], shown


def test_check_browser_names_chromium():
    proc = run_cli("check-browser")
    assert proc.returncode == 0 and proc.stdout.startswith("chromium: ")


def test_check_browser_without_chromium_says_how_to_install(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path), SER_EXPORT_CHROMIUM=str(tmp_path / "none"))
    import sys

    proc = subprocess.run([sys.executable, "-m", "ser_export", "check-browser"], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install -y chromium" in lines[0]


def test_demo_page_names_a_truncated_or_foreign_model_without_console_errors(committed_release, tmp_path):
    """The demo reads model files as untrusted: a truncated model and one without our metadata give
    one clear message naming the file on the page, and no exception in the console."""
    import shutil

    import onnx
    from onnx import TensorProto, helper

    models = tmp_path / "models"
    models.mkdir()
    data = (committed_release["out"] / "voice_emotion_cnn.onnx").read_bytes()
    (models / "truncated.onnx").write_bytes(data[: len(data) // 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph), str(models / "foreign.onnx"))
    manifest = json.loads((committed_release["out"] / "manifest.json").read_text())
    entry = manifest["models"]["alexnet"]
    manifest["models"] = {"truncated": dict(entry, file="truncated.onnx"), "foreign": dict(entry, file="foreign.onnx")}
    (models / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(committed_release["out"] / "MODEL_CARD.md", models)
    node = find_node().node
    server = subprocess.Popen([node, str(HARNESS_DIR / "serve.mjs"), "--models", str(models)], cwd=HARNESS_DIR,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        for model, message in (("truncated.onnx", "truncated.onnx: not an ONNX model (truncated or corrupt"),
                               ("foreign.onnx", "foreign.onnx: its metadata has no 'labels': not a ser_export model")):
            proc = subprocess.run([node, str(HARNESS_DIR / "test" / "demo_e2e.mjs"), "--url",
                                   f"{url}?backend=wasm&model=/models/{model}", "--expect-error"],
                                  capture_output=True, text=True, timeout=300, cwd=HARNESS_DIR)
            assert proc.returncode == 0, proc.stderr[-3000:]
            shown = json.loads(proc.stdout)
            assert shown["state"] == "error" and shown["error"].startswith(message), shown
            assert "\n" not in shown["error"] and shown["consoleErrors"] == [], shown
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("name", ["kws", "mel"])
def test_models_built_anywhere_pass_in_chromium(tmp_path, name):
    """The two plain-torch models of tests/parity/foreign_models.py in Chromium: each runs on every
    backend the lint allows and passes there; the others are reported with the lint's reason."""
    from tests.parity import foreign_models

    paths = foreign_models.build(tmp_path)
    report = tmp_path / "report.json"
    proc = run_cli("verify", str(paths[name]), "--contract", str(tmp_path / f"{name}.toml"), "--runtimes",
                   "onnxruntime-python,chromium-wasm,chromium-webgl,chromium-webgpu", "--examples", "4",
                   "--no-shrink", "--report", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = json.loads(report.read_text())["models"][0]["results"]
    ran = {r["runner"] for r in results if r["applicable"] and r["stage"] == "logits"}
    skipped = {r["runner"] for r in results if r["stage"] == "operator_lint" and not r["applicable"]}
    assert ran | skipped == {"chromium-wasm", "chromium-webgl", "chromium-webgpu"}
    assert "chromium-wasm" in ran and (ran == {"chromium-wasm", "chromium-webgl", "chromium-webgpu"}
                                       if name == "mel" else skipped == {"chromium-webgl", "chromium-webgpu"})


@pytest.mark.parametrize("model", ["voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx"])
def test_demo_page_names_no_emotion_for_noise_a_chord_or_clicks(demo_server, committed_release, model, tmp_path):
    """Issue 10's table through the page: white noise, a chord and clicks get "no speech detected" (or
    "uncertain"), never an emotion above 0.8; the page's verdicts are Python predict's."""
    from tests.nonspeech import write_nonspeech

    for name, wav in write_nonspeech(tmp_path).items():
        shown = run_demo(f"{demo_server}?backend=wasm&model=/models/{model}", "--file", str(wav))
        expected = predict_file(wav, committed_release["out"] / model)
        assert shown["calibrated"] is True and shown["verdict"] == expected.verdict, (name, shown["verdict"])
        assert shown["verdict"] in ("no_speech", "uncertain"), (name, shown["verdict"])
        assert shown["shown"]["top"] in ("no speech detected", "uncertain") and shown["shown"]["bars"] == []
        assert [w["verdict"] for w in shown["windows"]] == [v for v in expected.verdicts if v != "silent"]
        assert all(max(w["probabilities"]) < 0.8 for w in shown["windows"] if w["verdict"] == "classified")


def test_demo_page_shows_a_live_timeline_while_recording(demo_server, committed_release, tmp_path):
    """Record button with Chromium's fake microphone (angry speech): a result every 0.5 s appears on the
    page's timeline while recording, and stopping shows the per-window results of the whole recording."""
    import librosa

    speaker = make_speakers(2, 5)[0]
    y = np.concatenate([synthesize(speaker, "angry", clip_rng(5, 0, 3, k)) for k in range(3)])
    wav = write_wav(tmp_path / "mic.wav", librosa.resample(0.2 * y / np.abs(y).max(), orig_sr=22050, target_sr=48000),
                    sr=48000, subtype="PCM_16")
    shown = run_demo(f"{demo_server}?backend=wasm&model=/models/voice_emotion_cnn.onnx", "--mic", str(wav),
                     "--record-seconds", "5")
    live = shown["live"]
    ends = [r["endSeconds"] for r in live["results"]]
    assert len(ends) >= 4 and np.allclose(np.diff(ends), 0.5), ends  # from 2.5 s, every 0.5 s
    assert len(live["shown"]) == len(ends) and all(t for t in live["shown"]) and "dropped" in live["caption"]
    # wasm in a page: the live results come from the package's worker, and the caption says so
    assert {r["thread"] for r in live["results"]} == {"worker"} and "in the worker" in live["caption"], live["caption"]
    assert shown["file"] == "recording" and shown["windowRows"], shown
    rows = [r["verdict"] for r in shown["windowRows"]]
    assert [v for v in rows if v != "silent"] == [w["verdict"] for w in shown["windows"]]
    assert rows.count("silent") == shown["silentWindows"]
