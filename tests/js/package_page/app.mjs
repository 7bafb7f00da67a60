// A consumer page: classify a WAV (?wav=) or listen to the microphone (?seconds=) with the installed package.
import { loadClassifier } from 'ser-export-web';

const q = new URLSearchParams(location.search);
const progress = [];
try {
  const t0 = performance.now();
  const clf = await loadClassifier(q.get('model'), { backend: q.get('backend') || 'wasm',
    threads: q.get('threads') ? Number(q.get('threads')) : undefined, onProgress: (p) => progress.push(p),
    proveBackend: q.get('prove') !== '0' });
  const loadMs = performance.now() - t0;
  const base = { ok: true, loadMs, backend: clf.backend, placement: clf.placement, threads: clf.threads, isolated: crossOriginIsolated,
    cores: navigator.hardwareConcurrency, progress: progress.at(-1) };
  if (q.get('wav')) {
    const bytes = await (await fetch(q.get('wav'))).arrayBuffer();
    const audio = await new OfflineAudioContext(1, 1, Number(q.get('rate'))).decodeAudioData(bytes);
    window.result = { ...base, result: await clf.classify(audio) };
  } else {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const listener = clf.listen(stream, { hopSeconds: Number(q.get('hop') || 0.5) });
    const timeline = [];
    const seconds = Number(q.get('seconds'));
    for await (const r of listener) {
      timeline.push({ index: r.index, endSeconds: r.endSeconds, verdict: r.verdict, top: r.top,
        latencyMs: r.latencyMs, dropped: r.dropped });
      const li = document.createElement('li');
      li.textContent = `${r.endSeconds.toFixed(1)} s: ${r.top ?? r.verdict}`;
      document.getElementById('timeline').append(li);
      if (r.endSeconds >= seconds) break;
    }
    await listener.stop();
    stream.getTracks().forEach((t) => t.stop());
    window.result = { ...base, timeline, hops: listener.hops, dropped: listener.dropped, rate: listener.rate,
      shown: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent) };
  }
  await clf.release();
} catch (e) {
  window.result = { ok: false, name: e.name, message: e.message };
}
