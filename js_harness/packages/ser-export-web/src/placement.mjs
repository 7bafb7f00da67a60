// Where onnxruntime-web placed a model's nodes: the proof behind `Classifier.backend`, the same one
// the parity runners use.
//
// - wasm: the wasm build has one execution provider (CPU), so every node runs there.
// - webgl: onnxruntime-web's WebGL backend is the onnxjs engine, which has no per-node fallback:
//   an operator it lacks fails the load.
// - webgpu: onnxruntime's WebGPU providers may leave nodes to the CPU provider.  onnxruntime
//   logs "Node placements ... placed on [Provider]. Number of nodes: N" at verbose level when a
//   session is created.  A page cannot switch that log on for its own sessions (onnxruntime-web
//   keeps the first session's log level for the whole environment, and its wasm module binds
//   console.log when it loads), so a short-lived worker with its own onnxruntime-web creates one
//   verbose session of the same bytes and options, reads its console, and posts the placement back.

/**
 * The execution providers each backend's nodes may be placed on: onnxruntime-web's WebGPU build
 * (onnxruntime-web/webgpu, which this package loads) runs onnxruntime's native WebGPU provider,
 * its all-backends build the JavaScript one (JSEP).
 */
export const PROVIDERS = Object.freeze({ wasm: Object.freeze(['CPUExecutionProvider']), webgl: Object.freeze(['webgl']),
  webgpu: Object.freeze(['WebGpuExecutionProvider', 'JsExecutionProvider']) });

/**
 * Node counts by provider from onnxruntime's verbose session log: "All nodes placed on
 * [JsExecutionProvider]. Number of nodes: 53", or one line per provider when some nodes fell back.
 *
 * @param {string[]} lines console lines
 * @returns {Object<string, number>|null} provider -> nodes, null when the log has no placement
 */
export function placementFromLog(lines) {
  const providers = {};
  for (const line of lines) {
    for (const m of String(line).matchAll(/placed on \[(\w+)\]\. Number of nodes: (\d+)/g)) {
      providers[m[1]] = (providers[m[1]] || 0) + Number(m[2]);
    }
  }
  return Object.keys(providers).length ? providers : null;
}

/** A placement that could not be proven, and why. */
export function notProven(why) {
  return { providers: null, proven: false, source: `not proven: ${why}` };
}

/**
 * The placement proven by onnxruntime's verbose log `lines`, or null when they hold none.
 *
 * @param {string[]} lines console lines
 * @param {string} [where] where the log was read, appended to the source
 */
export function placementOfLog(lines, where = '') {
  const providers = placementFromLog(lines);
  return providers ? { providers, proven: true, source: `onnxruntime verbose log (Node placements)${where}` } : null;
}

/** The placement of a backend whose build cannot split a graph (wasm, webgl); null for webgpu. */
export function staticPlacement(backend) {
  if (backend === 'wasm') {
    return { providers: { CPUExecutionProvider: 'all' }, proven: true,
      source: 'single provider: the wasm build has only the CPU execution provider' };
  }
  if (backend === 'webgl') {
    return { providers: { webgl: 'all' }, proven: true,
      source: 'onnxjs WebGL engine: no per-node fallback; an unsupported operator fails the load' };
  }
  return null;
}

/** Nodes on other providers than `backend`'s, as {provider: nodes} (empty when none fell back). */
export function fallbacks(placement, backend) {
  return Object.fromEntries(Object.entries(placement.providers || {}).filter(([p]) => !PROVIDERS[backend].includes(p)));
}

// The worker: silence its console into a list before onnxruntime-web's wasm module binds it, create
// one verbose session, post the placement lines back.
const WORKER = `
const lines = [];
for (const k of ['log', 'info', 'warn', 'error', 'debug']) console[k] = (...a) => lines.push(a.map(String).join(' '));
onmessage = async ({ data: { ortUrl, bytes, options } }) => {
  try {
    const ort = await import(ortUrl);
    ort.env.logLevel = 'verbose';
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(bytes, { ...options, logSeverityLevel: 0, logVerbosityLevel: 0 });
    await session.release();
    postMessage({ lines: lines.filter((l) => l.includes('placed on [')) });
  } catch (e) {
    postMessage({ error: String((e && e.message) || e).split('\\n')[0] });
  }
};
`;


/**
 * Prove where onnxruntime-web places `bytes`' nodes on `backend` with `options` (the session's own).
 *
 * @param {object} args
 * @param {string} args.backend 'wasm', 'webgl' or 'webgpu'
 * @param {Uint8Array} args.bytes the model bytes the session was created from
 * @param {object} args.options the session options (executionProviders, graphOptimizationLevel)
 * @param {string|null} args.ortUrl the URL of the onnxruntime-web build the page uses (webgpu only)
 * @param {number} [args.timeoutMs] how long the worker may take
 * @returns {Promise<{providers: Object<string, number|string>|null, proven: boolean, source: string, ms?: number}>}
 *   `proven` false (with the reason in `source`) when no worker could give the log; `ms`: how long
 *   the worker took (it runs beside the page's own session creation)
 */
export async function provePlacement({ backend, bytes, options, ortUrl, timeoutMs = 120000 }) {
  const fixed = staticPlacement(backend);
  if (fixed) return fixed;
  if (typeof Worker === 'undefined' || typeof Blob === 'undefined' || typeof URL?.createObjectURL !== 'function') {
    return notProven('this environment has no Worker to read onnxruntime\'s placement log in');
  }
  if (!ortUrl) return notProven('the URL of the onnxruntime-web build is unknown (pass options.ortUrl)');
  const t0 = performance.now();
  const url = URL.createObjectURL(new Blob([WORKER], { type: 'text/javascript' }));
  let worker;
  try {
    worker = new Worker(url, { type: 'module' });
  } catch (e) {
    URL.revokeObjectURL(url);
    return notProven(`a worker cannot be started here (${e.message || e})`);
  }
  try {
    const answer = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ error: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
      worker.onmessage = ({ data }) => { clearTimeout(timer); resolve(data); };
      worker.onerror = (e) => { clearTimeout(timer); e.preventDefault?.(); resolve({ error: e.message || 'the worker failed' }); };
      const copy = bytes.slice();
      worker.postMessage({ ortUrl, bytes: copy, options }, [copy.buffer]);
    });
    if (answer.error) return notProven(`the verbose session failed (${answer.error})`);
    const placement = placementOfLog(answer.lines, ', from a worker session');
    return placement ? { ...placement, ms: performance.now() - t0 } : notProven('onnxruntime logged no node placement');
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
}
