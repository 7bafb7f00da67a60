"""ser-export-web installed from its tarball, in a page of a consumer project, in headless Chromium:
a WAV classified on every backend the manifest declares, as ``predict`` does; and live
classification of Chromium's fake microphone (a recording that turns from sad to angry)."""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.jsenv import HARNESS_DIR, find_node
from ser_export.predict import predict_file
from tests.conftest import write_wav
from tests.e2e import ROOT
from tests.js.consumer import make_consumer

pytestmark = pytest.mark.browser

RELEASE = ROOT / "saved_models"
PAGE = Path(__file__).resolve().parent.parent / "js" / "package_page"
HOP_S = 0.5
CHANGE_S = 3.0
LIVE_S = 20.0
WINDOW_S = 2.1
#: The parts of a live result's latency (result.timings, milliseconds): the window made into the model's
#: input, the model, the VAD (its resampling to 16 kHz included), the post-processing, and what is left:
#: the hop's and the result's messages between the worklet, the worker and the page.
LIVE_PARTS = ("preprocessMs", "modelMs", "vadMs", "postprocessMs", "messagingMs")


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    app = make_consumer(tmp_path_factory.mktemp("consumer"))
    for f in PAGE.iterdir():
        shutil.copy(f, app / f.name)
    return app


def drive(app: Path, page: str, audio: Path, mic: Path | None = None, *extra: str, ok: bool = True) -> dict:
    args = [find_node().node, str(HARNESS_DIR / "test" / "package_e2e.mjs"), "--root", str(app), "--page", page,
            "--models", str(RELEASE), "--audio", str(audio), *extra]
    if mic is not None:
        args += ["--mic", str(mic)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=HARNESS_DIR)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.get("ok") is ok, out
    assert out["consoleErrors"] == [], out["consoleErrors"]
    return out


@pytest.mark.parametrize("backend, message", [("webgpu", "WebGPU"), ("webgl", "WebGL2")])
def test_a_browser_without_the_backend_gets_a_typed_error_before_any_download(app, tmp_path, backend, message):
    out = drive(app, f"/page.html?backend={backend}&model=/models/voice_emotion_cnn.onnx&wav=/audio/x.wav&rate=22050",
                tmp_path, None, "--no-gpu", ok=False)
    assert out["name"] == "BackendUnavailableError" and message in out["message"], out
    assert "\n" not in out["message"]


def _speaker():
    return make_speakers(2, 9)[0]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    speaker = _speaker()
    y = np.concatenate([synthesize(speaker, e, clip_rng(9, 0, i, 1)) for i, e in enumerate(["angry", "sad"])])
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", 0.2 * y, sr=22050, subtype="FLOAT")


def _declared(model_file: str) -> list[str]:
    manifest = json.loads((RELEASE / "manifest.json").read_text())
    entry = next(m for m in manifest["models"].values() if m["file"] == model_file)
    return [b for b, r in entry["backends"].items() if r["compatible"]]


def _declared_pairs() -> list[tuple[str, str]]:
    manifest = json.loads((RELEASE / "manifest.json").read_text())
    return [(m["file"], b) for m in manifest["models"].values() for b in _declared(m["file"])]


#: The providers a proven placement may name: the wasm build's CPU provider, the WebGL engine, and the
#: native WebGPU provider of onnxruntime-web's WebGPU build (the all-backends build runs JSEP instead).
PROVIDER = {"wasm": "CPUExecutionProvider", "webgl": "webgl", "webgpu": "WebGpuExecutionProvider"}


@pytest.mark.parametrize("model_file, backend", _declared_pairs())
def test_a_page_importing_the_installed_package_classifies_as_predict_does(app, speech_wav, model_file, backend):
    """Every backend the manifest declares for the model; on wasm the page loads only the wasm-only
    build of onnxruntime-web, at as many threads as the cross-origin-isolated page has cores."""
    # ResNet18 on wasm: handed over as bytes, and onnxruntime-web in its proxy worker (options.proxy)
    as_bytes = proxy = model_file == "voice_emotion_cnn_resnet.onnx" and backend == "wasm"
    out = drive(app, f"/page.html?backend={backend}&model=/models/{model_file}&wav=/audio/{speech_wav.name}"
                     f"&rate=22050{'&as=bytes&proxy=1' if as_bytes else ''}", speech_wav.parent)
    expected = predict_file(speech_wav, RELEASE / model_file)
    got = out["result"]
    assert out["backend"] == got["backend"] == backend
    placement = out["placement"]
    assert placement["proven"] is True and list(placement["providers"]) == [PROVIDER[backend]], placement
    if backend == "webgpu":  # read from onnxruntime's verbose log in a worker: every node counted
        assert placement["providers"][PROVIDER[backend]] > 20 and "verbose log" in placement["source"], placement
        print(f"{model_file} on webgpu: loadClassifier {out['loadMs']:.0f} ms, of which the placement worker "
              f"{placement['ms']:.0f} ms (beside the session); placement {placement['providers']}")
    assert [w["verdict"] for w in got["windows"]] == expected.verdicts
    assert got["top"] == expected.top and got["verdict"] == expected.verdict
    tol = 5e-4 if backend == "wasm" else 2e-3  # GPU backends: float32 shader arithmetic (SwiftShader)
    np.testing.assert_allclose([got["probabilities"][l] for l in expected.labels], expected.probabilities, atol=tol)
    if as_bytes:  # the caller's buffers stay whole (onnxruntime-web's proxy transfers what a session gets)
        assert out["given"] == out["givenAfter"] == [(RELEASE / f).stat().st_size for f in (model_file, "silero_vad.onnx")]
    else:
        assert out["progress"]["loaded"] == (RELEASE / model_file).stat().st_size
    bundle = {"wasm": "ort.wasm.bundle.min.mjs", "webgpu": "ort.webgpu.bundle.min.mjs", "webgl": "ort.all.bundle.min.mjs"}
    assert bundle[backend] in out["ortFiles"] and not any(
        f.endswith(".mjs") and f != bundle[backend] for f in out["ortFiles"]), out["ortFiles"]
    assert out["isolated"] is True and out["threads"] == out["cores"]
    # with options.proxy onnxruntime-web runs in its proxy worker (a module worker of the same build)
    assert out["proxy"] is proxy and ("ort-wasm-proxy-worker" in out["workers"]) is proxy, (out["proxy"], out["workers"])
    # wasm without the proxy: the whole classification in the package's own worker (the default in a page)
    in_worker = backend == "wasm" and not proxy
    assert out["thread"] == got["thread"] == ("worker" if in_worker else "main"), (out["thread"], got["thread"])
    assert ("ser-export-web" in out["workers"]) is in_worker, out["workers"]
    assert out["silent"]["name"] == "SilentAudioError" and out["silent"]["typed"] is True, out["silent"]
    # classifyStream (blocks of 10000 samples) gives classify's windows and numbers, where classify ran
    streamed = out["streamed"]
    assert streamed["windows"] == got["windows"] and streamed["probabilities"] == got["probabilities"], streamed
    assert streamed["thread"] == got["thread"] and streamed["duration_s"] == got["duration_s"]


def _model_with_a_node_off_webgpu(folder: Path) -> Path:
    """A model with ser_export's metadata (the AlexNet's contract, no post-processing) whose graph keeps
    one node onnxruntime's WebGPU provider has no kernel for (a Cast to int64, as the measured
    operator table records for WebGPU), so that node runs on the CPU provider."""
    import onnx
    from onnx import TensorProto, helper

    contract = onnx.load(str(RELEASE / "voice_emotion_cnn.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in contract.metadata_props}
    n_labels, length = len(json.loads(meta["labels"])), int(meta["input_length"])
    graph = helper.make_graph(
        [helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["head"]),
         helper.make_node("Cast", ["head"], ["whole"], to=TensorProto.INT64),
         helper.make_node("Cast", ["whole"], ["output"], to=TensorProto.FLOAT)],
        "cpu_node",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", length])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", n_labels])],
        [helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
         (("starts", 0), ("ends", n_labels), ("axes", 1))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {k: meta[k] for k in ("labels", "sample_rate", "input_length", "normalization")})
    onnx.checker.check_model(model)
    path = folder / "cpu_node.onnx"
    onnx.save(model, str(path))
    return path


def test_a_model_with_nodes_left_off_webgpu_is_refused_with_the_placement(app, tmp_path):
    """clf.backend is proven, not assumed: the placement proof (onnxruntime's verbose log, read in a
    worker) finds the node left to the CPU provider and loadClassifier throws a typed error naming it."""
    model = _model_with_a_node_off_webgpu(tmp_path)
    out = drive(app, f"/page.html?backend=webgpu&model=/audio/{model.name}&wav=/audio/x.wav&rate=22050",
                tmp_path, None, ok=False)
    assert out["name"] == "BackendUnavailableError" and "\n" not in out["message"], out
    assert "cpu_node.onnx" in out["message"] and "on CPUExecutionProvider" in out["message"], out["message"]
    print(out["message"])


def _take(model_files: list[str], emotion: str, folder: Path) -> np.ndarray:
    """A take of ``emotion`` that ``predict`` puts on ``emotion`` with every model (the live test checks the
    live mechanism, not the model's accuracy)."""
    for take in range(12):
        y = synthesize(_speaker(), emotion, clip_rng(9, 1, ["sad", "angry"].index(emotion), take))
        wav = write_wav(folder / f"{emotion}-{take}.wav", 0.2 * y, sr=22050, subtype="FLOAT")
        if all(predict_file(wav, RELEASE / m).top == emotion for m in model_files):
            return y
    raise AssertionError(f"no take of {emotion} that every model classifies as {emotion}")


@pytest.fixture(scope="module")
def sad_then_angry(tmp_path_factory) -> Path:
    """48 kHz PCM: 3 s of sad speech, then angry speech up to 22 s (Chromium loops the file)."""
    import librosa

    folder = tmp_path_factory.mktemp("mic")
    models = ["voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx"]
    sad, angry = _take(models, "sad", folder), _take(models, "angry", folder)
    sr = 22050
    y = np.concatenate([np.resize(sad, int(CHANGE_S * sr)), np.resize(angry, int((LIVE_S + 2 - CHANGE_S) * sr))])
    y = librosa.resample(0.2 * y / np.abs(y).max(), orig_sr=sr, target_sr=48000)
    return write_wav(folder / "sad_then_angry.wav", y, sr=48000, subtype="PCM_16")


@pytest.mark.parametrize("model_file", ["voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx"])
def test_live_microphone_gives_a_result_every_hop_and_follows_the_change(app, sad_then_angry, model_file):
    """Chromium's fake microphone plays sad-then-angry speech: one result every 0.5 s for 20 s on
    wasm at 1 thread, none dropped; the windows wholly before the change are sad, and the timeline
    turns to angry, and stays there (but for at most one window), within 2 hops of the first window that
    holds more angry than sad speech (a 2.1 s window ending 0.5 s after the change is still three quarters
    sad)."""
    out = drive(app, f"/page.html?backend=wasm&threads=1&model=/models/{model_file}&seconds={LIVE_S}&hop={HOP_S}",
                sad_then_angry.parent, mic=sad_then_angry)
    timeline = out["timeline"]
    ends = [r["endSeconds"] for r in timeline]
    latencies = [r["latencyMs"] for r in timeline]
    tops = [r["top"] for r in timeline]
    parts = {k: statistics.median(r["timings"][k] for r in timeline) for k in LIVE_PARTS}
    print(f"{model_file}: {len(timeline)} results over {ends[-1]:.1f} s, {out['dropped']} dropped, "
          f"latency median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms, "
          f"page's main thread: longest gap between 10 ms ticks {out['mainThreadLongestGapMs']:.0f} ms "
          f"(ending {out['mainThreadLongestGapAtS']:.1f} s into listening), "
          f"context {out['rate']} Hz; medians per part " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
          + f"; timeline {list(zip(ends, tops))}")
    assert out["threads"] == 1 and out["dropped"] == 0 and out["proxy"] is False
    # in the package's worker (the default): every result computed there, the page only receives them
    assert out["thread"] == "worker" and {r["thread"] for r in timeline} == {"worker"}
    assert "ser-export-web" in out["workers"], out["workers"]
    # the worklet sends its hops straight to the worker: none through the page's thread
    assert out["hopsOnPage"] == 0 and out["hops"] >= len(timeline), (out["hopsOnPage"], out["hops"])
    for r in timeline:  # every part timed (in the worker's clock; messaging: the rest of the latency)
        t = r["timings"]
        assert all(t[k] >= 0 for k in LIVE_PARTS) and t["thread"] == "worker", t
        assert t["preprocessMs"] + t["modelMs"] + t["vadMs"] + t["postprocessMs"] <= t["computeMs"] + 1e-6, t
    assert np.allclose(np.diff(ends), HOP_S, atol=1e-6), ends   # one result per hop, none skipped
    assert ends[-1] >= LIVE_S and len(timeline) >= (LIVE_S - WINDOW_S) / HOP_S
    assert out["shown"] == [f"{r['endSeconds']:.1f} s: {r['top'] or r['verdict']}" for r in timeline]
    # the timeline turns angry and stays there; one window of the ~35 after the switch may name another emotion:
    # seen once in four runs: one 'fearful' window at 11.0 s (cause not pinned; most likely where the page's
    # windows fall in the fake microphone's audio from run to run). The live mechanism is what the checks
    # above pin; the model's call on one window is not
    switch = next(i for i, t in enumerate(tops) if t == "angry" and sum(u != "angry" for u in tops[i:]) <= 1)
    assert all(t == "sad" for t, e in zip(tops, ends) if e <= CHANGE_S), list(zip(ends, tops))
    mostly_angry = next(e for e in ends if e - WINDOW_S / 2 > CHANGE_S)
    assert ends[switch] <= mostly_angry + 2 * HOP_S + 1e-6, (
        f"angry from {ends[switch]} s; the change at {CHANGE_S} s, the first window mostly after it ends at {mostly_angry} s")


@pytest.mark.parametrize("worker", [True, False], ids=["worker", "page-thread"])
def test_live_mode_drops_hops_rather_than_falling_behind(app, sad_then_angry, worker):
    """A hop shorter than one classification (0.05 s): hops that arrive while a window is still being
    classified are dropped, never queued, so every result is of the latest audio (its latency does not
    grow) and each hop is either classified or dropped; in the package's worker (whose staleness clock
    is estimated from the hops' arrivals) and with ``worker: false`` on the page's thread."""
    hop = 0.05
    out = drive(app, f"/page.html?backend=wasm&threads=1&model=/models/voice_emotion_cnn_resnet.onnx&seconds=5&hop={hop}"
                     f"&worker={int(worker)}", sad_then_angry.parent, mic=sad_then_angry)
    timeline = out["timeline"]
    latencies = [r["latencyMs"] for r in timeline]
    print(f"hop {hop} s, {'worker' if worker else 'page thread'}: {out['hops']} hops, {len(timeline)} results, "
          f"{out['dropped']} dropped, latency median {statistics.median(latencies):.0f} ms, last {latencies[-1]:.0f} ms, "
          f"page's longest gap {out['mainThreadLongestGapMs']:.0f} ms")
    assert out["thread"] == ("worker" if worker else "main") and {r["thread"] for r in timeline} == {out["thread"]}
    assert ("ser-export-web" in out["workers"]) is worker, out["workers"]
    assert (out["hopsOnPage"] == 0) is worker and out["hopsOnPage"] in (0, out["hops"]), (out["hopsOnPage"], out["hops"])
    assert out["dropped"] > 0
    indices = [r["index"] for r in timeline]
    assert indices == sorted(set(indices))
    # latency is measured from the hop's last sample in the audio clock: a backlog would make it grow
    assert max(latencies) < 10 * statistics.median(latencies) and latencies[-1] < 1000
    full = int(np.ceil(WINDOW_S / hop - 1e-9)) - 1  # index of the first hop with a whole window
    assert len(timeline) + out["dropped"] >= indices[-1] - full + 1  # each hop classified or dropped
