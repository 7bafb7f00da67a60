// The package's module worker: the whole classification (preprocessing, voice activity, the model,
// post-processing) runs here, off the page's main thread.  The page's side is worker_client.mjs
// (WorkerClassifier); loadClassifier starts this worker itself in a page (options.worker).
//
// Messages from the page, each {id, type, ...} answered by {id, value} or {id, error: {name, message}}:
//   load     {ortUrl, wasmPaths, threads, name, bytes, vadBytes}: an in-thread Classifier here
//   classify {channels, sampleRate, logmel}: its predict JSON
//   live     {live, port, rate, hopSeconds}: a LiveWindow fed by the worklet's hops on `port` (and by
//            'block' messages); it posts {live, type: 'result' | 'drop' | 'error', ...} as it goes
//   unlive   {live}: that LiveWindow stops
//   stream   {stream, sampleRate, options}: classifyStream's result of the blocks that follow:
//   block of a stream {stream, block}: answered once classifyStream has taken it (one block in flight)
//   streamEnd {stream}: no more blocks
//   release  the sessions are freed
import { errorToWire } from './errors_wire.mjs';
import { loadClassifier } from './index.mjs';
import { LiveWindow } from './listen.mjs';

let classifier = null;
const lives = new Map();
const streams = new Map();

/** An async iterable of the blocks the page sends; `push` resolves once the consumer has taken the block. */
class BlockQueue {
  constructor() {
    this.items = [];
    this.waiting = null;
  }

  push(item) {
    return new Promise((taken) => {
      this.items.push({ ...item, taken });
      if (this.waiting) this.waiting();
    });
  }

  async* [Symbol.asyncIterator]() {
    for (;;) {
      if (!this.items.length) await new Promise((resolve) => { this.waiting = resolve; });
      this.waiting = null;
      const { block, end, taken } = this.items.shift();
      taken();
      if (end) return;
      yield block;
    }
  }
}

/** The onnxruntime-web wasm build: the page's URL of it (an import map does not reach a worker), else the package name. */
async function importOrt(ortUrl) {
  if (ortUrl) return import(/* @vite-ignore */ /* webpackIgnore: true */ ortUrl);
  return import('onnxruntime-web/wasm'); // a bundler resolves it in the worker's bundle
}

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

/** The buffers of a result's log-mel windows (moved, not copied, to the page). */
function logmelBuffers(result) {
  return result.logmel ? result.logmel.windows.map((w) => w.data.buffer) : [];
}

const HANDLERS = {
  async load({ ortUrl, wasmPaths, threads, name, bytes, vadBytes }) {
    const ort = await importOrt(ortUrl);
    if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
    classifier = await loadClassifier(bytes, { backend: 'wasm', threads, ort, vadModel: vadBytes ?? undefined,
      worker: false, name });
    return { placement: classifier.placement, threads: classifier.threads };
  },
  async classify({ channels, sampleRate, logmel }) {
    const result = await classifier.classify(channels, sampleRate, { logmel });
    return [result, logmelBuffers(result)];
  },
  async live({ live, port, rate, hopSeconds }) {
    const window = new LiveWindow(classifier, { rate, hopSeconds, emit: (m) => {
      if (m.type === 'error') post({ live, ...m, error: errorToWire(m.error) });
      else post({ live, ...m });
    } });
    lives.set(live, { window, port });
    port.onmessage = ({ data }) => window.push(data.samples, data.time);
    await window.warm();
    return null;
  },
  block({ live, samples, time }) {
    lives.get(live)?.window.push(samples, time);
    return null;
  },
  unlive({ live }) {
    const entry = lives.get(live);
    if (entry) {
      entry.window.close();
      entry.port.onmessage = null;
      entry.port.close();
      lives.delete(live);
    }
    return null;
  },
  async stream({ stream, sampleRate, options }) {
    const queue = new BlockQueue();
    streams.set(stream, queue);
    try {
      const result = await classifier.classifyStream(queue, sampleRate, options);
      return [result, logmelBuffers(result)];
    } finally {
      streams.delete(stream);
    }
  },
  async streamBlock({ stream, block }) {
    await streams.get(stream)?.push({ block });
    return null;
  },
  async streamEnd({ stream }) {
    await streams.get(stream)?.push({ end: true });
    return null;
  },
  async release() {
    for (const live of [...lives.keys()]) HANDLERS.unlive({ live });
    await classifier?.release();
    classifier = null;
    return null;
  },
};

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  try {
    if (!Object.hasOwn(HANDLERS, type)) throw new TypeError(`ser-export-web worker: unknown message '${type}'`);
    if (type !== 'load' && !classifier) throw new TypeError('ser-export-web worker: no model loaded');
    const answer = await HANDLERS[type](data);
    if (id === undefined) return;
    const [value, transfer] = Array.isArray(answer) ? answer : [answer, []];
    post({ id, value }, transfer);
  } catch (e) {
    if (id !== undefined) post({ id, error: errorToWire(e) });
  }
};
