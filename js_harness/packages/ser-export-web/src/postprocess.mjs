// What happens to a window after the model: voice activity, calibration and "uncertain" (the same
// steps and numbers as ser_export/vad.py and ser_export/postprocess.py; the parity gate checks that
// both agree).  The parameters are the model's metadata `postprocessing` (contract.postprocessing).
//
//   import { VoiceActivity, decide } from './postprocess.mjs';
//   const vad = await VoiceActivity.create(ort, vadBytes, contract.postprocessing.vad);
//   const frames = await vad.frameProbabilities(windows, contract.sampleRate);   // windows: Float32Array[]
//   const d = decide({ frames, logits, logmel, dims }, contract.postprocessing);
//   // d.verdicts[i]: 'no_speech' | 'uncertain' | 'classified'; d.probabilities[i]: calibrated

import { resamplePolyKaiser, softmax } from './dsp.mjs';
import { runStream } from './stream.mjs';

export const NO_SPEECH = 'no_speech';
export const UNCERTAIN = 'uncertain';
export const CLASSIFIED = 'classified';

/** Silero VAD (https://github.com/snakers4/silero-vad, MIT) in onnxruntime(-web): frame speech probabilities. */
export class VoiceActivity {
  constructor(ort, session, params) {
    this.ort = ort;
    this.session = session;
    this.params = params;
  }

  /** `model`: the Silero ONNX bytes (Uint8Array/ArrayBuffer) or a path/URL onnxruntime can open. */
  static async create(ort, model, params, sessionOptions = {}) {
    const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3,
      ...sessionOptions };
    const source = model instanceof ArrayBuffer ? new Uint8Array(model) : model;
    const session = await ort.InferenceSession.create(source, options);
    return new VoiceActivity(ort, session, params);
  }

  /** The VAD input of one model window: gain, then resampled to the VAD's rate. */
  vadInput(window, sampleRate) {
    const p = this.params;
    return resamplePolyKaiser(window, sampleRate, p.sample_rate, p.resampler, 10 ** (p.gain_db / 20));
  }

  /**
   * Silero's streaming protocol (the wire form of lib/stream.mjs): 512-sample frames, each with the
   * previous 64 samples, the state carried from frame to frame, the sample rate as a constant.
   */
  protocol() {
    const p = this.params;
    return { signal: { name: 'input', chunk: p.frame_length, context: p.context, dtype: 'float32' },
      states: [{ input: 'state', output: 'stateN', dims: [2, 1, 128], dtype: 'float32', init: 0 }],
      constants: [{ name: 'sr', dtype: 'int64', dims: [], value: p.sample_rate }], outputs: ['output'] };
  }

  /**
   * Speech probability of every frame of each window: an Array of Float32Array (one per window).
   * Each window is one stream through runStream (stream.mjs), the chunk loop every streaming model runs
   * through; the state and context start at zero in every window.
   */
  async frameProbabilities(windows, sampleRate) {
    const protocol = this.protocol();
    const out = [];
    for (const w of windows) {
      const r = await runStream(this.ort, this.session, protocol, this.vadInput(w, sampleRate));
      out.push(r.outputs.output.data);
    }
    return out;
  }

  async release() {
    await this.session.release();
  }
}

export function speechFraction(frames, threshold) {
  if (!frames.length) return 0;
  let n = 0;
  for (const v of frames) if (v >= threshold) n++;
  return n / frames.length;
}

/** Per-band mean and standard deviation over frames of one window's log-mel (nMels x nFrames, row-major). */
export function bandStatistics(logmel, nMels, nFrames) {
  const out = new Float64Array(2 * nMels);
  for (let b = 0; b < nMels; b++) {
    let sum = 0;
    for (let t = 0; t < nFrames; t++) sum += logmel[b * nFrames + t];
    const mean = sum / nFrames;
    let sq = 0;
    for (let t = 0; t < nFrames; t++) {
      const d = logmel[b * nFrames + t] - mean;
      sq += d * d;
    }
    out[b] = mean;
    out[nMels + b] = Math.sqrt(sq / nFrames);
  }
  return out;
}

/** The out-of-distribution score of one window (ser_export.postprocess.ood_scores). */
export function oodScore(logmel, nMels, nFrames, ood) {
  if (ood.score !== 'logmel_band_mahalanobis') throw new Error(`unknown OOD score ${ood.score}`);
  const f = bandStatistics(logmel, nMels, nFrames);
  const k = ood.projection[0].length;
  const z = new Float64Array(k);
  for (let i = 0; i < f.length; i++) {
    const d = f[i] - ood.mean[i];
    const row = ood.projection[i];
    for (let j = 0; j < k; j++) z[j] += d * row[j];
  }
  let s = 0;
  for (let j = 0; j < k; j++) s += z[j] * z[j];
  return s / k;
}

/**
 * The post-processing of a batch of windows.  `frames`: per-window VAD frame probabilities;
 * `logits`: per-window logits; `logmel`: per-window log-mel (Float32Array nMels*nFrames) with
 * `dims` [nMels, nFrames].  Returns arrays over windows.
 */
export function decide({ frames, logits, logmel, dims }, pp) {
  const [nMels, nFrames] = dims;
  const out = { speechFraction: [], speech: [], probabilities: [], oodScore: [], uncertain: [], verdicts: [] };
  for (let i = 0; i < logits.length; i++) {
    const fraction = speechFraction(frames[i], pp.vad.threshold);
    const speech = fraction >= pp.vad.min_speech_fraction;
    const score = oodScore(logmel[i], nMels, nFrames, pp.ood);
    const probabilities = softmax(logits[i], pp.temperature);
    // unlike the training speech, or unsure among the emotions it knows
    const uncertain = score > pp.ood.threshold || Math.max(...probabilities) < pp.confidence.min_probability;
    out.speechFraction.push(fraction);
    out.speech.push(speech);
    out.probabilities.push(probabilities);
    out.oodScore.push(score);
    out.uncertain.push(uncertain);
    out.verdicts.push(!speech ? NO_SPEECH : uncertain ? UNCERTAIN : CLASSIFIED);
  }
  return out;
}

/**
 * The whole post-processing of a batch given as flat float32 arrays (what the parity runners
 * receive): `windows` [b, n] model inputs, `logits` [b, c], `logmel` [b, nMels, nFrames].
 * Returns { frames: Float32Array [b, nFrames of the VAD], vadFrames, ...decide() }.
 */
export async function postprocessBatch(ort, vadModel, { windows, dims, logits, logitsDims, logmel, logmelDims,
  sampleRate, params }, sessionOptions = {}) {
  const [b, n] = dims;
  const rows = (flat, width) => Array.from({ length: b }, (_, i) => flat.subarray(i * width, (i + 1) * width));
  const vad = await VoiceActivity.create(ort, vadModel, params.vad, sessionOptions);
  try {
    const frames = await vad.frameProbabilities(rows(windows, n), sampleRate);
    const [, nMels, nFrames] = logmelDims;
    const decisions = decide({ frames, logits: rows(logits, logitsDims[1]), logmel: rows(logmel, nMels * nFrames),
      dims: [nMels, nFrames] }, params);
    const vadFrames = frames.length ? frames[0].length : 0;
    const flat = new Float32Array(b * vadFrames);
    frames.forEach((f, i) => flat.set(f, i * vadFrames));
    return { frames: flat, vadFrames, ...decisions };
  } finally {
    await vad.release();
  }
}
