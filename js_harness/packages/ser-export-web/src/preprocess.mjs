// Captured audio -> model inputs, as the input contract demands (the same steps as
// ser_export.audio in Python; the parity suite checks that both agree).
//
//   import { toModelInputs } from './preprocess.mjs';
//   const { windows } = toModelInputs([left, right], 44100, contract);  // contract: readContract(bytes)
//   // windows[i].samples: Float32Array(contract.inputLength) RMS-normalised, or null if silent
//
// Steps: average the channels to mono; resample to contract.sampleRate (dsp.mjs: the
// Kaiser-windowed sinc the VAD's input is resampled with too; integer rates in Hz); cut
// consecutive windows of contract.inputLength samples (the last, partial one zero-padded if
// it holds at least a quarter of a window, or if it is the only one); RMS-normalise each to
// contract.normalization.rms_level_db; a window whose RMS is below
// contract.normalization.min_rms is silence and is refused (samples null), never divided by
// almost zero.

import { resamplePolyKaiser } from './dsp.mjs';
import { EmptyAudioError, InvalidAudioError, SilentAudioError } from './errors.mjs';

export function mixToMono(channels) {
  if (!channels.length) throw new EmptyAudioError('no audio channels');
  const n = channels[0].length;
  if (channels.some((c) => c.length !== n)) throw new InvalidAudioError('channels differ in length');
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (const c of channels) sum += c[i];
    out[i] = sum / channels.length;
  }
  return out;
}

export function checkFinite(x, what = 'audio') {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new InvalidAudioError(`${what} has a non-finite sample (NaN/Inf) at index ${i}`);
  }
  return x;
}

export function rms(x) {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  return x.length ? Math.sqrt(sum / x.length) : 0;
}

/** The RMS of a window normalised to `level` dB: 10 ** (level / 20), dB of amplitude (1 at 0 dB, 0.1 at
 * -20 dB); equal to Python's ser_export.contract.rms_target (tests/test_rms.py checks it). */
export function rmsTarget(level) {
  return 10 ** (level / 20);
}

/** {samples, rms}: samples null when the window is silent (rms < minRms); `rms` is the window's before. */
export function rmsNormalize(x, { rms_level_db: level = 0, min_rms: minRms = 1e-6 } = {}) {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  const r = x.length ? Math.sqrt(sum / x.length) : 0;
  if (r < minRms) return { samples: null, rms: r };
  const target = rmsTarget(level);
  const gain = Math.sqrt((x.length * target * target) / sum);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * gain;
  return { samples: out, rms: r };
}

/** Consecutive windows of `n` samples: [{start, samples}] (same rule as ser_export.audio.windows). */
export function windows(x, n, minFraction = 0.25) {
  const out = [];
  const count = Math.max(1, Math.ceil(x.length / n));
  for (let i = 0; i < count; i++) {
    const start = i * n;
    const chunk = x.subarray(start, start + n);
    if (chunk.length < n && i > 0 && chunk.length < minFraction * n) break;
    const w = new Float32Array(n);
    w.set(chunk);
    out.push({ start, samples: w });
  }
  return out;
}

/**
 * Model inputs for a recording: `channels` (Float32Array per channel) at `sampleRate`.
 * Returns {windows: [{start, startSeconds, samples (null if silent), rms}], durationSeconds}.
 */
export function toModelInputs(channels, sampleRate, contract) {
  const mono = checkFinite(mixToMono(channels));
  if (!mono.length) throw new EmptyAudioError('the recording is empty (0 samples)');
  const y = resamplePolyKaiser(mono, sampleRate, contract.sampleRate);
  const result = windows(y, contract.inputLength).map(({ start, samples }) => {
    const norm = rmsNormalize(samples, contract.normalization);
    return { start, startSeconds: start / contract.sampleRate, samples: norm.samples, rms: norm.rms };
  });
  if (result.every((w) => w.samples === null)) {
    throw new SilentAudioError(`silent: every ${(contract.inputLength / contract.sampleRate).toFixed(1)} s window has RMS below ${contract.normalization.min_rms}`);
  }
  return { windows: result, durationSeconds: y.length / contract.sampleRate };
}
