// The page's side of the package's worker (worker.mjs): loadClassifier starts the worker and returns
// a WorkerClassifier, with the same API as an in-thread Classifier.  classify() posts the channels
// and awaits the result; listen() runs the worklet on the page and sends its hops straight to the
// worker over a MessageChannel, so the page's thread only receives results.
import { BackendUnavailableError, SerExportError } from './errors.mjs';
import { errorFrom } from './errors_wire.mjs';
import { toChannels } from './channels.mjs';
import { Listener } from './listen.mjs';

/** The worker's name (a page's devtools and tests list its workers by name). */
export const WORKER_NAME = 'ser-export-web';

const now = () => performance.now();

/** A classifier whose models run in the package's worker (see worker.mjs). */
export class WorkerClassifier {
  constructor({ worker, contract, name, placement, threads }) {
    this.worker = worker;
    this.contract = contract;
    this.name = name;
    /** The backend the model's nodes run on: wasm (the worker runs onnxruntime-web's wasm build). */
    this.backend = 'wasm';
    this.placement = placement;
    this.threads = threads;
    /** onnxruntime-web's own proxy worker is not used: the whole classification runs in the package's worker. */
    this.proxy = false;
    /** Where the model runs: 'worker'. */
    this.thread = 'worker';
    this.vad = null;
    this.labels = contract.labels;
    this.sampleRate = contract.sampleRate;
    this.windowSeconds = contract.inputLength / contract.sampleRate;
    this.released = false;
    this._calls = new Map();
    this._lives = new Map();
    this._next = 0;
    worker.onmessage = ({ data }) => this._onMessage(data);
    const fail = (why) => {
      const error = new BackendUnavailableError(`${name}: the ser-export-web worker failed (${why}); `
        + 'options.worker: false runs the model on the page\'s thread');
      for (const { reject } of this._calls.values()) reject(error);
      this._calls.clear();
      for (const emit of this._lives.values()) emit({ type: 'error', error });
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      fail(e.message || 'its script could not run');
    };
    worker.onmessageerror = () => fail('a message could not be read');
  }

  /**
   * Start the worker and load the model there.
   *
   * @param args.bytes, args.vadBytes the model's and the VAD's ONNX bytes (Uint8Array; moved to the worker)
   * @param args.ortUrl the URL of onnxruntime-web's wasm build (null: the worker imports 'onnxruntime-web/wasm')
   * @param args.wasmPaths onnxruntime-web's env.wasm.wasmPaths for the worker (null: beside the build)
   */
  static async create({ bytes, vadBytes, contract, name, threads, ortUrl, wasmPaths }) {
    let worker;
    try {
      worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module', name: WORKER_NAME });
    } catch (e) {
      throw new BackendUnavailableError(`${name}: the ser-export-web worker cannot be started here (${e.message || e}); `
        + 'options.worker: false runs the model on the page\'s thread');
    }
    const clf = new WorkerClassifier({ worker, contract, name, placement: null, threads });
    try {
      const loaded = await clf._call('load', { ortUrl, wasmPaths, threads, name, bytes, vadBytes },
        [bytes.buffer, ...(vadBytes ? [vadBytes.buffer] : [])]);
      clf.placement = loaded.placement;
      clf.threads = loaded.threads;
    } catch (e) {
      worker.terminate();
      throw e;
    }
    return clf;
  }

  _call(type, payload = {}, transfer = []) {
    const id = this._next++;
    return new Promise((resolve, reject) => {
      this._calls.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...payload }, transfer);
    });
  }

  _onMessage(data) {
    if (data.live !== undefined) {
      const emit = this._lives.get(data.live);
      if (emit) emit(data);
      return;
    }
    const call = this._calls.get(data.id);
    if (!call) return;
    this._calls.delete(data.id);
    if (data.error) call.reject(errorFrom(data.error));
    else call.resolve(data.value);
  }

  _check() {
    if (this.released) throw new SerExportError(`${this.name}: this classifier was released`);
  }

  /** As Classifier.classify; the channels are copied to the worker, `ms` is the whole round trip. */
  async classify(samples, sampleRate, options = {}) {
    this._check();
    const { channels, sampleRate: rate } = toChannels(samples, sampleRate);
    const t0 = now();
    const result = await this._call('classify', { channels, sampleRate: rate, logmel: Boolean(options.logmel) });
    result.ms = now() - t0;
    return result;
  }

  /**
   * As Classifier.classifyStream: each block is copied to the worker once it has taken the one before
   * (one block in flight, so a long recording is never held whole); `ms` is the whole time.
   */
  async classifyStream(blocks, sampleRate, options = {}) {
    this._check();
    const t0 = now();
    const stream = this._next++;
    const { logmel = false, batchWindows, stretchFrames } = options;
    let failed = false;
    const done = this._call('stream', { stream, sampleRate, options: { logmel, batchWindows, stretchFrames } });
    done.catch(() => { failed = true; });
    for await (const block of blocks) {
      if (failed) break; // the worker refused an earlier block: its error is the answer
      await Promise.race([this._call('streamBlock', { stream, block }), done]);
    }
    if (!failed) await Promise.race([this._call('streamEnd', { stream }), done]);
    const result = await done;
    result.ms = now() - t0;
    return result;
  }

  /** As Classifier.listen: the worklet's hops go to the worker, results come back. */
  listen(mediaStream, options = {}) {
    this._check();
    return Listener.start(this, mediaStream, options);
  }

  /**
   * A live window in the worker: {port (the worklet's end of the channel), push, close, ready (resolves
   * once the worker's sessions are warm; hops sent meanwhile wait on the channel)}.
   */
  _openLive({ rate, hopSeconds, emit }) {
    this._check();
    const live = this._next++;
    const channel = new MessageChannel();
    this._lives.set(live, emit);
    return {
      ready: this._call('live', { live, port: channel.port2, rate, hopSeconds }, [channel.port2]),
      port: channel.port1,
      push: (samples, time) => this.worker.postMessage({ type: 'block', live, samples, time }, [samples.buffer]),
      close: () => {
        this._lives.delete(live);
        if (!this.released) this.worker.postMessage({ type: 'unlive', live });
      },
    };
  }

  /** Free the sessions and end the worker. */
  async release() {
    if (this.released) return;
    this.released = true;
    try {
      await this._call('release');
    } finally {
      this.worker.terminate();
    }
  }
}
