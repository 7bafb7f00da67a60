// Long recordings block by block: classify's windows and numbers, in memory that does not grow with
// the recording's length (the block form of preprocess.mjs's toModelInputs, and of classify).
//
//   import { BlockInputs } from './blocks.mjs';
//   const inputs = new BlockInputs(44100, contract);          // contract: readContract(bytes)
//   for (const block of blocks) for (const w of inputs.push(block)) use(w);   // [left, right] or mono
//   for (const w of inputs.finish()) use(w);                  // the same windows as toModelInputs(...)
//
// Each block is mixed down (preprocess.mjs's mixToMono), resampled by dsp.mjs's resamplePolyKaiser on
// an overlapping stretch of the signal and cut by preprocess.mjs's windows(), so every output sample is
// the same sum, in the same order, as on the whole recording:
// - the resampler's output j is the sum over the input samples k within the filter's half-width
//   `reach` of its position j * from / to.  A stretch that starts at a multiple of `down` (from / gcd)
//   puts its outputs at the same fractional positions (the same table rows) as the whole signal's, and
//   an output whose taps all lie inside the stretch (or beyond the recording's true ends, zeros in
//   both) is the whole signal's, bit for bit; the stretch keeps `reach` samples of margin before the
//   next output and computes only the outputs whose taps have all arrived.
// - windows are cut by windows() itself: the last complete window is held back until the next one
//   completes or the recording ends, so the tail rule (a partial last window kept when it holds a
//   quarter of a window, or is the only one) is applied to the same samples as on the whole array.

import { filterHalfWidth, resamplePolyKaiser, resampledLength } from './dsp.mjs';
import { EmptyAudioError, InvalidAudioError, SilentAudioError } from './errors.mjs';
import { decide } from './postprocess.mjs';
import { mixToMono, rmsNormalize, windows } from './preprocess.mjs';

/** Input frames resampled at a time (before the margins): 1.5 s at 44.1 kHz. */
export const BLOCK_FRAMES = 65536;

/** Non-silent windows classified per model run by classifyBlocks (the bound on its memory). */
export const BATCH_WINDOWS = 16;

/** What a kept window's stub holds instead of its samples (freed once the window is classified). */
const KEPT = new Float32Array(0);

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

function concatF32(a, b) {
  if (!a.length) return b;
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * preprocess.mjs's resampling of a recording (resamplePolyKaiser with its default filter: 32 zero
 * crossings, roll-off 0.97), fed block by block: `push(mono)` returns the output samples that are
 * final, `finish()` the rest; concatenated, resamplePolyKaiser(whole, fromRate, toRate) exactly.
 */
export class StretchResampler {
  constructor(fromRate, toRate, { stretchFrames = BLOCK_FRAMES } = {}) {
    resamplePolyKaiser(new Float32Array(0), fromRate, toRate); // its one-line refusal of a bad rate
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.same = fromRate === toRate;
    const g = gcd(fromRate, toRate);
    this.up = toRate / g;
    this.down = fromRate / g;
    // the filter's half-width in input samples (resamplePolyKaiser's default filter)
    this.reach = filterHalfWidth(fromRate, toRate);
    // a stretch spans whole periods of `down` input samples beyond its margins
    this.stretchFrames = Math.max(stretchFrames, 4 * this.down);
    this.held = new Float32Array(0); // input samples [start, start + held.length)
    this.start = 0;
    this.nIn = 0;
    this.nOut = 0; // outputs given so far: the next one to compute
  }

  /** The input sample the first tap of output j weighs, rounded down to a multiple of `down` (>= 0). */
  _stretchStart(j) {
    const centre = Math.floor((j * this.down) / this.up);
    return Math.max(0, Math.floor((centre - this.reach + 1) / this.down) * this.down);
  }

  _compute(last) {
    const avail = this.start + this.held.length;
    let end;
    if (last) {
      end = resampledLength(this.nIn, this.fromRate, this.toRate);
    } else {
      const a = avail - 1 - this.reach; // the last input an output's taps may reach
      end = a < 0 ? 0 : Math.ceil(((a + 1) * this.up) / this.down);
    }
    if (end <= this.nOut) return new Float32Array(0);
    const y = resamplePolyKaiser(this.held, this.fromRate, this.toRate);
    const offset = (this.start / this.down) * this.up; // the stretch's first output, globally
    const out = y.slice(this.nOut - offset, end - offset);
    this.nOut = end;
    const next = this._stretchStart(end);
    this.held = this.held.slice(next - this.start);
    this.start = next;
    return out;
  }

  push(mono) {
    this.nIn += mono.length;
    if (this.same) {
      this.nOut += mono.length;
      return Float32Array.from(mono);
    }
    this.held = concatF32(this.held, mono);
    return this.held.length >= this.stretchFrames + 2 * this.reach ? this._compute(false) : new Float32Array(0);
  }

  finish() {
    return this.same ? new Float32Array(0) : this._compute(true);
  }
}

/** A block as channels: a mono Float32Array, or an array of Float32Array channels. */
function channelsOf(block) {
  if (block instanceof Float32Array) return [block];
  if (Array.isArray(block) && block.every((c) => c instanceof Float32Array)) return block;
  throw new TypeError('each block must be a Float32Array (mono) or an array of Float32Array channels');
}

/**
 * toModelInputs (preprocess.mjs) block by block: `push(block)` takes the next frames of the recording
 * (a mono Float32Array or an array of channels, at `sampleRate`) and returns the model windows they
 * complete, `finish()` the last ones; together toModelInputs(whole, sampleRate, contract).windows, with
 * the same refusals (EmptyAudioError, InvalidAudioError with the same index, SilentAudioError from
 * finish()).  `durationSeconds` is set by finish().
 */
export class BlockInputs {
  constructor(sampleRate, contract, { stretchFrames = BLOCK_FRAMES } = {}) {
    this.contract = contract;
    this.resampler = new StretchResampler(sampleRate, contract.sampleRate, { stretchFrames });
    this.channels = null;
    this.frames = 0;
    this.pending = new Float32Array(0); // samples at the model's rate from window `pendingStart` on
    this.pendingStart = 0;
    this.kept = 0;
    this.durationSeconds = null;
  }

  _windows(y, final) {
    const n = this.contract.inputLength;
    this.pending = concatF32(this.pending, y);
    // all complete windows but the last one (final: every window, by windows()'s rule)
    const count = final ? this.pending.length : (Math.floor(this.pending.length / n) - 1) * n;
    if (count <= 0) return [];
    const out = windows(this.pending.subarray(0, count), n).map(({ start, samples }) => {
      const norm = rmsNormalize(samples, this.contract.normalization);
      if (norm.samples) this.kept++;
      const at = this.pendingStart + start;
      return { start: at, startSeconds: at / this.contract.sampleRate, samples: norm.samples, rms: norm.rms };
    });
    this.pending = this.pending.slice(count);
    this.pendingStart += count;
    return out;
  }

  push(block) {
    const channels = channelsOf(block);
    if (this.channels !== null && channels.length !== this.channels) {
      throw new InvalidAudioError(`a block has ${channels.length} channels, the first had ${this.channels}`);
    }
    const mono = mixToMono(channels);
    this.channels = channels.length;
    for (let i = 0; i < mono.length; i++) {
      if (!Number.isFinite(mono[i])) {
        throw new InvalidAudioError(`audio has a non-finite sample (NaN/Inf) at index ${this.frames + i}`);
      }
    }
    this.frames += mono.length;
    return this._windows(this.resampler.push(mono), false);
  }

  finish() {
    if (!this.frames) throw new EmptyAudioError('the recording is empty (0 samples)');
    const out = this._windows(this.resampler.finish(), true);
    this.durationSeconds = this.resampler.nOut / this.contract.sampleRate;
    if (!this.kept) {
      const { inputLength, sampleRate, normalization } = this.contract;
      throw new SilentAudioError(`silent: every ${(inputLength / sampleRate).toFixed(1)} s window has RMS below ${normalization.min_rms}`);
    }
    return out;
  }
}

/**
 * Classifier.classifyStream: classify's result for a recording given as `blocks` (an iterable or
 * async iterable of mono Float32Array blocks or arrays of channels) at `sampleRate`.  The windows come
 * from BlockInputs and are classified `options.batchWindows` non-silent windows at a time through the
 * classifier's own model run, VAD and post-processing; the result is made by the classifier's
 * `_resultJson` from every window's outputs, as classify makes it.
 */
export async function classifyBlocks(clf, blocks, sampleRate, options = {}) {
  const { logmel: withLogmel = false, batchWindows = BATCH_WINDOWS, stretchFrames = BLOCK_FRAMES } = options;
  if (!(Number.isInteger(batchWindows) && batchWindows >= 1)) {
    throw new TypeError(`batchWindows must be a positive integer, got ${batchWindows}`);
  }
  const clock = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());
  const t0 = clock();
  const { contract } = clf;
  const pp = contract.postprocessing;
  const inputs = new BlockInputs(sampleRate, contract, { stretchFrames });
  // every window without its samples (_resultJson reads whether a window was kept, its start and RMS)
  const all = [];
  const kept = [];
  const logits = [];
  const logmel = [];
  let dims = null;
  let decisions = null;
  let batch = [];
  const classifyBatch = async () => {
    const out = await clf._run(batch.map((w) => w.samples));
    logits.push(...out.logits);
    dims = out.logmelDims ?? dims;
    if (withLogmel) logmel.push(...out.logmel);
    if (pp) {
      const frames = await clf.vad.frameProbabilities(batch.map((w) => w.samples), contract.sampleRate);
      const d = decide({ frames, logits: out.logits, logmel: out.logmel, dims: out.logmelDims }, pp);
      decisions ??= Object.fromEntries(Object.keys(d).map((k) => [k, []]));
      for (const [k, v] of Object.entries(d)) decisions[k].push(...v);
    }
    batch = [];
  };
  const take = async (ws) => {
    for (const w of ws) {
      const stub = { startSeconds: w.startSeconds, rms: w.rms, samples: w.samples ? KEPT : null };
      all.push(stub);
      if (!w.samples) continue;
      kept.push(stub);
      batch.push(w);
      if (batch.length >= batchWindows) await classifyBatch();
    }
  };
  for await (const block of blocks) await take(inputs.push(block));
  await take(inputs.finish());
  if (batch.length) await classifyBatch();
  const result = clf._resultJson(all, kept, logits, logmel, dims, decisions, withLogmel);
  result.duration_s = Math.round(inputs.durationSeconds * 1000) / 1000;
  result.ms = clock() - t0;
  return result;
}
