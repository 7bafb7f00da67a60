// Live classification of a MediaStream.  An AudioWorklet taps the audio (mixing it to mono and
// posting one hop of samples at a time, nothing else on the audio thread).  Where the model runs
// (by default the package's worker, see worker.mjs; else the page's thread) a LiveWindow keeps the
// last window and classifies it once per hop.  With the worker the worklet posts its hops straight
// to the worker (a MessageChannel), so the page's thread only receives results.  When a
// classification is still running as the next hop arrives, that hop is dropped (a 'drop' event)
// rather than queued, so results never fall behind the audio.
import { SilentAudioError } from './errors.mjs';
import { checkFinite, rmsNormalize, toModelInputs } from './preprocess.mjs';
import { errorFrom } from './errors_wire.mjs';

/**
 * The worklet: mono mix of its input, posted in blocks of `processorOptions.block` samples with their
 * audio time, to its own port or to the port it is sent ({port}: the worker's end of a MessageChannel).
 */
export const WORKLET_SOURCE = `
class SerExportTap extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.block = options.processorOptions.block;
    this.buf = new Float32Array(this.block);
    this.n = 0;
    this.out = this.port;
    this.port.onmessage = ({ data }) => { if (data && data.port) this.out = data.port; };
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
          this.out.postMessage({ samples: this.buf, time: currentTime + (i + 1) / sampleRate }, [this.buf.buffer]);
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

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * The model input of the live window `samples` (mono, at `rate` Hz): the windows of toModelInputs.
 * At the model's rate, with exactly one window of samples, the mixing, resampling and cutting are
 * the identity and are skipped: one pass (the RMS normalisation) makes the input, the same numbers
 * as toModelInputs([samples], rate, contract) (each of those steps copies the window).
 */
export function liveInputs(samples, rate, contract) {
  if (rate !== contract.sampleRate || samples.length !== contract.inputLength) {
    return toModelInputs([samples], rate, contract).windows.slice(0, 1);
  }
  const { samples: input, rms } = rmsNormalize(checkFinite(samples), contract.normalization);
  if (!input) throw new SilentAudioError(`silent: the window's RMS is below ${contract.normalization.min_rms}`);
  return [{ start: 0, startSeconds: 0, samples: input, rms }];
}

/**
 * The hop logic where the model runs: keeps the last window of the hops pushed to it and classifies
 * it once per hop with `classifier` (an in-thread Classifier), or drops the hop.
 *
 * `emit` receives {type: 'result', result, time, hops} (`result`: the predict JSON of the window,
 * plus index, startSeconds, endSeconds, dropped, timings), {type: 'drop', index, endSeconds, dropped,
 * hops} and {type: 'error', error}.  `clock()` is the current time of the audio clock in seconds
 * (the AudioContext's currentTime); without one (in a worker, which has no AudioContext) it is
 * estimated from the arrivals: now minus the smallest delay seen between a hop's audio time and its
 * arrival.
 */
export class LiveWindow {
  constructor(classifier, { rate, hopSeconds, clock = null, emit }) {
    this.classifier = classifier;
    this.rate = rate;
    this.hopSeconds = hopSeconds;
    this.hop = Math.round(hopSeconds * rate);
    this.windowLength = Math.round(classifier.windowSeconds * rate);
    this.ring = new Float32Array(this.windowLength);
    this.filled = 0;
    this.hops = 0;
    this.dropped = 0;
    this.busy = false;
    this.closed = false;
    this.emit = emit;
    this.offset = Infinity;
    this.clock = clock ?? (() => now() / 1000 - this.offset);
  }

  /**
   * Run the model and the VAD once on a tone (a window at the model's rate, the result discarded), so
   * that the first hop's result does not pay for the sessions' first run (their buffers, the JIT).
   */
  async warm() {
    const { contract } = this.classifier;
    const tone = Float32Array.from({ length: contract.inputLength }, (_, i) => Math.sin((2 * Math.PI * 220 * i) / contract.sampleRate));
    this.busy = true; // hops that come meanwhile fill the window; a whole window's hop is dropped
    try {
      await this.classifier._classifyWindows(liveInputs(tone, contract.sampleRate, contract), false);
    } finally {
      this.busy = false;
    }
  }

  /** One hop of mono samples whose last sample is at audio time `time` (seconds). */
  push(block, time) {
    if (this.closed) return;
    const arrived = now();
    this.offset = Math.min(this.offset, arrived / 1000 - time);
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
    // A block is stale when a newer one is already due: blocks that arrived while a classification
    // held this thread wait in the message queue and are delivered only after it.  Classifying them
    // would fall behind the audio; they fill the window and are dropped instead.  (`busy` drops the
    // hops that arrive while a classification awaits.)
    const stale = this.clock() - time > this.hopSeconds;
    if (this.busy || stale) {
      this.dropped += 1;
      this.emit({ type: 'drop', index, endSeconds, dropped: this.dropped, hops: this.hops });
      return;
    }
    this.busy = true;
    this._classify(index, endSeconds, time, arrived).finally(() => {
      this.busy = false;
    });
  }

  async _classify(index, endSeconds, time, arrived) {
    const { classifier } = this;
    const timings = { thread: classifier.thread };
    let result;
    try {
      let windows = null;
      try {
        windows = liveInputs(this.ring, this.rate, classifier.contract);
      } finally {
        timings.preprocessMs = now() - arrived;
      }
      result = await classifier._classifyWindows(windows, false, timings);
    } catch (e) {
      if (!(e instanceof SilentAudioError)) {
        this.emit({ type: 'error', error: e });
        return;
      }
      result = { speech: false, verdict: 'silent', top: null, probabilities: null, calibrated: false, windows: [],
        backend: classifier.backend, thread: classifier.thread };
    }
    if (this.closed) return;
    timings.computeMs = now() - arrived;
    const startSeconds = endSeconds - this.windowLength / this.rate;
    this.emit({ type: 'result', time, hops: this.hops,
      result: { ...result, index, startSeconds, endSeconds, dropped: this.dropped, timings } });
  }

  close() {
    this.closed = true;
  }
}

/**
 * A running live classification (from Classifier.listen).  Events: 'result' (detail: a result),
 * 'drop' (detail: {index, endSeconds}), 'error' (detail: the Error).  Iterate it with `for await`
 * to get the results in order; the iteration ends after stop().
 *
 * A result is the predict JSON of the window (see Classifier.classify) plus `index` (hop number,
 * from 0), `startSeconds`/`endSeconds` (the window's place in the stream's audio), `latencyMs`
 * (from the hop's last sample, in the AudioContext's clock, to the result on the page's thread),
 * `dropped` (hops dropped so far) and `timings` (where it ran and the milliseconds of each part).
 * A silent window gives verdict 'silent' and no probabilities.
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
    this._feed = null;
    this._hopsOnPage = 0; // hops the page's thread handled (with the worker: those before the worklet had the port)
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
    const live = { rate: this.rate, hopSeconds: this.hopSeconds, clock: () => ctx.currentTime,
      emit: (m) => this._onOutput(m) };
    // the worker's classifier opens a channel to its worker; an in-thread one runs the window here.
    // The audio flows at once (the stream's time starts now); the sessions' warm-up runs meanwhile.
    let warm;
    if (typeof this.classifier._openLive === 'function') {
      this._feed = this.classifier._openLive(live);
      warm = this._feed.ready;
    } else {
      this._feed = new LiveWindow(this.classifier, live);
      warm = this._feed.warm();
    }
    this.source = ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(ctx, 'ser-export-tap', { numberOfInputs: 1, numberOfOutputs: 1,
      processorOptions: { block: this.hop } });
    if (this._feed.port) this.node.port.postMessage({ port: this._feed.port }, [this._feed.port]);
    // in-thread, every hop; with the worker, only a hop the worklet posted before it got the port
    this.node.port.onmessage = (ev) => {
      this._hopsOnPage += 1;
      this._feed.push(ev.data.samples, ev.data.time);
    };
    this.source.connect(this.node);
    this.node.connect(ctx.destination); // outputs silence; keeps the node in the rendered graph
    if (ctx.state === 'suspended') await ctx.resume();
    await warm;
  }

  _onOutput(m) {
    if (this.stopped) return;
    this.hops = Math.max(this.hops, m.hops ?? 0);
    if (m.type === 'drop') {
      this.dropped = m.dropped;
      this.dispatchEvent(new CustomEvent('drop', { detail: { index: m.index, endSeconds: m.endSeconds } }));
    } else if (m.type === 'error') {
      this._fail(m.error instanceof Error ? m.error : errorFrom(m.error));
    } else {
      const latencyMs = 1000 * (this.context.currentTime - m.time);
      const timings = { ...m.result.timings, messagingMs: Math.max(0, latencyMs - m.result.timings.computeMs) };
      const out = { ...m.result, latencyMs, timings };
      this.results += 1;
      this.dispatchEvent(new CustomEvent('result', { detail: out }));
      this._push({ value: out, done: false });
    }
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
    this._feed?.close();
    if (this.ownContext && this.context && this.context.state !== 'closed') await this.context.close();
    for (const waiter of this._waiting.splice(0)) waiter({ done: true });
  }
}
