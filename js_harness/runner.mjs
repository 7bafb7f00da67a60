// Long-lived onnxruntime runner for the ser_export parity suite.
//
//   node runner.mjs --runtime web    onnxruntime-web (wasm backend)
//   node runner.mjs --runtime node   onnxruntime-node (native CPU)
//
// Protocol: one JSON request per line on stdin, one JSON response per line on stdout.
// Tensors travel as raw little-endian float32 files, so a whole batch of cases costs one
// request.  Requests:
//   {"id": 1, "cmd": "load", "model": "/abs/m.onnx", "backend": "wasm", "threads": 1,
//    "outputs": ["output", "..."], "freeDimensionOverrides": {"batch": 1}}
//   {"id": 2, "cmd": "run", "input": "/abs/x.f32", "dims": [n, 46305], "outDir": "/abs/dir"}
//   {"id": 3, "cmd": "bench", "input": "/abs/x.f32", "dims": [1, 46305], "warmup": 3, "repeat": 20}
//   {"id": 4, "cmd": "preprocess", "input": "/abs/rec.f32", "channels": 2, "sampleRate": 44100,
//    "contract": {...}, "outDir": "/abs/dir"}    (lib/preprocess.mjs on a planar recording)
//   {"id": 4, "cmd": "postprocess", "vadModel": "/abs/silero_vad.onnx", "windows": "/abs/w.f32", "dims": [b, n],
//    "logits": "/abs/l.f32", "logitsDims": [b, c], "logmel": "/abs/m.f32", "logmelDims": [b, mels, frames],
//    "sampleRate": 22050, "params": {...postprocessing}, "outDir": "/abs/dir"}   (lib/postprocess.mjs)
//   {"id": 4, "cmd": "opcase", "model": "/abs/m.onnx", "backend": "wasm",
//    "inputs": [{"name": "x", "dtype": "float32", "dims": [2, 3], "file": "/abs/x.bin"}], "outDir": "/abs/dir"}
//    (lib/opcase.mjs: one small model of the measured operator table; a failure is the answer)
//   {"id": 4, "cmd": "stream", "model": "/abs/m.onnx", "backend": "wasm", "threads": 1, "protocol": {...},
//    "input": "/abs/streams.f32", "lengths": [n0, n1], "outDir": "/abs/dir"}
//    (lib/stream.mjs: every stream through a stateful model, chunk by chunk, in this one request)
//   {"id": 4, "cmd": "info"}
//   {"id": 5, "cmd": "close"}
// Responses: {"id": ..., "ok": true, ...} or {"id": ..., "ok": false, "error": "..."}.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseOrExit } from './lib/cli.mjs';
import { serveRequests } from './lib/jsonl.mjs';
import { staticPlacement } from './packages/ser-export-web/src/placement.mjs';

const require = createRequire(import.meta.url);
const { values: args } = parseOrExit({ options: { runtime: { type: 'string' } } });
const runtime = args.runtime ?? 'web';
if (!['web', 'node'].includes(runtime)) {
  process.stderr.write(`unknown runtime ${runtime}\n`);
  process.exit(2);
}

const ort = runtime === 'web' ? await import('onnxruntime-web') : require('onnxruntime-node');
const here = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(readFileSync(join(here, 'node_modules', `onnxruntime-${runtime}`, 'package.json'), 'utf8'));

let session = null;
let loaded = null;


function info() {
  const out = {
    runtime: `onnxruntime-${runtime}`,
    version: pkg.version,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loaded,
  };
  if (runtime === 'web') {
    out.wasm = {
      numThreads: ort.env.wasm.numThreads,
      simd: ort.env.wasm.simd,
      proxy: ort.env.wasm.proxy,
    };
    out.ortEnvVersions = ort.env.versions;
  }
  return out;
}

async function load(req) {
  if (session) {
    await session.release();
    session = null;
  }
  const backend = req.backend || (runtime === 'web' ? 'wasm' : 'cpu');
  const threads = req.threads || 1;
  const options = { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (runtime === 'web') {
    if (backend !== 'wasm') {
      throw new Error(`backend ${backend} is not available in Node (only wasm); use the browser runner`);
    }
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = 'error';
  } else {
    if (backend !== 'cpu') throw new Error(`onnxruntime-node runs backend 'cpu' here, not ${backend}`);
    options.intraOpNumThreads = threads;
    options.interOpNumThreads = 1;
  }
  if (req.freeDimensionOverrides) options.freeDimensionOverrides = req.freeDimensionOverrides;
  const bytes = readFileSync(req.model);
  const t0 = performance.now();
  session = await ort.InferenceSession.create(bytes, options);
  const missing = (req.outputs || []).filter((n) => !session.outputNames.includes(n));
  if (missing.length) throw new Error(`model has no outputs ${JSON.stringify(missing.slice(0, 3))}`);
  loaded = {
    model: req.model,
    requestedBackend: backend,
    executionProviders: options.executionProviders,
    threads: runtime === 'web' ? ort.env.wasm.numThreads : threads,
    inputNames: session.inputNames,
    outputs: req.outputs && req.outputs.length ? req.outputs : session.outputNames,
    loadMs: performance.now() - t0,
  };
  return { info: info() };
}

async function run(req) {
  if (!session) throw new Error('no model loaded');
  const buf = readFileSync(req.input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const expected = req.dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new Error(`input holds ${data.length} floats, dims ask ${expected}`);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, req.dims) };
  const t0 = performance.now();
  const results = await session.run(feeds, loaded.outputs);
  const ms = performance.now() - t0;
  const outputs = loaded.outputs.map((name, i) => {
    const t = results[name];
    if (t.type !== 'float32') throw new Error(`output ${name} is ${t.type}, not float32`);
    const file = join(req.outDir, `${i}.f32`);
    writeFileSync(file, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return { name, file, dims: t.dims };
  });
  return { outputs, ms };
}

// Timing inside node: `repeat` runs of the same batch after `warmup` runs; returns each run's ms.
async function bench(req) {
  if (!session) throw new Error('no model loaded');
  const buf = readFileSync(req.input);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, req.dims) };
  for (let i = 0; i < (req.warmup ?? 3); i++) await session.run(feeds, loaded.outputs);
  const ms = [];
  for (let i = 0; i < (req.repeat ?? 20); i++) {
    const t0 = performance.now();
    await session.run(feeds, loaded.outputs);
    ms.push(performance.now() - t0);
  }
  return { ms };
}

// The shipped preprocessing (lib/preprocess.mjs) on a recording: planar float32 channels.
async function preprocess(req) {
  const { toModelInputs } = await import('./lib/preprocess.mjs');
  const buf = readFileSync(req.input);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const n = all.length / req.channels;
  if (!Number.isInteger(n)) throw new Error('input length is not a multiple of the channel count');
  const channels = Array.from({ length: req.channels }, (_, c) => all.subarray(c * n, (c + 1) * n));
  const t0 = performance.now();
  const result = toModelInputs(channels, req.sampleRate, req.contract);
  const ms = performance.now() - t0;
  const windows = result.windows.map((w, i) => {
    let file = null;
    if (w.samples) {
      file = join(req.outDir, `w${i}.f32`);
      writeFileSync(file, Buffer.from(w.samples.buffer, w.samples.byteOffset, w.samples.byteLength));
    }
    return { start: w.start, startSeconds: w.startSeconds, silent: w.samples === null, rms: w.rms, file };
  });
  return { windows, durationSeconds: result.durationSeconds, ms };
}

// The shipped post-processing (lib/postprocess.mjs: VAD, calibration, OOD flag) on a batch of windows
// with the logits and log-mel given (files of float32); the VAD's frame probabilities come back as a file.
async function postprocess(req) {
  const { postprocessBatch } = await import('./lib/postprocess.mjs');
  const floats = (file) => {
    const buf = readFileSync(file);
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  };
  const t0 = performance.now();
  const result = await postprocessBatch(ort, readFileSync(req.vadModel), { windows: floats(req.windows), dims: req.dims,
    logits: floats(req.logits), logitsDims: req.logitsDims, logmel: floats(req.logmel), logmelDims: req.logmelDims,
    sampleRate: req.sampleRate, params: req.params }, runtime === 'node' ? { executionProviders: ['cpu'] } : {});
  const ms = performance.now() - t0;
  const file = join(req.outDir, 'frames.f32');
  writeFileSync(file, Buffer.from(result.frames.buffer, result.frames.byteOffset, result.frames.byteLength));
  const { frames, ...rest } = result;
  return { ...rest, frames: file, ms };
}

// One case of the measured operator table: load, run, outputs as raw files, never a failed request.
async function opcase(req) {
  const { runCase } = await import('./lib/opcase.mjs');
  const backend = req.backend || (runtime === 'web' ? 'wasm' : 'cpu');
  if (runtime === 'web') {
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = 'error';
  }
  const options = { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const inputs = req.inputs.map((i) => ({ ...i, bytes: readFileSync(i.file) }));
  const result = await runCase(ort, readFileSync(req.model), options, inputs);
  const outputs = result.outputs.map((o, i) => {
    const file = join(req.outDir, `out${i}.bin`);
    writeFileSync(file, o.bytes);
    return { name: o.name, dtype: o.dtype, dims: o.dims, file };
  });
  // Node's onnxruntime-web has one provider, the wasm CPU one: nothing can fall back
  const placement = result.loaded ? staticPlacement('wasm') : null;
  return { ...result, outputs, placement };
}

// Whole streams through a stateful model (lib/stream.mjs loops over the chunks): the streams file holds every
// stream's float32 samples one after another; each stream's outputs and final state come back as files.
async function stream(req) {
  const { runStream, splitStreams } = await import('./lib/stream.mjs');
  const backend = req.backend || (runtime === 'web' ? 'wasm' : 'cpu');
  const threads = req.threads || 1;
  const options = { executionProviders: [backend], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  if (runtime === 'web') {
    if (backend !== 'wasm') throw new Error(`backend ${backend} is not available in Node (only wasm); use the browser runner`);
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = 'error';
  } else {
    if (backend !== 'cpu') throw new Error(`onnxruntime-node runs backend 'cpu' here, not ${backend}`);
    options.intraOpNumThreads = threads;
    options.interOpNumThreads = 1;
  }
  const buf = readFileSync(req.input);
  const streams = splitStreams(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), req.lengths);
  const s = await ort.InferenceSession.create(readFileSync(req.model), options);
  try {
    const t0 = performance.now();
    const results = [];
    for (const samples of streams) results.push(await runStream(ort, s, req.protocol, samples));
    const ms = performance.now() - t0;
    const write = (tag, { data, dims }) => {
      const file = join(req.outDir, `${tag}.f32`);
      writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      return { file, dims };
    };
    const out = results.map((r, i) => ({ chunks: r.chunks,
      outputs: Object.fromEntries(Object.entries(r.outputs).map(([name, t], j) => [name, write(`s${i}-o${j}`, t)])),
      finalState: Object.fromEntries(Object.entries(r.finalState).map(([name, t], j) => [name, write(`s${i}-f${j}`, t)])) }));
    // Node's onnxruntime-web has one provider, the wasm CPU one; onnxruntime-node runs its CPU provider only
    return { streams: out, ms, executionProviders: options.executionProviders,
      threads: runtime === 'web' ? ort.env.wasm.numThreads : threads,
      placement: runtime === 'web' ? staticPlacement('wasm') : null };
  } finally {
    await s.release();
  }
}

const handlers = { load, run, bench, preprocess, postprocess, opcase, stream, info: async () => ({ info: info() }) };

await serveRequests(handlers);
if (session) await session.release();
process.exit(0);
