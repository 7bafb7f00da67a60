// ser-export-web: speech-emotion recognition with a ser_export model, in the browser (onnxruntime-web
// on wasm, WebGL or WebGPU) and in Node (wasm).
//
//   import { loadClassifier } from 'ser-export-web';
//   const clf = await loadClassifier('/models/voice_emotion_cnn.onnx', { backend: 'wasm' });
//   const result = await clf.classify(audioBuffer);          // or (Float32Array, sampleRate)
//   console.log(result.verdict, result.top, result.probabilities);
//   await clf.release();
//
// The model carries its own contract (labels, sample rate, window length, normalisation) and
// post-processing (Silero VAD, temperature, "uncertain" thresholds) in its ONNX metadata; the
// log-mel front-end is inside the graph.  `classify` returns the same windows, verdicts and
// calibrated probabilities as `python -m ser_export predict FILE --json` (the same JSON layout;
// the parity suite checks the numbers).
import { BackendUnavailableError, ModelFileError, SerExportError } from './errors.mjs';
import { concat, pinDimensions, readContract } from './onnx_model.mjs';
import { softmax } from './dsp.mjs';
import { CLASSIFIED, NO_SPEECH, UNCERTAIN, VoiceActivity, decide } from './postprocess.mjs';
import { toModelInputs } from './preprocess.mjs';
import { toChannels } from './channels.mjs';
import { Listener } from './listen.mjs';
import { fallbacks, notProven, provePlacement } from './placement.mjs';
import { WorkerClassifier } from './worker_client.mjs';
import { classifyBlocks } from './blocks.mjs';

export { Listener } from './listen.mjs';

export * from './errors.mjs';
export { CLASSIFIED, NO_SPEECH, UNCERTAIN } from './postprocess.mjs';
export { readContract } from './onnx_model.mjs';
export { PROVIDERS, placementFromLog } from './placement.mjs';

/** Verdict of a window below the model's RMS floor (never run through the model). */
export const SILENT = 'silent';

/** The backends a classifier can run on. */
export const BACKENDS = Object.freeze(['wasm', 'webgl', 'webgpu']);

const IN_NODE = typeof process !== 'undefined' && Boolean(process.versions?.node) && typeof window === 'undefined';
/** In a worker (the package's own, or an app's): the model runs off the page's main thread. */
const IN_WORKER = typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined' && self instanceof WorkerGlobalScope;

/** The module specifier of the onnxruntime-web build `importOrt` loads for `backend`. */
function ortSpecifier(backend) {
  if (IN_NODE) return 'onnxruntime-web';
  return { wasm: 'onnxruntime-web/wasm', webgpu: 'onnxruntime-web/webgpu' }[backend] ?? 'onnxruntime-web/all';
}

/**
 * The onnxruntime-web build that fits `backend`: the wasm-only bundle for wasm (smaller and, measured
 * in Chromium, faster than the all-backends one), the WebGPU bundle for webgpu (it has the wasm
 * backend the VAD runs on), the all-backends bundle for webgl (the WebGL build has no wasm backend
 * for the VAD).  In Node, the package's Node entry (wasm only).
 */
async function importOrt(backend) {
  // literal specifiers, so that bundlers see each build (ortSpecifier names the same ones)
  if (IN_NODE) return import('onnxruntime-web');
  if (backend === 'wasm') return import('onnxruntime-web/wasm');
  if (backend === 'webgpu') return import('onnxruntime-web/webgpu');
  return import('onnxruntime-web/all');
}

/** The URL `importOrt` loads for `backend` (as the page's import map or the bundler resolves it), or null. */
function ortUrlOf(backend) {
  try {
    return typeof import.meta.resolve === 'function' ? import.meta.resolve(ortSpecifier(backend)) : null;
  } catch {
    return null;
  }
}

/** Why `backend` cannot run here, or null when it may (checked before anything is downloaded). */
async function backendProblem(backend) {
  if (!BACKENDS.includes(backend)) return `unknown backend '${backend}' (choose ${BACKENDS.join(', ')})`;
  if (IN_NODE) return backend === 'wasm' ? null : `the ${backend} backend needs a browser; in Node only wasm runs`;
  if (backend === 'webgpu') {
    if (typeof navigator === 'undefined' || !navigator.gpu) return 'this browser has no WebGPU (navigator.gpu is missing)';
    let adapter = null;
    try {
      adapter = await navigator.gpu.requestAdapter();
    } catch (e) {
      return `WebGPU has no adapter here (${e.message || e})`;
    }
    if (!adapter) return 'WebGPU has no adapter here (navigator.gpu.requestAdapter() returned null)';
  }
  if (backend === 'webgl') {
    // a page's canvas, as onnxruntime-web's WebGL backend uses (Chromium may still offer WebGL2 on an
    // OffscreenCanvas when it is disabled for pages); an OffscreenCanvas in a worker
    const canvas = typeof document !== 'undefined' ? document.createElement('canvas')
      : typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(1, 1) : null;
    if (!canvas || !canvas.getContext('webgl2')) return 'this browser has no WebGL2 context';
  }
  return null;
}

/**
 * Whether loadClassifier runs the model in the package's worker: `worker` as given (true is refused
 * where the worker cannot run the model), else in a page on wasm unless onnxruntime-web's proxy is
 * asked for or an `ort` module is given without the URL the worker could import it from.
 */
function chooseWorker(worker, { backend, proxy, givenOrt, ortUrl }) {
  if (worker !== undefined && typeof worker !== 'boolean') throw new TypeError(`worker must be true or false, got ${worker}`);
  if (worker === false) return false;
  const why = IN_NODE ? 'in Node the model runs in-thread'
    : IN_WORKER ? 'this is already a worker'
      : backend !== 'wasm' ? `the worker runs wasm, not ${backend}`
        : proxy ? 'proxy and worker are two ways off the page\'s thread: choose one'
          : typeof Worker === 'undefined' ? 'this environment has no Worker'
            : givenOrt && !ortUrl ? 'options.ort is given without options.ortUrl, the URL the worker imports it from'
              : null;
  if (worker === true && why) throw new TypeError(`options.worker: ${why}`);
  return !why;
}

/** The wasm threads to use: `threads`, else every core when the page is cross-origin isolated, else 1. */
export function defaultThreads() {
  if (IN_NODE) return 1;
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const cores = typeof navigator !== 'undefined' && navigator.hardwareConcurrency > 0 ? navigator.hardwareConcurrency : 1;
  return isolated ? cores : 1;
}

function nameOf(model) {
  if (typeof model === 'string') return model.split(/[\\/]/).pop() || model;
  if (typeof URL !== 'undefined' && model instanceof URL) return model.pathname.split('/').pop() || model.href;
  if (typeof Response !== 'undefined' && model instanceof Response) return (model.url || 'model').split('/').pop();
  return 'model';
}

function isBytes(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function isUrlLike(value) {
  return (typeof value === 'string') || (typeof URL !== 'undefined' && value instanceof URL);
}

async function readResponse(res, name, onProgress) {
  if (!res.ok) throw new ModelFileError(`${name}: cannot be downloaded (HTTP ${res.status})`);
  const total = Number(res.headers.get('content-length')) || null;
  if (!onProgress || !res.body || !res.body.getReader) { // progress needs the body chunk by chunk
    const bytes = new Uint8Array(await res.arrayBuffer());
    onProgress?.({ loaded: bytes.length, total: total ?? bytes.length });
    return bytes;
  }
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  onProgress?.({ loaded, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress?.({ loaded, total });
  }
  return concat(chunks);
}

/** Bytes of a model given as a URL/path, a Response, or bytes; `onProgress({loaded, total})` while downloading. */
async function readBytes(model, name, onProgress) {
  if (model instanceof Uint8Array) return model;
  if (model instanceof ArrayBuffer) return new Uint8Array(model);
  if (ArrayBuffer.isView(model)) return new Uint8Array(model.buffer, model.byteOffset, model.byteLength);
  if (typeof Response !== 'undefined' && model instanceof Response) return readResponse(model, name, onProgress);
  if (isUrlLike(model)) {
    const text = String(model);
    if (IN_NODE && !/^(https?|data|blob):/i.test(text)) { // a file path or file: URL
      const { readFile } = await import('node:fs/promises');
      const { fileURLToPath } = await import('node:url');
      try {
        const bytes = new Uint8Array(await readFile(text.startsWith('file:') ? fileURLToPath(text) : text));
        onProgress?.({ loaded: bytes.length, total: bytes.length });
        return bytes;
      } catch (e) {
        throw new ModelFileError(`${name}: cannot be read (${e.code || e.message})`);
      }
    }
    let res;
    try {
      res = await fetch(model);
    } catch (e) {
      throw new ModelFileError(`${name}: cannot be downloaded (${e.message || e})`);
    }
    return readResponse(res, name, onProgress);
  }
  throw new TypeError('model must be a URL or path, a Response, an ArrayBuffer or a Uint8Array');
}

/** Where the VAD file named in the metadata lies, relative to the model's own location (null: unknown). */
/** The reduced-precision variants a ser_export release ships beside each model (ser_export/export/variants.py's VARIANTS). */
export const VARIANTS = Object.freeze(['fp16', 'int8', 'int8s']);

/**
 * The file of `model`'s `variant` beside it: `…/voice_emotion_cnn.onnx` -> `…/voice_emotion_cnn.int8s.onnx`
 * (a URL's query and fragment kept); `model` itself when `variant` is undefined or null.
 */
export function variantSource(model, variant) {
  if (variant === undefined || variant === null) return model;
  if (!VARIANTS.includes(variant)) throw new TypeError(`variant must be one of ${VARIANTS.join(', ')}, got ${variant}`);
  if (!isUrlLike(model)) {
    throw new TypeError(`variant '${variant}' names the file beside the model: give the model as a URL or path, not bytes or a Response`);
  }
  const rename = (path) => {
    if (!/\.onnx$/i.test(path)) throw new TypeError(`variant '${variant}': ${path} does not end in .onnx`);
    return `${path.slice(0, -5)}.${variant}.onnx`;
  };
  if (typeof URL !== 'undefined' && model instanceof URL) {
    const url = new URL(model.href);
    url.pathname = rename(url.pathname);
    return url;
  }
  const cut = model.search(/[?#]/);
  return cut < 0 ? rename(model) : rename(model.slice(0, cut)) + model.slice(cut);
}

function besideModel(model, file) {
  if (typeof Response !== 'undefined' && model instanceof Response) return model.url ? new URL(file, model.url).href : null;
  if (!isUrlLike(model)) return null;
  const text = String(model);
  if (IN_NODE && !/^(https?|data|blob):/i.test(text)) {
    if (text.startsWith('file:')) return new URL(file, text).href;
    const cut = Math.max(text.lastIndexOf('/'), text.lastIndexOf('\\'));
    return cut < 0 ? file : `${text.slice(0, cut + 1)}${file}`;
  }
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return new URL(file, new URL(text, base)).href;
}

function labelled(labels, probs) {
  return probs ? Object.fromEntries(labels.map((l, i) => [l, probs[i]])) : null;
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** A loaded model: `classify` recordings, `listen` to a microphone, `release` when done. */
export class Classifier {
  constructor({ ort, session, contract, backend, placement, threads, proxy, vad, name }) {
    this.ort = ort;
    this.session = session;
    this.contract = contract;
    /**
     * The backend the model's nodes run on ('wasm', 'webgl' or 'webgpu'): every node, as
     * `placement` proves (a model some of whose nodes fell back is refused at load).
     */
    this.backend = backend;
    /**
     * Where onnxruntime placed the nodes: {providers: {provider: nodes or 'all'}, proven, source}.
     * `proven` is false (and `source` says why) when the proof could not be made here.
     */
    this.placement = placement;
    /** The wasm threads onnxruntime-web uses. */
    this.threads = threads;
    /** Whether onnxruntime-web runs in a worker (its proxy), off the page's main thread. */
    this.proxy = proxy;
    this.vad = vad;
    this.name = name;
    /** Where the model runs: 'main' (the page's or Node's thread) or 'worker'. */
    this.thread = IN_WORKER ? 'worker' : 'main';
    this.labels = contract.labels;
    this.sampleRate = contract.sampleRate;
    this.windowSeconds = contract.inputLength / contract.sampleRate;
    this.released = false;
  }

  _check() {
    if (this.released) throw new SerExportError(`${this.name}: this classifier was released`);
  }

  /** Logits and log-mel of model windows (Float32Array each of contract.inputLength samples). */
  async _run(windows) {
    const { ort, session, contract } = this;
    const out = { logits: [], logmel: [], logmelDims: null };
    if (!windows.length) return out;
    const featuresName = contract.featuresOutput && session.outputNames.includes(contract.featuresOutput)
      ? contract.featuresOutput : null;
    if (contract.postprocessing && !featuresName) {
      throw new ModelFileError(`${this.name}: has post-processing metadata but no log-mel output`);
    }
    const names = [session.outputNames[0], ...(featuresName ? [featuresName] : [])];
    // WebGL's session is pinned to batch 1; wasm and WebGPU take every window in one run.
    const groups = this.backend === 'webgl' ? windows.map((w) => [w]) : [windows];
    for (const group of groups) {
      const input = new Float32Array(group.length * contract.inputLength);
      group.forEach((w, i) => input.set(w, i * contract.inputLength));
      const res = await session.run(
        { [session.inputNames[0]]: new ort.Tensor('float32', input, [group.length, contract.inputLength]) }, names);
      const read = async (t) => (t.location && t.location !== 'cpu' ? t.getData() : t.data);
      const logits = await read(res[names[0]]);
      const c = res[names[0]].dims[1];
      for (let i = 0; i < group.length; i++) out.logits.push(Float32Array.from(logits.subarray(i * c, (i + 1) * c)));
      if (featuresName) {
        const t = res[featuresName];
        const data = await read(t);
        const per = data.length / group.length;
        for (let i = 0; i < group.length; i++) out.logmel.push(Float32Array.from(data.subarray(i * per, (i + 1) * per)));
        out.logmelDims = t.dims.slice(-2);
      }
    }
    for (const l of out.logits) {
      if (!l.every(Number.isFinite)) throw new SerExportError(`${this.name}: the model produced non-finite scores`);
    }
    return out;
  }

  /**
   * Classify a recording: `samples` is an AudioBuffer, a mono Float32Array or an array of channels,
   * at `sampleRate` Hz (any integer rate; an AudioBuffer brings its own).  Resolves to the JSON of
   * `python -m ser_export predict --json`: `verdict` ('classified', 'uncertain' or 'no_speech'),
   * `top`, `probabilities` (label -> mean calibrated probability over the classified windows, or
   * null), `windows` (per window: `start_s`, `verdict`, `top`, `speech_fraction`, `ood_score`,
   * `probabilities`), the start times of the skipped windows, `duration_s`; and `backend`, `ms`.
   * Throws EmptyAudioError, InvalidAudioError (NaN/Inf, a rate that is not a positive integer) or SilentAudioError.
   *
   * `options.logmel`: also return the graph's log-mel of every non-silent window as `logmel`:
   * {dims: [nMels, nFrames], windows: [{start_s, rms, data: Float32Array (nMels x nFrames, row-major)}]}.
   */
  async classify(samples, sampleRate, options = {}) {
    this._check();
    const { channels, sampleRate: rate } = toChannels(samples, sampleRate);
    const t0 = typeof performance !== 'undefined' ? performance.now() : Date.now();
    const { windows, durationSeconds } = toModelInputs(channels, rate, this.contract);
    const result = await this._classifyWindows(windows, Boolean(options.logmel));
    result.duration_s = Math.round(durationSeconds * 1000) / 1000;
    result.ms = (typeof performance !== 'undefined' ? performance.now() : Date.now()) - t0;
    return result;
  }

  /**
   * classify's block-wise form for long recordings (blocks.mjs): `blocks` is an iterable or async
   * iterable of blocks (a mono Float32Array, or an array of Float32Array channels) at `sampleRate`.
   * Resolves to classify's result on the whole recording, the same windows and numbers, holding a
   * block, the resampler's margin and `options.batchWindows` (default 16) windows, not the recording.
   */
  async classifyStream(blocks, sampleRate, options = {}) {
    this._check();
    return classifyBlocks(this, blocks, sampleRate, options);
  }

  /**
   * Windows from toModelInputs -> the predict JSON (without duration_s).  `timings` (an object, or
   * null) receives the milliseconds of the parts: modelMs, vadMs (the VAD's resampling to its rate
   * included), postprocessMs (calibration, OOD score, verdicts and the JSON).
   */
  async _classifyWindows(windows, withLogmel = false, timings = null) {
    const { contract } = this;
    const pp = contract.postprocessing;
    const clock = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());
    let t = clock();
    const lap = (part) => {
      const t1 = clock();
      if (timings) timings[part] = (timings[part] ?? 0) + t1 - t;
      t = t1;
    };
    const kept = windows.filter((w) => w.samples);
    const { logits, logmel, logmelDims } = await this._run(kept.map((w) => w.samples));
    lap('modelMs');
    let decisions = null;
    if (pp && kept.length) {
      const frames = await this.vad.frameProbabilities(kept.map((w) => w.samples), contract.sampleRate);
      lap('vadMs');
      decisions = decide({ frames, logits, logmel, dims: logmelDims }, pp);
    }
    const result = this._resultJson(windows, kept, logits, logmel, logmelDims, decisions, withLogmel);
    lap('postprocessMs');
    return result;
  }

  /** The predict JSON of `windows` from the model's outputs and the post-processing's decisions. */
  _resultJson(windows, kept, logits, logmel, logmelDims, decisions, withLogmel) {
    const { contract, labels } = this;
    const pp = contract.postprocessing;
    const perKept = kept.map((w, i) => ({
      verdict: decisions ? decisions.verdicts[i] : CLASSIFIED,
      probabilities: decisions ? decisions.probabilities[i] : softmax(logits[i]),
      speech_fraction: decisions ? decisions.speechFraction[i] : null,
      ood_score: decisions ? decisions.oodScore[i] : null,
    }));
    let k = 0;
    const rows = windows.map((w) => {
      const start = Math.round(w.startSeconds * 1000) / 1000;
      if (!w.samples) return { start_s: start, verdict: SILENT, top: null, speech_fraction: null, ood_score: null, probabilities: null };
      const d = perKept[k++];
      const classified = d.verdict === CLASSIFIED;
      return { start_s: start, verdict: d.verdict, top: classified ? labels[argmax(d.probabilities)] : null,
        speech_fraction: d.speech_fraction, ood_score: d.ood_score,
        probabilities: classified ? labelled(labels, d.probabilities) : null };
    });
    const classifiedRows = perKept.filter((d) => d.verdict === CLASSIFIED);
    const mean = classifiedRows.length
      ? labels.map((_, i) => classifiedRows.reduce((s, d) => s + d.probabilities[i], 0) / classifiedRows.length) : null;
    const speech = rows.some((r) => r.verdict === CLASSIFIED || r.verdict === UNCERTAIN);
    const starts = (verdict) => rows.filter((r) => r.verdict === verdict).map((r) => r.start_s);
    return {
      speech,
      verdict: classifiedRows.length ? CLASSIFIED : speech ? UNCERTAIN : NO_SPEECH,
      top: mean ? labels[argmax(mean)] : null,
      probabilities: labelled(labels, mean),
      calibrated: Boolean(pp),
      windows: rows,
      silent_windows_start_s: starts(SILENT),
      no_speech_windows_start_s: starts(NO_SPEECH),
      uncertain_windows_start_s: starts(UNCERTAIN),
      backend: this.backend,
      thread: this.thread,
      ...(withLogmel ? { logmel: { dims: logmelDims, windows: kept.map((w, i) => ({
        start_s: Math.round(w.startSeconds * 1000) / 1000, rms: w.rms, data: logmel[i] })) } } : {}),
    };
  }

  /**
   * Classify a live MediaStream (the microphone): every `hopSeconds` the last window of audio is
   * classified.  Returns a Listener: an async iterator of results (`for await (const r of
   * listener)`), an EventTarget ('result', 'drop', 'error' events), and `stop()`.
   */
  listen(mediaStream, options = {}) {
    this._check();
    return Listener.start(this, mediaStream, options);
  }

  /** Free the sessions (the model's and the VAD's). */
  async release() {
    if (this.released) return;
    this.released = true;
    await this.session.release();
    if (this.vad) await this.vad.release();
  }
}

/**
 * Load a ser_export model for classification.
 *
 * @param model a URL or (in Node) a file path, a fetch Response, or the ONNX bytes
 * @param options.backend 'wasm' (default), 'webgl' or 'webgpu'
 * @param options.threads wasm threads (default: navigator.hardwareConcurrency when the page is
 *   cross-origin isolated, else 1); onnxruntime-web fixes it when its first session is created
 * @param options.onProgress called with {loaded, total} (bytes; total null when unknown) while the model downloads
 * @param options.vadModel the Silero VAD file (URL, path, Response or bytes) when `model` is given as
 *   bytes; by default it is the file the metadata names, beside the model
 * @param options.ort an onnxruntime-web module to use instead of importing the one for the backend
 * @param options.ortUrl the URL of that module (webgpu: a worker loads it to prove the placement;
 *   by default the URL the page resolves the backend's onnxruntime-web build to)
 * @param options.proxy run onnxruntime-web's wasm in its proxy worker, so that the models never run on
 *   the page's main thread (wasm in a browser only; default false: see the README for what it costs);
 *   onnxruntime-web fixes it when its first session is created
 * @param options.proveBackend prove where the nodes run (default true; on WebGPU a worker creates a
 *   second, verbose session beside the page's own); false: `placement.proven` is false
 * @param options.worker run the whole classification (preprocessing, VAD, model, post-processing) in
 *   the package's module worker (worker.mjs), so that the page's thread only receives results: the
 *   default for wasm in a page (unless `proxy` or an `ort` module without its `ortUrl` is given);
 *   false: on the page's thread.  Not in Node, nor on WebGL or WebGPU.
 * @param options.wasmPaths onnxruntime-web's env.wasm.wasmPaths for the worker (default: the `ort`
 *   module's, else beside the build)
 * @param options.name the model's name in error messages (default: the file name of its URL)
 * @param options.variant load the model's reduced-precision variant beside it instead ('fp16', 'int8' or
 *   'int8s', see VARIANTS and variantSource; `model` must then be a URL or path)
 */
export async function loadClassifier(model, options = {}) {
  model = variantSource(model, options.variant);
  const { backend = 'wasm', threads, onProgress, vadModel, ort: givenOrt, ortUrl, proveBackend = true, proxy } = options;
  const problem = await backendProblem(backend);
  if (problem) throw new BackendUnavailableError(problem);
  const name = options.name ?? nameOf(model);
  // onnxruntime-web's proxy (opt-in): its wasm runs in a worker, so the model never runs on the page's
  // thread; but every session.run is then a message round trip, and the VAD runs once per 32 ms frame
  if (proxy && (IN_NODE || backend !== 'wasm')) {
    throw new TypeError(`proxy runs onnxruntime-web's wasm backend in a worker of a page: not ${IN_NODE ? 'in Node' : backend}`);
  }
  const inWorker = chooseWorker(options.worker, { backend, proxy, givenOrt, ortUrl });
  const wanted = threads ?? defaultThreads();
  if (!(Number.isInteger(wanted) && wanted >= 1)) throw new TypeError(`threads must be a positive integer, got ${threads}`);
  // with the worker the page imports no onnxruntime-web: the worker does
  const ort = inWorker ? null : givenOrt ?? await importOrt(backend);
  if (ort) {
    ort.env.wasm.numThreads = wanted;
    if (proxy !== undefined) ort.env.wasm.proxy = Boolean(proxy);
    if (ort.env.logLevel === undefined || ort.env.logLevel === 'warning') ort.env.logLevel = 'error';
  }
  // bytes that go to another thread (the package's worker, onnxruntime-web's proxy) move there: never the caller's
  const moves = inWorker || Boolean(ort?.env.wasm.proxy);
  const bytes = await readBytes(model, name, onProgress);
  const contract = readContract(bytes, name);
  const pp = contract.postprocessing;
  let vadBytes = null;
  if (pp) {
    const source = vadModel ?? besideModel(model, pp.vad.file);
    if (!source) {
      throw new ModelFileError(`${name}: given as bytes, so its voice-activity model ${pp.vad.file} cannot be found: `
        + 'pass options.vadModel');
    }
    vadBytes = await readBytes(source, pp.vad.file, null);
    if (moves && isBytes(source)) vadBytes = vadBytes.slice();
  }
  if (inWorker) {
    return WorkerClassifier.create({ bytes: isBytes(model) ? bytes.slice() : bytes, vadBytes, contract, name,
      threads: wanted, ortUrl: ortUrl ?? ortUrlOf('wasm'), wasmPaths: options.wasmPaths ?? givenOrt?.env.wasm.wasmPaths ?? null });
  }
  // WebGL checks input shapes literally and ignores freeDimensionOverrides: pin the batch to 1.
  // onnxruntime-web's proxy transfers (detaches) the bytes a session is created from: never the caller's
  const modelBytes = backend === 'webgl' ? pinDimensions(bytes, { batch: 1 })
    : moves && isBytes(model) ? bytes.slice() : bytes;
  const sessionOptions = { executionProviders: [backend], graphOptimizationLevel: 'all' };
  const proof = proveBackend
    ? provePlacement({ backend, bytes: modelBytes, options: sessionOptions, ortUrl: ortUrl ?? (givenOrt ? null : ortUrlOf(backend)) })
    : Promise.resolve(notProven('options.proveBackend is false'));
  let session;
  try {
    session = await ort.InferenceSession.create(modelBytes, { ...sessionOptions, logSeverityLevel: 3 });
  } catch (e) {
    await proof;
    throw new BackendUnavailableError(`${name}: onnxruntime-web cannot run it on ${backend} (${String(e.message || e).split('\n')[0]})`);
  }
  const placement = await proof;
  const fell = placement.proven ? fallbacks(placement, backend) : {};
  if (Object.keys(fell).length) {
    await session.release();
    const placed = Object.entries(placement.providers).map(([p, n]) => `${n} on ${p}`).join(', ');
    const off = Object.values(fell).reduce((a, n) => a + n, 0);
    throw new BackendUnavailableError(`${name}: onnxruntime-web leaves ${off} of its nodes off ${backend} `
      + `(placed: ${placed}); choose another backend`);
  }
  let vad = null;
  if (vadBytes) {
    try {
      vad = await VoiceActivity.create(ort, vadBytes, pp.vad);
    } catch (e) {
      await session.release();
      throw new ModelFileError(`${pp.vad.file}: the voice-activity model cannot be loaded (${String(e.message || e).split('\n')[0]})`);
    }
  }
  return new Classifier({ ort, session, contract, backend, placement, threads: ort.env.wasm.numThreads,
    proxy: Boolean(ort.env.wasm.proxy), vad, name });
}
