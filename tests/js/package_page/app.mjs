// A consumer page: classify a WAV (?wav=) or listen to the microphone (?seconds=) with the installed package.
// ?as=bytes: the page downloads the model and the VAD itself and hands loadClassifier the bytes.
import { SerExportError, SilentAudioError, loadClassifier } from 'ser-export-web';

const q = new URLSearchParams(location.search);
const progress = [];
// the page's main thread: the longest gap between 10 ms ticks while it works (a blocked thread shows here)
let lastTick = performance.now();
let longestGapMs = 0;
let longestGapEnd = 0; // when the longest gap ended (page clock, ms)
setInterval(() => {
  const now = performance.now();
  if (now - lastTick > longestGapMs) {
    longestGapMs = now - lastTick;
    longestGapEnd = now;
  }
  lastTick = now;
}, 10);
try {
  const t0 = performance.now();
  let model = q.get('model');
  let vadModel;
  if (q.get('as') === 'bytes') {
    model = new Uint8Array(await (await fetch(model)).arrayBuffer());
    vadModel = new Uint8Array(await (await fetch(new URL('silero_vad.onnx', new URL(q.get('model'), location.href)))).arrayBuffer());
  }
  const given = model instanceof Uint8Array ? [model.byteLength, vadModel.byteLength] : null;
  const clf = await loadClassifier(model, { backend: q.get('backend') || 'wasm', vadModel,
    threads: q.get('threads') ? Number(q.get('threads')) : undefined, onProgress: (p) => progress.push(p),
    proveBackend: q.get('prove') !== '0', proxy: q.get('proxy') ? q.get('proxy') === '1' : undefined,
    worker: q.get('worker') ? q.get('worker') === '1' : undefined });
  const loadMs = performance.now() - t0;
  const base = { ok: true, loadMs, backend: clf.backend, placement: clf.placement, proxy: clf.proxy, thread: clf.thread,
    threads: clf.threads, isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, progress: progress.at(-1),
    // the caller's buffers after loading: still whole (onnxruntime-web's proxy transfers what it is given)
    given, givenAfter: given ? [model.byteLength, vadModel.byteLength] : null };
  if (q.get('wav')) {
    const bytes = await (await fetch(q.get('wav'))).arrayBuffer();
    const audio = await new OfflineAudioContext(1, 1, Number(q.get('rate'))).decodeAudioData(bytes);
    const result = await clf.classify(audio);
    // a typed error crosses from the package's worker as its own class
    const silent = await clf.classify(new Float32Array(50000), 22050).then(() => null,
      (e) => ({ name: e.name, typed: e instanceof SilentAudioError && e instanceof SerExportError, message: e.message }));
    // the block-wise form of the same recording (in the package's worker too, for wasm)
    function* blocksOf(samples, n) {
      for (let i = 0; i < samples.length; i += n) yield samples.slice(i, i + n);
    }
    const streamed = await clf.classifyStream(blocksOf(audio.getChannelData(0), 10000), audio.sampleRate);
    window.result = { ...base, result, silent, streamed };
  } else {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const listener = clf.listen(stream, { hopSeconds: Number(q.get('hop') || 0.5) });
    await listener.ready;
    longestGapMs = 0;
    lastTick = performance.now();
    const listening = lastTick;
    const timeline = [];
    const seconds = Number(q.get('seconds'));
    for await (const r of listener) {
      timeline.push({ index: r.index, endSeconds: r.endSeconds, verdict: r.verdict, top: r.top,
        latencyMs: r.latencyMs, dropped: r.dropped, thread: r.thread, timings: r.timings });
      const li = document.createElement('li');
      li.textContent = `${r.endSeconds.toFixed(1)} s: ${r.top ?? r.verdict}`;
      document.getElementById('timeline').append(li);
      if (r.endSeconds >= seconds) break;
    }
    const mainThreadLongestGapMs = longestGapMs;
    const mainThreadLongestGapAtS = (longestGapEnd - listening) / 1000;
    await listener.stop();
    stream.getTracks().forEach((t) => t.stop());
    window.result = { ...base, timeline, hops: listener.hops, dropped: listener.dropped, rate: listener.rate,
      hopsOnPage: listener._hopsOnPage, mainThreadLongestGapAtS,
      mainThreadLongestGapMs, shown: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent) };
  }
  await clf.release();
} catch (e) {
  window.result = { ok: false, name: e.name, message: e.message };
}
