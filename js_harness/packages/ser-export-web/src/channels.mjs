// What classify() accepts as audio, turned into channels and a rate (one rule for the page's thread
// and for the worker client, which hands the channels to the worker).

/**
 * `samples` as channels + rate: an AudioBuffer, a Float32Array (mono) or an array of channels.
 *
 * @param samples an AudioBuffer, a Float32Array, or an Array of Float32Array (one per channel)
 * @param sampleRate the rate in Hz (an AudioBuffer's own rate when omitted)
 * @returns {{channels: Float32Array[], sampleRate: number}}
 */
export function toChannels(samples, sampleRate) {
  if (samples && typeof samples.getChannelData === 'function' && typeof samples.numberOfChannels === 'number') {
    const channels = Array.from({ length: samples.numberOfChannels }, (_, c) => samples.getChannelData(c));
    return { channels, sampleRate: sampleRate ?? samples.sampleRate };
  }
  if (samples instanceof Float32Array) return { channels: [samples], sampleRate };
  if (Array.isArray(samples) && samples.every((c) => c instanceof Float32Array)) return { channels: samples, sampleRate };
  throw new TypeError('samples must be a Float32Array, an array of Float32Array channels, or an AudioBuffer');
}
