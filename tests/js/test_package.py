"""ser-export-web as a web developer gets it: ``npm pack``, ``npm install`` of the tarball into an
empty project, classification of WAV files from Node, compared with ``python -m ser_export predict
--json``; the typed errors; and the type declarations checked by ``tsc --noEmit``."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ser_export import tolerances
from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.jsenv import HARNESS_DIR, find_node
from tests.conftest import write_wav
from tests.e2e import ROOT, run_cli
from tests.js.consumer import make_consumer

pytestmark = pytest.mark.node

RELEASE = ROOT / "saved_models"

CONSUMER = """
import { readFileSync } from 'node:fs';
import * as pkg from 'ser-export-web';
const { loadClassifier } = pkg;
const [model, f32, rate, channels] = process.argv.slice(2);
const progress = [];
const clf = await loadClassifier(model, { backend: 'wasm', onProgress: (p) => progress.push(p) });
const buf = readFileSync(f32);
const flat = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const n = flat.length / Number(channels);
const planar = Array.from({ length: Number(channels) }, (_, c) => flat.slice(c * n, (c + 1) * n));
const result = await clf.classify(planar.length === 1 ? planar[0] : planar, Number(rate));
const errors = {};
const attempt = async (key, fn) => {
  try { await fn(); errors[key] = null; } catch (e) {
    errors[key] = { name: e.name, message: e.message, typed: e instanceof pkg.SerExportError,
      classes: Object.entries(pkg).filter(([k, v]) => typeof v === 'function' && k.endsWith('Error') && e instanceof v).map(([k]) => k) };
  }
};
await attempt('silence', () => clf.classify(new Float32Array(50000), 22050));
await attempt('nan', () => clf.classify(Float32Array.from([0.1, NaN, 0.2]), 22050));
await attempt('empty', () => clf.classify(new Float32Array(0), 22050));
await attempt('webgpu_in_node', () => loadClassifier(model, { backend: 'webgpu' }));
await attempt('proxy_in_node', () => loadClassifier(model, { proxy: true }));
await attempt('worker_in_node', () => loadClassifier(model, { worker: true }));
await attempt('not_a_model', () => loadClassifier(new Uint8Array([8, 7, 18, 3, 1, 2]), {}));
await attempt('bytes_without_vad', () => loadClassifier(new Uint8Array(readFileSync(model)), {}));
const unproven = await loadClassifier(model, { proveBackend: false });
const skipped = unproven.placement;
await unproven.release();
await clf.release();
await attempt('released', () => clf.classify(flat, Number(rate)));
console.log(JSON.stringify({ result, errors, backend: clf.backend, placement: clf.placement, skipped, threads: clf.threads, thread: clf.thread, progress: progress.at(-1),
  exports: Object.keys(pkg).sort() }));
"""

TYPED_CONSUMER = """
import { loadClassifier, BackendUnavailableError, type Classification, type LiveResult } from 'ser-export-web';

async function main(buffer: AudioBuffer, stream: MediaStream): Promise<string | null> {
  const clf = await loadClassifier('/models/voice_emotion_cnn.onnx', { backend: 'webgpu', threads: 2,
    onProgress: ({ loaded, total }) => console.log(loaded, total ?? '?') });
  const r: Classification = await clf.classify(buffer);
  const first = r.windows[0];
  const onGpu: number | 'all' | undefined = clf.placement.proven ? clf.placement.providers?.['WebGpuExecutionProvider'] : undefined;
  console.log(clf.backend, onGpu, clf.placement.source, clf.proxy);
  const inWorker: boolean = (await loadClassifier(new Uint8Array(8), { backend: 'wasm', proxy: true, proveBackend: false })).proxy;
  const where: 'main' | 'worker' = (await loadClassifier('m.onnx', { worker: false })).thread;
  const p: number | undefined = r.probabilities?.['angry'];
  const listener = clf.listen(stream, { hopSeconds: 0.5 });
  for await (const live of listener) {
    const l: LiveResult = live;
    const parts: number = l.timings.modelMs + l.timings.vadMs + l.timings.messagingMs;
    if (l.index > 3 || parts > 1000 || l.thread === 'main') break;
  }
  await listener.stop();
  await clf.release();
  return first.top ?? (p === undefined || !inWorker || where === 'worker' ? null : r.top);
}

async function wrong(buffer: AudioBuffer) {
  // @ts-expect-error: 'cuda' is not a backend of this package
  await loadClassifier('m.onnx', { backend: 'cuda' });
  const clf = await loadClassifier('m.onnx');
  // @ts-expect-error: classify takes audio, not a string
  await clf.classify('speech.wav');
  // @ts-expect-error: worker is true or false
  await loadClassifier('m.onnx', { worker: 'yes' });
  try { await clf.classify(buffer); } catch (e) { if (e instanceof BackendUnavailableError) throw e; }
}
export { main, wrong };
"""


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> Path:
    app = make_consumer(tmp_path_factory.mktemp("consumer"))
    (app / "consume.mjs").write_text(CONSUMER)
    return app


def _classify(app: Path, model: Path, y: np.ndarray, sr: int) -> dict:
    planar = np.atleast_2d(np.asarray(y, np.float32))
    f32 = app / "input.f32"
    f32.write_bytes(np.ascontiguousarray(planar).tobytes())
    proc = subprocess.run([find_node().node, "consume.mjs", str(model), str(f32), str(sr), str(planar.shape[0])],
                          cwd=app, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _recording(seconds_silent: float = 2.1) -> np.ndarray:
    """Two held-out-style utterances, silence, then white noise: classified/uncertain, silent and
    no-speech windows in one file."""
    speaker = make_speakers(2, 9)[0]
    speech = np.concatenate([synthesize(speaker, e, clip_rng(9, 0, i, 1)) for i, e in enumerate(["angry", "sad"])])
    noise = np.random.default_rng(3).standard_normal(46305) * 0.1
    return np.concatenate([0.2 * speech[:2 * 46305], np.zeros(int(seconds_silent * 22050)), noise]).astype(np.float32)


def _compare(js: dict, py: dict, atol: float, fraction_atol: float = 1e-4) -> None:
    assert [w["verdict"] for w in js["windows"]] == [w["verdict"] for w in py["windows"]]
    assert [w["start_s"] for w in js["windows"]] == [w["start_s"] for w in py["windows"]]
    for key in ("speech", "verdict", "top", "calibrated", "silent_windows_start_s", "no_speech_windows_start_s",
                "uncertain_windows_start_s", "duration_s"):
        assert js[key] == py[key], key
    for jw, pw in zip(js["windows"], py["windows"]):
        assert jw["top"] == pw["top"]
        if pw["probabilities"] is not None:
            worst = max(abs(jw["probabilities"][k] - v) for k, v in pw["probabilities"].items())
            assert worst <= atol, f"window at {pw['start_s']} s: |JS - Python| {worst:.3g} > {atol}"
        if pw["speech_fraction"] is not None:
            assert abs(jw["speech_fraction"] - pw["speech_fraction"]) <= fraction_atol
    if py["probabilities"] is not None:
        assert max(abs(js["probabilities"][k] - v) for k, v in py["probabilities"].items()) <= atol


@pytest.mark.parametrize("model_file", ["voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx"])
def test_the_installed_package_gives_predicts_numbers_at_the_models_rate(consumer, tmp_path, model_file):
    """Same rate as the model: no resampling on either side, so the windows are the same samples and
    only the runtimes differ (onnxruntime-web vs onnxruntime): probabilities within the gate's
    tolerance between runtimes (tolerances.json ``probabilities``)."""
    y = _recording()
    wav = write_wav(tmp_path / "mixed.wav", y, sr=22050, subtype="FLOAT")
    model = RELEASE / model_file
    py = json.loads(run_cli("predict", str(wav), "--model", str(model), "--json").stdout)
    out = _classify(consumer, model, y, 22050)
    js = out["result"]
    assert [w["verdict"] for w in py["windows"]][2:] == ["silent", "no_speech"]
    _compare(js, py, atol=tolerances.for_stage("probabilities")["max_abs"])
    assert js["backend"] == out["backend"] == "wasm" and out["threads"] == 1
    assert out["progress"]["loaded"] == model.stat().st_size


def test_the_installed_package_resamples_stereo_44k_within_the_js_preprocessing_tolerance(consumer, tmp_path):
    """A stereo 44.1 kHz file: Python resamples with soxr, the package with its Kaiser sinc; the
    probabilities agree within tolerances.json's js_preprocessing.probabilities."""
    import librosa

    mono = librosa.resample(_recording(0.0)[:3 * 46305], orig_sr=22050, target_sr=44100)
    stereo = np.stack([mono * 0.9, mono * 1.1]).astype(np.float32)
    wav = write_wav(tmp_path / "stereo.wav", stereo.T, sr=44100, subtype="FLOAT")
    model = RELEASE / "voice_emotion_cnn.onnx"
    py = json.loads(run_cli("predict", str(wav), "--model", str(model), "--json").stdout)
    js = _classify(consumer, model, stereo, 44100)["result"]
    # the VAD hears slightly different samples: a frame near its threshold may flip
    _compare(js, py, atol=tolerances.for_stage("js_preprocessing")["probabilities"], fraction_atol=2 / 66 + 1e-4)


def test_the_installed_package_throws_typed_errors(consumer):
    out = _classify(consumer, RELEASE / "voice_emotion_cnn.onnx", _recording()[:46305], 22050)
    e = out["errors"]
    expected = {"silence": "SilentAudioError", "nan": "InvalidAudioError", "empty": "EmptyAudioError",
                "webgpu_in_node": "BackendUnavailableError", "not_a_model": "ModelFileError",
                "bytes_without_vad": "ModelFileError", "released": "SerExportError"}
    for key, name in expected.items():
        assert e[key] is not None, f"{key}: no error"
        assert e[key]["name"] == name and e[key]["typed"] and name in e[key]["classes"], (key, e[key])
    assert "silent" in e["silence"]["message"] and "NaN" in e["nan"]["message"]
    assert "empty" in e["empty"]["message"] and "webgpu" in e["webgpu_in_node"]["message"]
    assert "silero_vad.onnx" in e["bytes_without_vad"]["message"] and "vadModel" in e["bytes_without_vad"]["message"]
    assert {"loadClassifier", "Classifier", "Listener", "SerExportError", "BACKENDS"} <= set(out["exports"])
    assert out["backend"] == "wasm" and out["placement"]["proven"] is True
    assert out["placement"]["providers"] == {"CPUExecutionProvider": "all"}, out["placement"]
    assert e["proxy_in_node"]["name"] == "TypeError" and "Node" in e["proxy_in_node"]["message"]
    # Node keeps the in-thread path: the package's worker is for pages
    assert e["worker_in_node"]["name"] == "TypeError" and "Node" in e["worker_in_node"]["message"]
    assert out["thread"] == "main" and out["result"]["thread"] == "main"
    assert out["skipped"]["proven"] is False and "proveBackend" in out["skipped"]["source"], out["skipped"]


def test_the_type_declarations_check_a_consumer(consumer):
    """``tsc --noEmit --strict`` on a small consumer: the declared API is usable as documented, and
    misuse (an unknown backend, a string for audio) is a type error (@ts-expect-error fails otherwise)."""
    tsc = HARNESS_DIR / "node_modules" / "typescript" / "bin" / "tsc"
    (consumer / "consumer.ts").write_text(TYPED_CONSUMER)
    (consumer / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "strict": True, "noEmit": True, "target": "es2022", "module": "nodenext", "moduleResolution": "nodenext",
        "lib": ["es2022", "dom"], "skipLibCheck": False, "types": []}, "files": ["consumer.ts"]}))
    proc = subprocess.run([find_node().node, str(tsc), "-p", "tsconfig.json"], cwd=consumer, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


def test_the_readme_in_the_tarball_stands_on_its_own(consumer):
    """The README npm shows is the one in the tarball: it links to nothing outside the package (a link to
    ../../../README.md breaks there), its install line names the onnxruntime-web the peer range and the
    tests use, and it names every export of the package."""
    import re

    installed = consumer / "node_modules" / "ser-export-web"
    readme = (installed / "README.md").read_text()
    for target in re.findall(r"\]\(([^)\s]+)[^)]*\)|href=[\"']([^\"']+)", readme):
        target = next(t for t in target if t)
        assert "://" not in target and not target.startswith("/"), f"link out of the package: {target}"
        assert (installed / target.split("#")[0]).resolve().is_relative_to(installed.resolve()), target
        assert (installed / target.split("#")[0]).exists(), f"link to a file the tarball lacks: {target}"
    peer = json.loads((installed / "package.json").read_text())["peerDependencies"]["onnxruntime-web"]
    version = json.loads((HARNESS_DIR / "node_modules" / "onnxruntime-web" / "package.json").read_text())["version"]
    assert f"npm install ser-export-web onnxruntime-web@{version}" in readme
    assert peer == "~" + ".".join(version.split(".")[:2]) + ".0", (peer, version)
    proc = subprocess.run([find_node().node, "--input-type=module", "-e",
                           "import * as p from 'ser-export-web'; console.log(JSON.stringify(Object.keys(p)))"],
                          cwd=consumer, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exports = json.loads(proc.stdout)
    assert "loadClassifier" in exports and [e for e in exports if f"`{e}" not in readme] == []


def test_npm_publish_dry_run_is_clean_and_packs_what_a_consumer_needs(tmp_path):
    """``npm publish --dry-run`` (to an unreachable registry with a stand-in token, so nothing can be published
    and npm has no login to warn about) prints no warning, and the tarball holds exactly the modules the
    package's entry point reaches by its relative imports (and its worker), the type declarations, README, LICENSE and
    package.json: nothing a consumer lacks, nothing it does not need."""
    import re

    from tests.js.consumer import PACKAGE_DIR, _npm

    proc = _npm(["publish", "--dry-run", "--json", "--registry", "http://127.0.0.1:9/",
                 "--//127.0.0.1:9/:_authToken=dry-run-only", "--fetch-retries", "0", "--loglevel", "warn"],
                cwd=PACKAGE_DIR)
    warnings = [line for line in proc.stderr.splitlines() if re.match(r"npm (warn|WARN|ERR)", line)]
    assert not warnings, warnings
    packed = json.loads(proc.stdout)["ser-export-web"]
    files = sorted(f["path"] for f in packed["files"])
    meta = json.loads((PACKAGE_DIR / "package.json").read_text())
    entry = meta["exports"]["."]["default"]
    assert meta["main"] == entry and meta["types"] == meta["exports"]["."]["types"]
    reached, todo = set(), [Path(entry).as_posix().removeprefix("./")]
    while todo:  # the modules the entry point imports, statically or dynamically, by relative path
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        code = "\n".join(line for line in (PACKAGE_DIR / module).read_text().splitlines()
                         if not line.lstrip().startswith("//"))
        # a static or dynamic import, or a module started as a worker: new URL('./worker.mjs', import.meta.url)
        for rel in re.findall(r"""(?:from|import\(|new URL\()\s*['"](\.{1,2}/[^'"]+)['"]""", code):
            todo.append((Path(module).parent / rel).as_posix().replace("/./", "/"))
    expected = sorted(reached | {meta["types"].removeprefix("./"), "README.md", "LICENSE", "package.json"})
    assert files == expected, (files, expected)
    for field in ("license", "repository", "description", "homepage", "bugs", "engines", "peerDependencies"):
        assert meta.get(field), f"package.json has no {field}"
