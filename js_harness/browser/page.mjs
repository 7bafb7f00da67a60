// The in-page half of browser_runner.mjs: onnxruntime-web sessions and a small API on window.harness.
// The onnxruntime-web build (?bundle=): 'all' (every backend; what the gate's runners load) or 'wasm'
// (the wasm-only build, which `bench` times beside it).
const BUNDLES = { all: 'ort.all.min.mjs', wasm: 'ort.wasm.min.mjs' };
const bundle = new URLSearchParams(location.search).get('bundle') || 'all';
if (!BUNDLES[bundle]) throw new Error(`unknown onnxruntime-web bundle '${bundle}' (all or wasm)`);
const ort = await import(`/ort/${BUNDLES[bundle]}`);
import { pinDimensions } from '/lib/onnx_model.mjs';
import { runCase } from '/lib/opcase.mjs';
import { toModelInputs } from '/lib/preprocess.mjs';
import { postprocessBatch } from '/lib/postprocess.mjs';
import { feedShapes, runStream, splitStreams } from '/lib/stream.mjs';

ort.env.wasm.wasmPaths = '/ort/';

let modelBytes = null;
let state = null;
const sessions = new Map();

function toBase64(array) {
  const u8 = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

// WebGL checks input shapes literally and ignores freeDimensionOverrides, so its model
// gets the symbolic dims pinned per batch size (one session per size, see
// lib/onnx_model.mjs); wasm and webgpu take any batch in one session.
async function session(batch, verbose = false) {
  const key = state.backend === 'webgl' ? batch : 'any';
  if (!sessions.has(key)) {
    const options = { executionProviders: [state.backend], graphOptimizationLevel: 'all',
      logSeverityLevel: verbose ? 0 : 3, logVerbosityLevel: 0 };
    let bytes = modelBytes;
    if (state.backend === 'webgl') {
      const names = Object.keys(state.overrides || { batch: 1 });
      bytes = pinDimensions(modelBytes, Object.fromEntries(names.map((n) => [n, batch])));
    }
    sessions.set(key, await ort.InferenceSession.create(bytes, options));
  }
  return sessions.get(key);
}

async function fetchFloats(url) {
  return new Float32Array(await (await fetch(url)).arrayBuffer());
}

async function readOutput(tensor) {
  return tensor.location && tensor.location !== 'cpu' ? await tensor.getData() : tensor.data;
}

function webglRenderer() {
  try {
    const gl = document.createElement('canvas').getContext('webgl2') || document.createElement('canvas').getContext('webgl');
    if (!gl) return null;
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
  } catch (e) {
    return `error: ${e.message}`;
  }
}

async function webgpuAdapter() {
  if (!navigator.gpu) return null;
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { available: false };
    const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
    return { available: true, vendor: info.vendor, architecture: info.architecture, device: info.device,
      description: info.description };
  } catch (e) {
    return { available: false, error: e.message };
  }
}

// onnxruntime logs "Node placements ... placed on [Provider]. Number of nodes: N" at verbose
// level when a session is created; browser_runner.mjs reads it from the page's console
// (the wasm module binds console.log when it loads, so the page cannot capture it itself).
async function verboseSession(batch) {
  const previous = ort.env.logLevel;
  ort.env.logLevel = 'verbose';
  try {
    return await session(batch, true);
  } finally {
    ort.env.logLevel = previous;
  }
}

// WebGL checks input shapes literally: the symbolic dims of the model's inputs pinned to the shapes the stream
// feeds (read from a wasm session's input metadata; dims without a name cannot be pinned and stay as they are).
async function pinnedForStream(bytes, protocol) {
  const probe = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], logSeverityLevel: 3 });
  const shapes = feedShapes(protocol);
  const pins = {};
  for (const m of probe.inputMetadata || []) {
    (m.isTensor && shapes[m.name] ? m.shape : []).forEach((d, j) => {
      if (typeof d === 'string' && d) pins[d] = shapes[m.name][j];
    });
  }
  await probe.release();
  return Object.keys(pins).length ? pinDimensions(bytes, pins) : bytes;
}

window.harness = {
  async load({ modelUrl, backend, threads, outputs, freeDimensionOverrides }) {
    for (const s of sessions.values()) await s.release();
    sessions.clear();
    ort.env.wasm.numThreads = threads;
    modelBytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
    state = { backend, outputs, overrides: freeDimensionOverrides };
    const t0 = performance.now();
    await verboseSession(1);
    const s = await session(1);
    state.outputs = outputs && outputs.length ? outputs : s.outputNames;
    const missing = state.outputs.filter((n) => !s.outputNames.includes(n));
    if (missing.length) throw new Error(`model has no outputs ${JSON.stringify(missing)}`);
    return { outputs: state.outputs, loadMs: performance.now() - t0 };
  },

  async run({ inputUrl, dims }) {
    const data = await fetchFloats(inputUrl);
    const s = await session(dims[0]);
    const t0 = performance.now();
    const res = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', data, dims) }, state.outputs);
    const outputs = [];
    for (const name of state.outputs) {
      const t = res[name];
      outputs.push({ name, dims: t.dims, b64: toBase64(await readOutput(t)) });
    }
    return { outputs, ms: performance.now() - t0 };
  },

  async bench({ inputUrl, dims, warmup, repeat }) {
    const data = await fetchFloats(inputUrl);
    const s = await session(dims[0]);
    const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', data, dims) };
    const once = async () => {
      const res = await s.run(feeds, state.outputs);
      for (const name of state.outputs) await readOutput(res[name]);
    };
    for (let i = 0; i < warmup; i++) await once();
    const ms = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = performance.now();
      await once();
      ms.push(performance.now() - t0);
    }
    return { ms };
  },

  // The shipped preprocessing (lib/preprocess.mjs) in this browser's JS engine: a planar float32
  // recording in, the model windows out (base64 float32, null for a silent window).
  async preprocess({ inputUrl, channels, sampleRate, contract }) {
    const all = await fetchFloats(inputUrl);
    const n = all.length / channels;
    if (!Number.isInteger(n)) throw new Error('input length is not a multiple of the channel count');
    const planar = Array.from({ length: channels }, (_, c) => all.subarray(c * n, (c + 1) * n));
    const t0 = performance.now();
    const result = toModelInputs(planar, sampleRate, contract);
    const ms = performance.now() - t0;
    const windows = result.windows.map((w) => ({ start: w.start, silent: w.samples === null,
      b64: w.samples ? toBase64(w.samples) : null }));
    return { windows, ms };
  },

  // The shipped post-processing (lib/postprocess.mjs) in this browser's JS engine; the VAD runs on wasm.
  async postprocess({ vadUrl, windowsUrl, dims, logitsUrl, logitsDims, logmelUrl, logmelDims, sampleRate, params }) {
    const vadBytes = new Uint8Array(await (await fetch(vadUrl)).arrayBuffer());
    const t0 = performance.now();
    const result = await postprocessBatch(ort, vadBytes, { windows: await fetchFloats(windowsUrl), dims,
      logits: await fetchFloats(logitsUrl), logitsDims, logmel: await fetchFloats(logmelUrl), logmelDims,
      sampleRate, params });
    const ms = performance.now() - t0;
    return { ...result, frames: toBase64(result.frames), ms };
  },

  // One case of the measured operator table (lib/opcase.mjs), with onnxruntime's verbose log on so
  // that browser_runner.mjs can read the node placements.  `pin` (WebGL only): symbolic dimensions
  // to pin in the model bytes first, as the runners and the demo do.
  async opcase({ modelUrl, backend, inputs, pin }) {
    let bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
    if (backend === 'webgl' && pin) bytes = pinDimensions(bytes, pin);
    const fed = [];
    for (const i of inputs) fed.push({ ...i, bytes: new Uint8Array(await (await fetch(i.url)).arrayBuffer()) });
    const options = { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 0,
      logVerbosityLevel: 0 };
    ort.env.wasm.numThreads = 1;
    const previous = ort.env.logLevel;
    ort.env.logLevel = 'verbose';
    let result;
    try {
      result = await runCase(ort, bytes, options, fed, readOutput);
    } finally {
      ort.env.logLevel = previous;
    }
    return { ...result, outputs: result.outputs.map((o) => ({ name: o.name, dtype: o.dtype, dims: o.dims,
      b64: toBase64(o.bytes) })) };
  },

  // Whole streams through a stateful model (lib/stream.mjs loops over the chunks), in one page call: the
  // streams file holds every stream's float32 samples one after another.  A verbose session is created
  // first, only for onnxruntime's node-placement log (browser_runner.mjs reads it from the console).
  async stream({ modelUrl, backend, threads, protocol, inputUrl, lengths }) {
    const bytes = new Uint8Array(await (await fetch(modelUrl)).arrayBuffer());
    const streams = splitStreams(await fetchFloats(inputUrl), lengths);
    ort.env.wasm.numThreads = threads;
    const options = { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
    const previous = ort.env.logLevel;
    ort.env.logLevel = 'verbose';
    try {
      await (await ort.InferenceSession.create(bytes, { ...options, logSeverityLevel: 0, logVerbosityLevel: 0 })).release();
    } finally {
      ort.env.logLevel = previous;
    }
    const s = await ort.InferenceSession.create(backend === 'webgl' ? await pinnedForStream(bytes, protocol) : bytes,
      options);
    try {
      const t0 = performance.now();
      const results = [];
      for (const samples of streams) results.push(await runStream(ort, s, protocol, samples));
      const ms = performance.now() - t0;
      const encode = (tensors) => Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name,
        { dims: t.dims, b64: toBase64(t.data) }]));
      return { streams: results.map((r) => ({ chunks: r.chunks, outputs: encode(r.outputs),
        finalState: encode(r.finalState) })), ms, threads: ort.env.wasm.numThreads };
    } finally {
      await s.release();
    }
  },

  async info() {
    return { userAgent: navigator.userAgent, webglRenderer: webglRenderer(), webgpuAdapter: await webgpuAdapter(),
      crossOriginIsolated: self.crossOriginIsolated, wasm: { numThreads: ort.env.wasm.numThreads },
      ortEnvVersions: ort.env.versions };
  },
};
