// The errors ser-export-web throws: every one is a SerExportError whose message names the problem
// (and the file, when there is one), so an app can tell them apart with `instanceof`.

/** Base class of every error this package throws on purpose. */
export class SerExportError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A model file that is not a complete ser_export ONNX model (truncated, another format, no metadata). */
export class ModelFileError extends SerExportError {}

/** The backend asked for cannot run here (no WebGPU adapter, no WebGL2, not in Node, or it refused the model). */
export class BackendUnavailableError extends SerExportError {}

/** Audio that cannot be classified. */
export class AudioError extends SerExportError {}

/** A recording with no samples. */
export class EmptyAudioError extends AudioError {}

/** A recording holding NaN or infinite samples. */
export class InvalidAudioError extends AudioError {}

/** A recording whose every window is below the model's RMS floor. */
export class SilentAudioError extends AudioError {}
