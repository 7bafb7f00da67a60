// Type declarations of ser-export-web (src/index.mjs).

export type Backend = 'wasm' | 'webgl' | 'webgpu';
export type Verdict = 'classified' | 'uncertain' | 'no_speech';
export type WindowVerdict = Verdict | 'silent';

export declare const BACKENDS: readonly Backend[];
export declare const CLASSIFIED: 'classified';
export declare const UNCERTAIN: 'uncertain';
export declare const NO_SPEECH: 'no_speech';
export declare const SILENT: 'silent';

/** Base class of every error the package throws on purpose; the message names the problem. */
export declare class SerExportError extends Error {}
/** Not a complete ser_export ONNX model (truncated, another format, no metadata), or it cannot be fetched. */
export declare class ModelFileError extends SerExportError {}
/** The backend cannot run here (no WebGPU adapter, no WebGL2, not in Node) or refused the model. */
export declare class BackendUnavailableError extends SerExportError {}
/** Audio that cannot be classified. */
export declare class AudioError extends SerExportError {}
/** A recording with no samples. */
export declare class EmptyAudioError extends AudioError {}
/** A recording holding NaN or infinite samples. */
export declare class InvalidAudioError extends AudioError {}
/** A recording whose every window is below the model's RMS floor. */
export declare class SilentAudioError extends AudioError {}

/** What the model's metadata declares. */
export interface Contract {
  labels: string[];
  sampleRate: number;
  inputLength: number;
  normalization: { rms_level_db: number; min_rms: number };
  frontend: Record<string, unknown> | null;
  featuresOutput: string | null;
  arch: string | null;
  postprocessing: Record<string, unknown> | null;
  metadata: Record<string, string>;
}

/**
 * Where onnxruntime placed the model's nodes: node counts by execution provider ('all' where the
 * build has one provider or no per-node fallback), whether that was proven, and how.
 */
export interface Placement {
  providers: Record<string, number | 'all'> | null;
  /** false when the proof could not be made here (no Worker, unknown onnxruntime-web URL); `source` says why. */
  proven: boolean;
  source: string;
  /** WebGPU: milliseconds the proof's worker took (beside the page's own session creation). */
  ms?: number;
}

/** The execution providers each backend's nodes may be placed on. */
export declare const PROVIDERS: Readonly<Record<Backend, readonly string[]>>;
/** Node counts by provider from onnxruntime's verbose "Node placements" log lines; null when none. */
export declare function placementFromLog(lines: string[]): Record<string, number> | null;

export declare function readContract(bytes: Uint8Array | ArrayBuffer, name?: string): Contract;

/** Probabilities by label. */
export type Probabilities = Record<string, number>;

export interface WindowResult {
  start_s: number;
  verdict: WindowVerdict;
  /** The top label of a classified window, else null. */
  top: string | null;
  speech_fraction: number | null;
  ood_score: number | null;
  /** Calibrated probabilities of a classified window, else null. */
  probabilities: Probabilities | null;
}

/** The JSON of `python -m ser_export predict FILE --json`, plus the backend and the time taken. */
export interface Classification {
  speech: boolean;
  verdict: Verdict;
  top: string | null;
  /** Mean calibrated probabilities over the classified windows; null when none is classified. */
  probabilities: Probabilities | null;
  calibrated: boolean;
  windows: WindowResult[];
  silent_windows_start_s: number[];
  no_speech_windows_start_s: number[];
  uncertain_windows_start_s: number[];
  duration_s: number;
  backend: Backend;
  /** Where it was computed: 'worker' (the package's worker, the default for wasm in a page) or 'main'. */
  thread: Thread;
  ms: number;
  /** With `classify(..., { logmel: true })`: the graph's log-mel of every non-silent window. */
  logmel?: { dims: [number, number]; windows: { start_s: number; rms: number; data: Float32Array }[] };
}

export interface ClassifyOptions {
  /** Also return the log-mel of every non-silent window (for drawing a spectrogram). */
  logmel?: boolean;
}

/** A block of a long recording for classifyStream: a mono Float32Array, or an array of Float32Array channels. */
export type AudioBlock = Float32Array | Float32Array[];

export interface ClassifyStreamOptions extends ClassifyOptions {
  /** Non-silent windows classified per model run (default 16): what bounds the memory. */
  batchWindows?: number;
  /** Input frames resampled at a time, before the filter's margins (default 65536). */
  stretchFrames?: number;
}

/** The thread a classification runs on: the package's worker, or the page's (or Node's) own. */
export type Thread = 'worker' | 'main';

/** Where a live result's latency went, in milliseconds (the parts are timed where the model runs). */
export interface LiveTimings {
  thread: Thread;
  /** The window made into the model's input (at the model's rate: the RMS normalisation only). */
  preprocessMs: number;
  modelMs: number;
  /** The voice-activity model, its resampling of the window to 16 kHz included. */
  vadMs: number;
  /** Calibration, the OOD score, the verdicts and the result's JSON. */
  postprocessMs: number;
  /** From the hop's arrival where the model runs to its result there. */
  computeMs: number;
  /** latencyMs - computeMs: the hop's and the result's messages (worklet, worker, page) and their waits. */
  messagingMs: number;
}

/** One live result: the window's classification and where it lies in the stream. */
export interface LiveResult extends Omit<Classification, 'verdict' | 'duration_s' | 'ms' | 'logmel'> {
  verdict: Verdict | 'silent';
  index: number;
  startSeconds: number;
  endSeconds: number;
  /** From the hop's last sample (the AudioContext's clock) to the result on the page's thread. */
  latencyMs: number;
  dropped: number;
  timings: LiveTimings;
}

export interface ListenOptions {
  /** Seconds between results (default 0.5). */
  hopSeconds?: number;
  /** An AudioContext to use (default: a new one, closed by stop()). */
  audioContext?: AudioContext;
  /** Where the worklet module is served (default: a blob: URL made from the package). */
  workletUrl?: string | URL;
}

export declare class Listener extends EventTarget implements AsyncIterable<LiveResult> {
  /** Resolves once audio flows. */
  readonly ready: Promise<void>;
  readonly hopSeconds: number;
  readonly results: number;
  readonly dropped: number;
  /** Hops of audio so far (classified, dropped, or before the first whole window), as last reported. */
  readonly hops: number;
  [Symbol.asyncIterator](): AsyncIterator<LiveResult>;
  stop(): Promise<void>;
}

export type AudioInput = Float32Array | Float32Array[] | AudioBuffer;
export type ModelSource = string | URL | Response | ArrayBuffer | Uint8Array;

/** The reduced-precision variants a ser_export release ships beside each model. */
export type Variant = 'fp16' | 'int8' | 'int8s';
export declare const VARIANTS: readonly Variant[];
/** The file of `model`'s `variant` beside it (`x.onnx` -> `x.int8s.onnx`); `model` itself for none. */
export declare function variantSource<M extends string | URL>(model: M, variant?: Variant | null): M;

export interface LoadOptions {
  backend?: Backend;
  /** Load the model's reduced-precision variant beside it (the model must be a URL or path). */
  variant?: Variant;
  /** wasm threads (default: navigator.hardwareConcurrency when crossOriginIsolated, else 1). */
  threads?: number;
  onProgress?: (progress: { loaded: number; total: number | null }) => void;
  /** The Silero VAD file, needed when the model is given as bytes. */
  vadModel?: ModelSource;
  /** An onnxruntime-web module to use instead of the bundle for the backend. */
  ort?: unknown;
  /** The URL of that module (WebGPU: a worker loads it to prove the placement); default: the backend's build as the page resolves it. */
  ortUrl?: string;
  /** Run onnxruntime-web's wasm in its proxy worker, off the page's main thread (wasm in a browser only; default false). */
  proxy?: boolean;
  /** Prove where the nodes run (default true; on WebGPU a worker creates a second, verbose session); false skips it. */
  proveBackend?: boolean;
  /**
   * Run the whole classification (preprocessing, VAD, model, post-processing) in the package's module
   * worker, so that the page's thread only receives results: default true for wasm in a page (unless
   * `proxy`, or `ort` without `ortUrl`); false keeps it on the page's thread.  Not in Node, WebGL or WebGPU.
   */
  worker?: boolean;
  /** onnxruntime-web's env.wasm.wasmPaths in the worker (default: the `ort` module's, else beside the build). */
  wasmPaths?: string | Record<string, string>;
  /** The model's name in error messages (default: the file name of its URL). */
  name?: string;
}

export declare class Classifier {
  /** The backend every node runs on, as `placement` proves (a model with nodes left off it is refused). */
  readonly backend: Backend;
  readonly placement: Placement;
  /** Whether onnxruntime-web runs in its proxy worker (wasm in a browser), off the page's main thread. */
  readonly proxy: boolean;
  /** Where classify() and listen() run the models: 'worker' (the package's) or 'main'. */
  readonly thread: Thread;
  readonly threads: number;
  readonly labels: string[];
  readonly sampleRate: number;
  readonly windowSeconds: number;
  readonly contract: Contract;
  classify(samples: AudioInput, sampleRate?: number, options?: ClassifyOptions): Promise<Classification>;
  /**
   * classify's block-wise form for long recordings: the same windows and numbers as classify on the
   * whole recording, in memory that does not grow with its length.  On a classifier whose model runs
   * in-thread (`thread: 'main'`: Node, `worker: false`, or inside a worker).
   */
  classifyStream(blocks: Iterable<AudioBlock> | AsyncIterable<AudioBlock>, sampleRate: number,
    options?: ClassifyStreamOptions): Promise<Classification>;
  listen(mediaStream: MediaStream, options?: ListenOptions): Listener;
  release(): Promise<void>;
}

export declare function defaultThreads(): number;
export declare function loadClassifier(model: ModelSource, options?: LoadOptions): Promise<Classifier>;
