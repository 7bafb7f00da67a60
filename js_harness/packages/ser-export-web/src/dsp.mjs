// The numeric kernels that pre- and post-processing share: the one resampler (a Kaiser-windowed
// sinc at exact rational positions, the formula of ser_export.vad.resample_poly_kaiser) and the
// one softmax.  preprocess.mjs resamples a recording to the model's rate with it, postprocess.mjs
// resamples each window to the VAD's rate and calibrates the logits with the softmax.
//
//   import { resamplePolyKaiser, softmax } from './dsp.mjs';
//   const y = resamplePolyKaiser(x, 44100, 22050);        // Float32Array, ceil(n * 22050 / 44100) samples
//   const p = softmax(logits, 1.7);                        // softmax(logits / 1.7) in float64, a plain Array

import { InvalidAudioError } from './errors.mjs';

/** The modified Bessel function I0 (power series, to double precision). */
export function besselI0(x) {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 500; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return sum;
}

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** ceil(n * to / from) in integers: the length of a resampled signal (librosa's and ser_export's rule). */
export function resampledLength(n, fromRate, toRate) {
  const g = gcd(fromRate, toRate);
  const up = toRate / g;
  const down = fromRate / g;
  return Math.ceil((n * up) / down);
}

const tables = new Map();

/** The Kaiser-windowed sinc filter's defaults (resamplePolyKaiser's options). */
export const KAISER = Object.freeze({ zeros: 32, rolloff: 0.97, beta: 8.6 });

/**
 * The filter's half-width in input samples: how far an output's taps reach on each side (blocks.mjs keeps it as
 * the margin of every stretch it resamples).
 */
export function filterHalfWidth(fromRate, toRate, { zeros = KAISER.zeros, rolloff = KAISER.rolloff } = {}) {
  return Math.ceil(zeros / (rolloff * Math.min(1, toRate / fromRate)));
}

/** The filter's taps for each of the `up` fractional positions, computed once per rate pair. */
function kaiserSincTable(fromRate, toRate, zeros, rolloff, beta) {
  const key = [fromRate, toRate, zeros, rolloff, beta].join(',');
  if (tables.has(key)) return tables.get(key);
  const g = gcd(fromRate, toRate);
  const up = toRate / g;
  const down = fromRate / g;
  const cutoff = rolloff * Math.min(1, toRate / fromRate);
  const half = filterHalfWidth(fromRate, toRate, { zeros, rolloff });
  const taps = 2 * half;
  const table = new Float64Array(up * taps);
  const i0b = besselI0(beta);
  for (let p = 0; p < up; p++) {
    for (let i = 0; i < taps; i++) {
      const d = p / up + (half - 1) - i;
      const u = d / half;
      if (Math.abs(u) >= 1) continue;
      const arg = Math.PI * cutoff * d;
      const sinc = arg === 0 ? 1 : Math.sin(arg) / arg;
      table[p * taps + i] = cutoff * sinc * (besselI0(beta * Math.sqrt(Math.max(1 - u * u, 0))) / i0b);
    }
  }
  const entry = { table, half, taps, up, down };
  tables.set(key, entry);
  return entry;
}

/**
 * Band-limited resampling by a Kaiser-windowed sinc (`zeros` zero crossings on each side, low-pass
 * at `rolloff` times the lower Nyquist frequency) at exact rational positions: output j sits at
 * input position j * fromRate / toRate (ser_export.vad.resample_poly_kaiser's formula, summed tap
 * by tap in float64).  `gain` multiplies the input first.
 *
 * @param x the signal (Float32Array or Array) at `fromRate`
 * @param fromRate, toRate sample rates in Hz, positive integers
 * @returns Float32Array of resampledLength(x.length, fromRate, toRate) samples at `toRate`
 */
export function resamplePolyKaiser(x, fromRate, toRate, { zeros = KAISER.zeros, rolloff = KAISER.rolloff, beta = KAISER.beta } = {}, gain = 1) {
  if (!(Number.isInteger(fromRate) && Number.isInteger(toRate) && fromRate > 0 && toRate > 0)) {
    throw new InvalidAudioError(`bad sample rates ${fromRate} -> ${toRate} (positive integers in Hz)`);
  }
  if (fromRate === toRate) return Float32Array.from(x, (v) => v * gain);
  const { table, half, taps, up, down } = kaiserSincTable(fromRate, toRate, zeros, rolloff, beta);
  const n = x.length;
  const nOut = resampledLength(n, fromRate, toRate);
  const out = new Float32Array(nOut);
  for (let j = 0; j < nOut; j++) {
    const num = j * down;
    const centre = Math.floor(num / up);
    const row = (num % up) * taps;
    let acc = 0;
    for (let i = 0; i < taps; i++) {
      const k = centre - half + 1 + i;
      const v = k >= 0 && k < n ? x[k] * gain : 0;
      acc += v * table[row + i];
    }
    out[j] = acc;
  }
  return out;
}

/** softmax(logits / temperature) in float64, as a plain Array (temperature 1: the plain softmax). */
export function softmax(logits, temperature = 1) {
  const z = Array.from(logits, (v) => v / temperature);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, c) => a + c, 0);
  return e.map((v) => v / s);
}
