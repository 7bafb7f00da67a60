// The ser_export demo: a released model in the browser, with the shipped preprocessing.
import * as ort from '/ort/ort.all.min.mjs';
import { pinDimensions, readContract } from '/lib/onnx_model.mjs';
import { softmax, toModelInputs } from '/lib/preprocess.mjs';
import { CLASSIFIED, NO_SPEECH, UNCERTAIN, VoiceActivity, decide } from '/lib/postprocess.mjs';

ort.env.wasm.wasmPaths = '/ort/';
ort.env.logLevel = 'error';

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
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${name}: cannot be downloaded (HTTP ${res.status})`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const contract = readContract(bytes, name); // a clear ModelFileError for a truncated or foreign file
    // WebGL checks input shapes literally and ignores freeDimensionOverrides: pin the batch.
    const modelBytes = backend === 'webgl' ? pinDimensions(bytes, { batch: 1 }) : bytes;
    let session;
    try {
      session = await ort.InferenceSession.create(modelBytes, { executionProviders: [backend] });
    } catch (e) {
      throw new Error(`${name}: onnxruntime-web cannot load it on ${backend} (${String(e.message || e).split('\n')[0]})`);
    }
    // The shipped post-processing: Silero VAD (the release's copy, on wasm), calibration, "uncertain".
    let vad = null;
    if (contract.postprocessing) {
      const vadUrl = new URL(contract.postprocessing.vad.file, new URL(url, location.href)).href;
      const vadRes = await fetch(vadUrl);
      if (!vadRes.ok) throw new Error(`${contract.postprocessing.vad.file}: the voice-activity model cannot be downloaded (HTTP ${vadRes.status})`);
      vad = await VoiceActivity.create(ort, new Uint8Array(await vadRes.arrayBuffer()), contract.postprocessing.vad);
    }
    sessions.set(key, { url, backend, session, contract, vad });
  }
  current = sessions.get(key);
  const c = current.contract;
  $('contract').textContent = `Model input: ${c.inputLength} samples at ${c.sampleRate} Hz, RMS-normalised to ` +
    `${c.normalization.rms_level_db} dB; labels ${c.labels.join(', ')}; front-end ${c.frontend?.implementation ?? '?'}.`;
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

async function analyse(arrayBuffer, name) {
  try {
    const model = await loadModel();
    setState('running', `Analysing ${name}...`);
    const bytes = new Uint8Array(arrayBuffer);
    const { channels, sampleRate } = await decode(arrayBuffer.slice(0), wavSampleRate(bytes));
    const { windows, durationSeconds } = toModelInputs(channels, sampleRate, model.contract);
    const { session, contract } = model;
    const pp = contract.postprocessing;
    const featuresName = contract.featuresOutput && session.outputNames.includes(contract.featuresOutput) ? contract.featuresOutput : null;
    if (pp && !featuresName) throw new Error(`${model.url.split('/').pop()}: has post-processing metadata but no log-mel output`);
    const perWindow = [];
    let loudest = null;
    const t0 = performance.now();
    const kept = windows.filter((w) => w.samples);
    const logitsList = [];
    const logmelList = [];
    let logmelDims = null;
    for (const w of kept) {
      const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', w.samples, [1, contract.inputLength]) };
      const out = await session.run(feeds);
      logitsList.push(Float32Array.from(out[session.outputNames[0]].data));
      if (featuresName) {
        logmelList.push(out[featuresName].data.slice());
        logmelDims = out[featuresName].dims;
        if (!loudest || w.rms > loudest.rms) loudest = { rms: w.rms, t: w.startSeconds, data: logmelList.at(-1), dims: logmelDims };
      }
    }
    let decisions = null;
    if (pp && model.vad) {
      const frames = await model.vad.frameProbabilities(kept.map((w) => w.samples), contract.sampleRate);
      decisions = decide({ frames, logits: logitsList, logmel: logmelList, dims: logmelDims.slice(-2) }, pp);
    }
    kept.forEach((w, i) => perWindow.push({
      startSeconds: w.startSeconds,
      verdict: decisions ? decisions.verdicts[i] : CLASSIFIED,
      probabilities: decisions ? decisions.probabilities[i] : softmax(logitsList[i]),
      speechFraction: decisions ? decisions.speechFraction[i] : null,
      oodScore: decisions ? decisions.oodScore[i] : null,
    }));
    const ms = performance.now() - t0;
    const classified = perWindow.filter((w) => w.verdict === CLASSIFIED);
    const verdict = classified.length ? CLASSIFIED : perWindow.some((w) => w.verdict === UNCERTAIN) ? UNCERTAIN : NO_SPEECH;
    let probs = null;
    if (classified.length) {
      probs = contract.labels.map((_, i) => classified.reduce((s, w) => s + w.probabilities[i], 0) / classified.length);
      drawBars(contract.labels, probs);
    } else {
      $('bars').textContent = '';
      $('top').textContent = verdict === NO_SPEECH ? 'no speech detected' : 'uncertain';
      $('bars').textContent = verdict === NO_SPEECH
        ? 'The voice-activity detector heard no speech in this recording, so no emotion is named.'
        : 'This speech is unlike the speech the model was trained on, or the model is unsure, so no emotion is named.';
    }
    document.body.dataset.verdict = verdict;
    if (loudest) {
      drawSpectrogram(loudest.data, loudest.dims, contract.frontend?.top_db ?? 80);
      $('spec-caption').textContent = `(window at ${loudest.t.toFixed(1)} s)`;
    }
    const silent = windows.length - perWindow.length;
    const count = (v) => perWindow.filter((w) => w.verdict === v).length;
    window.demoResult = { file: name, backend: model.backend, model: model.url, labels: contract.labels, verdict,
      probabilities: probs, top: probs ? $('top').textContent : null, windows: perWindow, silentWindows: silent,
      calibrated: Boolean(decisions), ms };
    const skipped = [[silent, 'silent'], [count(NO_SPEECH), 'without speech'], [count(UNCERTAIN), 'uncertain']]
      .filter(([k]) => k).map(([k, what]) => `${k} ${what}`);
    setState('done', `${name}: ${durationSeconds.toFixed(2)} s, ${windows.length} window(s)` +
      `${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}; ${model.backend} took ${ms.toFixed(0)} ms.`);
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

let recorder = null;
$('record').addEventListener('click', async () => {
  if (recorder) {
    recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop());
      recorder = null;
      $('record').classList.remove('recording');
      $('record').textContent = 'Record from microphone';
      await analyse(await new Blob(chunks).arrayBuffer(), 'recording');
    };
    recorder.start();
    $('record').classList.add('recording');
    $('record').textContent = 'Stop recording';
    setState('recording', 'Recording... click again to stop (2.1 s or more works best).');
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
