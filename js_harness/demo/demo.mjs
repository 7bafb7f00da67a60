// The ser_export demo: a released model in the browser, through the ser-export-web package.
import { CLASSIFIED, NO_SPEECH, loadClassifier } from 'ser-export-web';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const sessions = new Map();
const declaredBackends = new Map(); // variant url -> {backends, findings}: what its manifest entry declares
let current = null; // {url, backend, session, contract}

function setState(state, message = '') {
  document.body.dataset.state = state;
  if (state === 'error') $('error').textContent = message;
  else {
    $('error').textContent = '';
    if (message) $('status').textContent = message;
  }
}

async function listModels() {
  const select = $('model');
  const res = await fetch('/models/manifest.json');
  if (!res.ok) throw new Error('no release found at /models/manifest.json (build one with `python -m ser_export build`)');
  const manifest = await res.json();
  const describe = (bytes, acc) => `${(bytes / 1e6).toFixed(1)} MB${acc !== undefined ? `, ${(100 * acc).toFixed(0)} % on held-out synthetic speakers` : ''}`;
  for (const [arch, m] of Object.entries(manifest.models)) {
    const opt = document.createElement('option');
    opt.value = `/models/${m.file}`;
    opt.textContent = `${arch} (${describe(m.bytes, m.held_out?.test?.accuracy)})`;
    select.append(opt);
    // the reduced-precision variants: smaller downloads, judged against this model by the gate
    for (const [name, v] of Object.entries(m.variants || {})) {
      const vopt = document.createElement('option');
      vopt.value = `/models/${v.file}`;
      vopt.textContent = `${arch} ${name} (${describe(v.bytes, v.vs_parent?.heldout?.accuracy)}; ${v.declared_backends.join('/')})`;
      declaredBackends.set(vopt.value, { backends: v.declared_backends, findings: v.backends });
      select.append(vopt);
    }
  }
  if (params.get('model')) select.value = params.get('model');
  if (params.get('backend')) $('backend').value = params.get('backend');
}

/** clf.placement in words: where onnxruntime put the nodes, and how that is known. */
function describePlacement(p) {
  if (!p.proven) return `placement ${p.source}`;
  const nodes = Object.entries(p.providers).map(([provider, n]) => (n === 'all' ? `every node on ${provider}` : `${n} nodes on ${provider}`));
  return `${nodes.join(', ')}: ${p.source}`;
}

async function loadModel() {
  const url = $('model').value;
  const backend = $('backend').value;
  const key = `${url}|${backend}`;
  if (!sessions.has(key)) {
    const name = url.split('/').pop();
    const declared = declaredBackends.get(url);
    if (declared && !declared.backends.includes(backend)) {
      const why = (declared.findings[backend]?.findings || []).map((f) => f.message)[0] || 'not declared';
      throw new Error(`${name}: this variant runs on ${declared.backends.join(' and ')}, not ${backend} (${why})`);
    }
    setState('loading', `Loading ${url} on ${backend}...`);
    const onProgress = ({ loaded, total }) => {
      $('status').textContent = `Loading ${name} on ${backend}: ${(loaded / 1e6).toFixed(1)}` +
        `${total ? ` of ${(total / 1e6).toFixed(1)}` : ''} MB`;
    };
    // ModelFileError names a truncated or foreign file; BackendUnavailableError a missing backend
    const clf = await loadClassifier(url, { backend, onProgress });
    sessions.set(key, { url, backend: clf.backend, clf, contract: clf.contract });
  }
  current = sessions.get(key);
  const c = current.contract;
  $('contract').textContent = `Model input: ${c.inputLength} samples at ${c.sampleRate} Hz, RMS-normalised to ` +
    `${c.normalization.rms_level_db} dB; labels ${c.labels.join(', ')}; front-end ${c.frontend?.implementation ?? '?'}; ` +
    `onnxruntime-web ${current.backend} (${describePlacement(current.clf.placement)}), ${current.clf.threads} thread(s), `
    + `${current.clf.thread === 'worker' ? 'in the package\'s worker (the page\'s thread only receives results)' : 'on the page\'s thread'}.`;
  setState('ready', `Ready: ${current.url.split('/').pop()} on ${backend}. Choose a file or record.`);
  return current;
}

function wavSampleRate(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (o) => String.fromCharCode(...bytes.subarray(o, o + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') return null;
  for (let o = 12; o + 8 <= bytes.length;) {
    const size = v.getUint32(o + 4, true);
    if (tag(o) === 'fmt ' && o + 16 <= bytes.length) return v.getUint32(o + 12, true);
    o += 8 + size + (size % 2);
  }
  return null;
}

// Decode at the file's own rate when it is known (WAV), so the shipped resampler, which the
// parity suite checks against Python, does the resampling; otherwise the browser decodes
// at the model's rate.
async function decode(arrayBuffer, rateHint) {
  const rate = rateHint ?? current.contract.sampleRate;
  const ctx = new OfflineAudioContext(1, 1, rate);
  const audio = await ctx.decodeAudioData(arrayBuffer);
  const channels = Array.from({ length: audio.numberOfChannels }, (_, c) => audio.getChannelData(c));
  return { channels, sampleRate: audio.sampleRate };
}

const STOPS = [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]];
function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const f = x - i;
  return STOPS[i].map((a, k) => Math.round(a + f * (STOPS[i + 1][k] - a)));
}

function drawSpectrogram(logmel, dims, topDb) {
  const [, , nMels, nFrames] = dims;
  const canvas = $('spectrogram');
  canvas.width = nFrames;
  canvas.height = nMels;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(nFrames, nMels);
  for (let m = 0; m < nMels; m++) {
    for (let t = 0; t < nFrames; t++) {
      const [r, g, b] = colour(1 + logmel[m * nFrames + t] / topDb);
      const p = ((nMels - 1 - m) * nFrames + t) * 4; // low bands at the bottom
      img.data.set([r, g, b, 255], p);
    }
  }
  ctx.putImageData(img, 0, 0);
}

function drawBars(labels, probs) {
  const bars = $('bars');
  bars.textContent = '';
  const top = probs.indexOf(Math.max(...probs));
  labels.forEach((label, i) => {
    const row = document.createElement('div');
    row.className = `bar-row${i === top ? ' top' : ''}`;
    row.dataset.label = label;
    row.dataset.prob = String(probs[i]);
    row.innerHTML = `<span>${label}</span><div class="bar-track"><div class="bar-fill" style="width:${(100 * probs[i]).toFixed(1)}%"></div></div><span class="bar-value">${(100 * probs[i]).toFixed(1)} %</span>`;
    bars.append(row);
  });
  $('top').textContent = labels[top];
}

function showWindows(labels, rows) {
  const body = $('windows').querySelector('tbody');
  body.textContent = '';
  for (const w of rows) {
    const tr = document.createElement('tr');
    tr.dataset.verdict = w.verdict;
    const p = w.probabilities ? Math.max(...Object.values(w.probabilities)) : null;
    const cells = [`${w.start_s.toFixed(1)} s`, w.verdict.replace('_', ' '), w.top ?? '-',
      p === null ? '-' : `${(100 * p).toFixed(1)} %`,
      w.speech_fraction === null ? '-' : `${(100 * w.speech_fraction).toFixed(0)} %`];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

async function analyse(arrayBuffer, name) {
  try {
    const model = await loadModel();
    setState('running', `Analysing ${name}...`);
    const bytes = new Uint8Array(arrayBuffer);
    const { channels, sampleRate } = await decode(arrayBuffer.slice(0), wavSampleRate(bytes));
    const { contract, clf } = model;
    const labels = contract.labels;
    const r = await clf.classify(channels, sampleRate, { logmel: true });
    const kept = r.windows.filter((w) => w.verdict !== 'silent');
    if (r.probabilities) {
      drawBars(labels, labels.map((l) => r.probabilities[l]));
    } else {
      $('bars').textContent = '';
      $('top').textContent = r.verdict === NO_SPEECH ? 'no speech detected' : 'uncertain';
      $('bars').textContent = r.verdict === NO_SPEECH
        ? 'The voice-activity detector heard no speech in this recording, so no emotion is named.'
        : 'This speech is unlike the speech the model was trained on, or the model is unsure, so no emotion is named.';
    }
    showWindows(labels, r.windows);
    document.body.dataset.verdict = r.verdict;
    const loudest = r.logmel?.windows.reduce((a, w) => (!a || w.rms > a.rms ? w : a), null);
    if (loudest) {
      drawSpectrogram(loudest.data, [1, 1, ...r.logmel.dims], contract.frontend?.top_db ?? 80);
      $('spec-caption').textContent = `(window at ${loudest.start_s.toFixed(1)} s)`;
    }
    const silent = r.silent_windows_start_s.length;
    window.demoResult = { file: name, backend: model.backend, placement: model.clf.placement, model: model.url, labels, verdict: r.verdict,
      probabilities: r.probabilities ? labels.map((l) => r.probabilities[l]) : null,
      top: r.probabilities ? $('top').textContent : null,
      windows: kept.map((w) => ({ startSeconds: w.start_s, verdict: w.verdict,
        probabilities: w.probabilities ? labels.map((l) => w.probabilities[l]) : null,
        speechFraction: w.speech_fraction, oodScore: w.ood_score })),
      silentWindows: silent, calibrated: r.calibrated, ms: r.ms };
    const skipped = [[silent, 'silent'], [r.no_speech_windows_start_s.length, 'without speech'],
      [r.uncertain_windows_start_s.length, 'uncertain']].filter(([k]) => k).map(([k, what]) => `${k} ${what}`);
    setState('done', `${name}: ${r.duration_s.toFixed(2)} s, ${r.windows.length} window(s)` +
      `${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}; ${model.backend} took ${r.ms.toFixed(0)} ms.`);
  } catch (e) {
    window.demoResult = { error: String(e.message || e) };
    setState('error', `Could not analyse ${name}: ${e.message || e}`);
  }
}

$('file').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (file) await analyse(await file.arrayBuffer(), file.name);
});

$('model').addEventListener('change', () => loadModel().catch((e) => setState('error', e.message)));
$('backend').addEventListener('change', () => loadModel().catch((e) => setState('error', e.message)));

const TIMELINE_LENGTH = 40; // hops shown (20 s at 0.5 s)
let recorder = null;
let listener = null;

function addHop({ label, verdict, endSeconds }) {
  const li = document.createElement('li');
  li.className = verdict;
  li.textContent = label;
  li.title = `window ending at ${endSeconds.toFixed(1)} s`;
  $('timeline').append(li);
  while ($('timeline').children.length > TIMELINE_LENGTH) $('timeline').firstElementChild.remove();
}

$('record').addEventListener('click', async () => {
  if (recorder) {
    recorder.stop();
    return;
  }
  try {
    const model = await loadModel();
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    $('timeline').textContent = '';
    window.demoLive = [];
    listener = model.clf.listen(stream, { hopSeconds: 0.5 });
    listener.addEventListener('result', ({ detail: r }) => {
      const label = r.top ?? (r.verdict === NO_SPEECH ? 'no speech' : r.verdict);
      window.demoLive.push({ endSeconds: r.endSeconds, verdict: r.verdict, top: r.top, latencyMs: r.latencyMs,
        thread: r.timings.thread });
      addHop({ label, verdict: r.verdict === CLASSIFIED ? CLASSIFIED : r.verdict, endSeconds: r.endSeconds });
      const t = r.timings;
      $('live-caption').textContent = `(${r.endSeconds.toFixed(1)} s, ${r.latencyMs.toFixed(0)} ms per result: model `
        + `${t.modelMs.toFixed(0)} ms, voice activity ${t.vadMs.toFixed(0)} ms, the rest ${(r.latencyMs - t.modelMs - t.vadMs).toFixed(0)} ms `
        + `${t.thread === 'worker' ? 'in the worker' : 'on the page\'s thread'}; ${r.dropped} dropped)`;
    });
    listener.addEventListener('drop', ({ detail }) => addHop({ label: 'dropped', verdict: 'dropped', endSeconds: detail.endSeconds }));
    listener.addEventListener('error', ({ detail }) => setState('error', `Live classification stopped: ${detail.message || detail}`));
    recorder.onstop = async () => {
      await listener.stop();
      listener = null;
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      $('record').classList.remove('recording');
      $('record').textContent = 'Record from microphone';
      await analyse(await new Blob(chunks).arrayBuffer(), 'recording');
    };
    recorder.start();
    $('record').classList.add('recording');
    $('record').textContent = 'Stop recording';
    setState('recording', 'Recording: the timeline shows the emotion of the last 2.1 s every 0.5 s; click again to stop.');
  } catch (e) {
    setState('error', `Microphone unavailable: ${e.message || e}`);
  }
});

try {
  await listModels();
  await loadModel();
} catch (e) {
  setState('error', e.message || String(e));
}
window.demoReady = true;
