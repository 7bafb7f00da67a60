// Live classification of a MediaStream: an AudioWorklet taps the audio (mixing it to mono and
// posting one hop of samples at a time, nothing else on the audio thread); the main thread keeps the
// last window and classifies it once per hop.  When a classification is still running as the next
// hop arrives, that hop is dropped (a 'drop' event) rather than queued, so results never fall behind
// the audio.
import { SilentAudioError } from './errors.mjs';
import { toModelInputs } from './preprocess.mjs';

/** The worklet: mono mix of its input, posted in blocks of `processorOptions.block` samples with their audio time. */
export const WORKLET_SOURCE = `
class SerExportTap extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.block = options.processorOptions.block;
    this.buf = new Float32Array(this.block);
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const channels = input.length;
      const len = input[0].length;
      for (let i = 0; i < len; i++) {
        let s = 0;
        for (let c = 0; c < channels; c++) s += input[c][i];
        this.buf[this.n++] = s / channels;
        if (this.n === this.block) {
          // the audio time of the block's last sample goes with it (currentTime: this quantum's start)
          this.port.postMessage({ samples: this.buf, time: currentTime + (i + 1) / sampleRate }, [this.buf.buffer]);
          this.buf = new Float32Array(this.block);
          this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('ser-export-tap', SerExportTap);
`;

/**
 * A running live classification (from Classifier.listen).  Events: 'result' (detail: a result),
 * 'drop' (detail: {index, endSeconds}), 'error' (detail: the Error).  Iterate it with `for await`
 * to get the results in order; the iteration ends after stop().
 *
 * A result is the predict JSON of the window (see Classifier.classify) plus `index` (hop number,
 * from 0), `startSeconds`/`endSeconds` (the window's place in the stream's audio), `latencyMs`
 * (from the hop's last sample, in the AudioContext's clock, to the result) and `dropped` (hops
 * dropped so far).  A silent window gives verdict 'silent' and no probabilities.
 */
export class Listener extends EventTarget {
  constructor(classifier, stream, { hopSeconds = 0.5, audioContext = null, workletUrl = null } = {}) {
    super();
    if (!(hopSeconds > 0)) throw new TypeError(`hopSeconds must be positive, got ${hopSeconds}`);
    this.classifier = classifier;
    this.stream = stream;
    this.hopSeconds = hopSeconds;
    this.ownContext = !audioContext;
    this.context = audioContext;
    this.workletUrl = workletUrl;
    this.results = 0;
    this.dropped = 0;
    this.hops = 0;
    this.stopped = false;
    this._busy = false;
    this._queue = [];
    this._waiting = [];
  }

  static start(classifier, stream, options) {
    const listener = new Listener(classifier, stream, options);
    /** Resolves once audio flows (rejects when the worklet or the stream cannot start). */
    listener.ready = listener._start();
    listener.ready.catch((e) => listener._fail(e));
    return listener;
  }

  async _start() {
    if (typeof AudioWorkletNode === 'undefined') throw new TypeError('listen() needs a browser with AudioWorklet');
    // At the model's rate the browser resamples the microphone once, natively, and every hop skips
    // the JS resampler (measured in headless Chromium: AlexNet at 1 thread, 44.1 kHz context: 367 ms
    // per result, most of it resampling, with the per-tap resampler before dsp.mjs; dsp.mjs's
    // table-driven one resamples a 2.1 s window at 44.1 kHz in 18 ms instead of 338 ms in Node 20).
    const ctx = this.context ?? new AudioContext({ sampleRate: this.classifier.sampleRate });
    this.context = ctx;
    this.rate = ctx.sampleRate;
    this.hop = Math.round(this.hopSeconds * this.rate);
    this.windowLength = Math.round(this.classifier.windowSeconds * this.rate);
    this.ring = new Float32Array(this.windowLength);
    this.filled = 0;
    let url = this.workletUrl;
    let blobUrl = null;
    if (!url) {
      blobUrl = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: 'text/javascript' }));
      url = blobUrl;
    }
    try {
      await ctx.audioWorklet.addModule(url);
    } finally {
      if (blobUrl) URL.revokeObjectURL(blobUrl);
    }
    this.source = ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(ctx, 'ser-export-tap', { numberOfInputs: 1, numberOfOutputs: 1,
      processorOptions: { block: this.hop } });
    this.node.port.onmessage = (ev) => this._onBlock(ev.data.samples, ev.data.time);
    this.source.connect(this.node);
    this.node.connect(ctx.destination); // outputs silence; keeps the node in the rendered graph
    if (ctx.state === 'suspended') await ctx.resume();
  }

  _onBlock(block, time) {
    if (this.stopped) return;
    // keep the last window of audio
    if (block.length >= this.windowLength) {
      this.ring.set(block.subarray(block.length - this.windowLength));
    } else {
      this.ring.copyWithin(0, block.length);
      this.ring.set(block, this.windowLength - block.length);
    }
    this.filled = Math.min(this.windowLength, this.filled + block.length);
    const index = this.hops++;
    const endSeconds = (this.hops * this.hop) / this.rate;
    if (this.filled < this.windowLength) return; // not a whole window yet
    // A block is stale when a newer one is already due: when the model runs on this thread (no proxy
    // worker), blocks that arrived during a classification wait in the message queue and are
    // delivered only after it.  Classifying them would fall behind the audio; they fill the window and
    // are dropped instead.  (With onnxruntime-web's proxy the thread stays free and `_busy` drops them.)
    const stale = this.context.currentTime - time > this.hopSeconds;
    if (this._busy || stale) {
      this.dropped += 1;
      this.dispatchEvent(new CustomEvent('drop', { detail: { index, endSeconds } }));
      return;
    }
    this._busy = true;
    this._classify(Float32Array.from(this.ring), index, endSeconds, time).finally(() => {
      this._busy = false;
    });
  }

  async _classify(samples, index, endSeconds, time) {
    let result;
    try {
      const { windows } = toModelInputs([samples], this.rate, this.classifier.contract);
      result = await this.classifier._classifyWindows(windows.slice(0, 1));
    } catch (e) {
      if (!(e instanceof SilentAudioError)) {
        this._fail(e);
        return;
      }
      result = { speech: false, verdict: 'silent', top: null, probabilities: null, calibrated: false, windows: [],
        backend: this.classifier.backend };
    }
    if (this.stopped) return;
    const out = { ...result, index, startSeconds: endSeconds - this.windowLength / this.rate, endSeconds,
      latencyMs: 1000 * (this.context.currentTime - time), dropped: this.dropped };
    this.results += 1;
    this.dispatchEvent(new CustomEvent('result', { detail: out }));
    this._push({ value: out, done: false });
  }

  _fail(error) {
    this.dispatchEvent(new CustomEvent('error', { detail: error }));
    this._push({ error });
  }

  _push(item) {
    const waiter = this._waiting.shift();
    if (waiter) waiter(item);
    else this._queue.push(item);
  }

  async* [Symbol.asyncIterator]() {
    for (;;) {
      const item = this._queue.length ? this._queue.shift()
        : this.stopped ? { done: true } : await new Promise((resolve) => this._waiting.push(resolve));
      if (item.error) throw item.error;
      if (item.done) return;
      yield item.value;
    }
  }

  /** Stop listening: disconnect from the stream (its tracks stay the app's) and end the iteration. */
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.ready;
    } catch {
      // it never started; nothing to disconnect
    }
    this.node?.port && (this.node.port.onmessage = null);
    this.source?.disconnect();
    this.node?.disconnect();
    if (this.ownContext && this.context && this.context.state !== 'closed') await this.context.close();
    for (const waiter of this._waiting.splice(0)) waiter({ done: true });
  }
}
