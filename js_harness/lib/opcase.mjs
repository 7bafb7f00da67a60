// One operator case of the measured operator table (python -m ser_export optable): create a
// session for a small model, run it on the given inputs, and say what happened at each step.
// Used by runner.mjs (onnxruntime-web wasm in Node) and browser/page.mjs (Chromium).
//
// A case never throws: a failure to load or to run is the measurement.

const ARRAYS = {
  float32: Float32Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array, int8: Int8Array,
  bool: Uint8Array,
};

/** Typed array of `dtype` over raw little-endian bytes (copied, so it is aligned). */
export function typedArray(dtype, bytes) {
  const Cls = ARRAYS[dtype];
  if (!Cls) throw new Error(`unsupported input dtype ${dtype}`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return new Cls(copy.buffer);
}

/** Raw little-endian bytes of a tensor's data (int64 as BigInt64, bool as one byte). */
export function tensorBytes(data) {
  if (Array.isArray(data)) return Uint8Array.from(data.map((v) => (v ? 1 : 0)));
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function firstLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0].slice(0, 500);
}

/**
 * Load `modelBytes` with `options` and run it on `inputs` ([{name, dtype, dims, bytes}]).
 * Returns {loaded, loadError, ran, runError, outputs: [{name, dtype, dims, bytes}], loadMs}.
 * `readData(tensor)` returns a tensor's data (GPU tensors need getData()).
 */
export async function runCase(ort, modelBytes, options, inputs, readData = async (t) => t.data) {
  const result = { loaded: false, ran: false, outputs: [] };
  let session;
  const t0 = performance.now();
  try {
    session = await ort.InferenceSession.create(modelBytes, options);
    result.loaded = true;
    result.loadMs = performance.now() - t0;
  } catch (e) {
    result.loadError = firstLine(e);
    return result;
  }
  try {
    const feeds = {};
    for (const inp of inputs) {
      feeds[inp.name] = new ort.Tensor(inp.dtype, typedArray(inp.dtype, inp.bytes), inp.dims);
    }
    const out = await session.run(feeds);
    for (const name of session.outputNames) {
      const t = out[name];
      result.outputs.push({ name, dtype: t.type, dims: t.dims, bytes: tensorBytes(await readData(t)) });
    }
    result.ran = true;
  } catch (e) {
    result.runError = firstLine(e);
  } finally {
    try {
      await session.release();
    } catch (e) {
      // a session that failed to run may fail to release too; the measurement stands
    }
  }
  return result;
}
