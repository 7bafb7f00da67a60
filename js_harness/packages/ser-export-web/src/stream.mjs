// A stateful model run over a whole stream, chunk by chunk, as its streaming protocol declares:
// the one chunk loop of the JavaScript side (the parity runners, the package's own Silero VAD).
//
//   import { runStream } from './stream.mjs';
//   const r = await runStream(ort, session, protocol, samples);      // samples: Float32Array
//   r.chunks; r.outputs.output.data /* Float32Array */; r.outputs.output.dims /* [chunks, 1, 1] */
//   r.finalState.stateN.data, r.finalState.stateN.dims
//
// The protocol is the wire form the Python runners get too (parity/runners/base.py, run_stream):
//   { signal: { name, chunk, context, dtype }, states: [{ input, output, dims, dtype, init }],
//     constants: [{ name, dtype, dims, value }], outputs: [name, ...] }
// The chunking rule is ser_export/streaming.py's: a stream of n samples is cut into ceil(n / chunk)
// chunks (at least one), the last zero-padded; chunk i is fed with the `context` samples before it
// (zeros before the stream starts), as a [1, context + chunk] tensor.  Every chunk feeds the signal
// window, the current states and the constants, records each output named in `outputs`, and feeds each
// state output back into its state input.  Results are float32 whatever the model's dtypes.
import { SerExportError } from './errors.mjs';

const SIGNAL_DTYPES = ['float32', 'float16'];
const CONSTANT_ARRAYS = { int64: BigInt64Array, int32: Int32Array, float32: Float32Array };

/** Chunks of a stream of `nSamples` samples (ser_export.streaming.n_chunks). */
export function nChunks(nSamples, chunk) {
  if (!(Number.isInteger(chunk) && chunk > 0)) throw new SerExportError(`stream: chunk must be a positive integer, got ${chunk}`);
  return Math.max(1, Math.ceil(nSamples / chunk));
}

// ----------------------------------------------------------------- float16 ---
// onnxruntime-web takes and gives float16 tensors as their raw bits in a Uint16Array (a Float16Array
// only where the JS engine has one: Node 20 has none, Chromium does); it converts numbers to float16 for
// neither, so the conversion is here.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> float16 bits, rounded to nearest even (overflow to infinity, NaN kept, subnormals exact). */
export function toFloat16Bits(values) {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) { // infinity or NaN
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) { // subnormal float16 (or zero)
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const m = mant | 0x800000;
      const shift = 14 - e;
      let h = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rest > half || (rest === half && (h & 1))) h += 1;
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1; // a carry into the exponent is right
      out[i] = sign | h;
    }
  }
  return out;
}

/** float16 bits -> float32 (exact). */
export function fromFloat16Bits(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) out[i] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) out[i] = mant ? NaN : sign * Infinity;
    else out[i] = sign * (1024 + mant) * 2 ** (exp - 25);
  }
  return out;
}

/** A tensor's values as float32 (float16 bits converted; onnxruntime's Float16Array read as numbers). */
async function floats(tensor, name) {
  const data = tensor.location && tensor.location !== 'cpu' ? await tensor.getData() : tensor.data;
  if (tensor.type === 'float32') return Float32Array.from(data);
  if (tensor.type === 'float16') return data instanceof Uint16Array ? fromFloat16Bits(data) : Float32Array.from(data);
  throw new SerExportError(`stream: output ${name} is ${tensor.type}, not float32 or float16`);
}

// A float tensor of `values` (a Float32Array, copied: onnxruntime-web's proxy transfers the buffers it is given).
function floatTensor(ort, dtype, values, dims) {
  return dtype === 'float16' ? new ort.Tensor('float16', toFloat16Bits(values), dims)
    : new ort.Tensor('float32', values.slice(), dims);
}

// ---------------------------------------------------------------- protocol ---
function size(dims) {
  return dims.reduce((a, b) => a * b, 1);
}

/** The protocol checked against the session: one error naming the first name or value that is wrong. */
export function checkProtocol(session, protocol) {
  const { signal, states = [], constants = [], outputs } = protocol || {};
  if (!signal || typeof signal.name !== 'string') throw new SerExportError('stream: protocol.signal.name is missing');
  nChunks(0, signal.chunk);
  if (!(Number.isInteger(signal.context) && signal.context >= 0)) {
    throw new SerExportError(`stream: protocol.signal.context must be an integer >= 0, got ${signal.context}`);
  }
  if (!SIGNAL_DTYPES.includes(signal.dtype ?? 'float32')) {
    throw new SerExportError(`stream: protocol.signal.dtype ${signal.dtype} is not float32 or float16`);
  }
  if (!Array.isArray(outputs) || !outputs.length) throw new SerExportError('stream: protocol.outputs names no output');
  const inputs = new Set(session.inputNames);
  const produced = new Set(session.outputNames);
  const needInput = (name, what) => {
    if (!inputs.has(name)) {
      throw new SerExportError(`stream: the model has no input '${name}' (${what}; its inputs: ${session.inputNames.join(', ')})`);
    }
  };
  const needOutput = (name, what) => {
    if (!produced.has(name)) {
      throw new SerExportError(`stream: the model has no output '${name}' (${what}; its outputs: ${session.outputNames.join(', ')})`);
    }
  };
  needInput(signal.name, 'protocol.signal.name');
  states.forEach((s, i) => {
    needInput(s.input, `protocol.states[${i}].input`);
    needOutput(s.output, `protocol.states[${i}].output`);
    if (!SIGNAL_DTYPES.includes(s.dtype ?? 'float32')) {
      throw new SerExportError(`stream: protocol.states[${i}].dtype ${s.dtype} is not float32 or float16`);
    }
    if (!Array.isArray(s.dims) || !s.dims.every((d) => Number.isInteger(d) && d > 0)) {
      throw new SerExportError(`stream: protocol.states[${i}].dims must be positive integers, got ${JSON.stringify(s.dims)}`);
    }
  });
  constants.forEach((c, i) => {
    needInput(c.name, `protocol.constants[${i}].name`);
    if (!CONSTANT_ARRAYS[c.dtype]) throw new SerExportError(`stream: protocol.constants[${i}].dtype ${c.dtype} is not int64, int32 or float32`);
    const n = size(c.dims || []);
    const values = Array.isArray(c.value) ? c.value.flat(Infinity) : [c.value];
    if (values.length !== 1 && values.length !== n) {
      throw new SerExportError(`stream: protocol.constants[${i}].value holds ${values.length} values, dims ask ${n}`);
    }
  });
  outputs.forEach((name, i) => needOutput(name, `protocol.outputs[${i}]`));
  const fed = new Set([signal.name, ...states.map((s) => s.input), ...constants.map((c) => c.name)]);
  const unfed = session.inputNames.filter((n) => !fed.has(n));
  if (unfed.length) throw new SerExportError(`stream: the protocol feeds no value to the model input '${unfed[0]}'`);
  const checked = { signal: { dtype: 'float32', ...signal }, states: states.map((s) => ({ dtype: 'float32', init: 0, ...s })),
    constants, outputs };
  checkAgainstMetadata(session, checked);
  return checked;
}

/** The dims every input of the protocol is fed with: {input name: dims}. */
export function feedShapes(protocol) {
  const { signal, states = [], constants = [] } = protocol;
  return { [signal.name]: [1, signal.context + signal.chunk], ...Object.fromEntries(states.map((s) => [s.input, s.dims])),
    ...Object.fromEntries(constants.map((c) => [c.name, c.dims || []])) };
}

// The declared dtypes and fixed dims against the model's own (onnxruntime's inputMetadata, where the backend
// gives it; symbolic and unnamed dims take any size).
function checkAgainstMetadata(session, p) {
  let metadata;
  try {
    metadata = session.inputMetadata;
  } catch {
    return; // onnxruntime-web's WebGL backend has no model metadata
  }
  if (!Array.isArray(metadata)) return;
  const shapes = feedShapes(p);
  const declared = { [p.signal.name]: ['protocol.signal', p.signal.dtype],
    ...Object.fromEntries(p.states.map((s, i) => [s.input, [`protocol.states[${i}]`, s.dtype]])),
    ...Object.fromEntries(p.constants.map((c, i) => [c.name, [`protocol.constants[${i}]`, c.dtype]])) };
  for (const m of metadata) {
    if (!m || !m.isTensor || !declared[m.name]) continue;
    const [where, dtype] = declared[m.name];
    if (m.type && m.type !== dtype) {
      throw new SerExportError(`stream: ${where}.dtype is ${dtype}, the model's input '${m.name}' is ${m.type}`);
    }
    const dims = shapes[m.name];
    const fixed = (d) => Number.isInteger(d) && d >= 0 && d < 2 ** 31;
    if (Array.isArray(m.shape) && (m.shape.length !== dims.length || m.shape.some((d, j) => fixed(d) && d !== dims[j]))) {
      const shape = m.shape.map((d) => (fixed(d) ? d : '?'));
      throw new SerExportError(`stream: ${where} feeds '${m.name}' with dims [${dims}], the model's input is [${shape}]`);
    }
  }
}

// A constant's tensor, new for every run: onnxruntime-web's proxy transfers (detaches) the buffers it is given.
function constantTensor(ort, c) {
  const dims = c.dims || [];
  const n = size(dims);
  const values = Array.isArray(c.value) ? c.value.flat(Infinity) : Array(n).fill(c.value);
  const data = c.dtype === 'int64' ? BigInt64Array.from(values, (v) => BigInt(v))
    : CONSTANT_ARRAYS[c.dtype].from(values.length === n ? values : Array(n).fill(values[0]));
  return new ort.Tensor(c.dtype, data, dims);
}

// --------------------------------------------------------------------- run ---
/**
 * One whole stream through `session`, looping over its chunks.
 *
 * @param ort      onnxruntime-web or onnxruntime-node
 * @param session  an InferenceSession of the model
 * @param protocol the wire form above
 * @param samples  Float32Array: the stream's samples
 * @returns {{ chunks: number, outputs: Object<string, {data: Float32Array, dims: number[]}>,
 *             finalState: Object<string, {data: Float32Array, dims: number[]}> }}
 *          outputs[name].dims = [chunks, ...the output's dims]; finalState by state output name.
 */
export async function runStream(ort, session, protocol, samples) {
  const p = checkProtocol(session, protocol);
  const { chunk, context } = p.signal;
  const k = nChunks(samples.length, chunk);
  const span = context + chunk;
  const history = new Float32Array(context + k * chunk);
  history.set(samples, context);
  const fetches = [...new Set([...p.outputs, ...p.states.map((s) => s.output)])];
  let states = p.states.map((s) => floatTensor(ort, s.dtype, new Float32Array(size(s.dims)).fill(s.init), s.dims));
  const recorded = Object.fromEntries(p.outputs.map((n) => [n, { parts: [], dims: null }]));
  let last = null;
  for (let i = 0; i < k; i++) {
    const feeds = { [p.signal.name]: floatTensor(ort, p.signal.dtype, history.subarray(i * chunk, i * chunk + span), [1, span]) };
    p.states.forEach((s, j) => { feeds[s.input] = states[j]; });
    for (const c of p.constants) feeds[c.name] = constantTensor(ort, c);
    last = await session.run(feeds, fetches);
    for (const name of p.outputs) {
      const t = last[name];
      const r = recorded[name];
      if (r.dims === null) r.dims = [...t.dims];
      else if (t.dims.length !== r.dims.length || t.dims.some((d, j) => d !== r.dims[j])) {
        throw new SerExportError(`stream: output ${name} has dims [${t.dims}] at chunk ${i}, [${r.dims}] at chunk 0`);
      }
      r.parts.push(await floats(t, name));
    }
    states = p.states.map((s) => last[s.output]);
  }
  const outputs = {};
  for (const [name, r] of Object.entries(recorded)) {
    const n = size(r.dims);
    const data = new Float32Array(k * n);
    r.parts.forEach((part, i) => data.set(part, i * n));
    outputs[name] = { data, dims: [k, ...r.dims] };
  }
  const finalState = {};
  for (const s of p.states) {
    const t = last[s.output];
    finalState[s.output] = { data: await floats(t, s.output), dims: [...t.dims] };
  }
  return { chunks: k, outputs, finalState };
}

/** Streams stored one after another in `all` (Float32Array), split by their `lengths` (samples). */
export function splitStreams(all, lengths) {
  if (!Array.isArray(lengths) || !lengths.length || !lengths.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new SerExportError(`stream: lengths must be a non-empty list of integers >= 0, got ${JSON.stringify(lengths)}`);
  }
  const total = lengths.reduce((a, b) => a + b, 0);
  if (total !== all.length) throw new SerExportError(`stream: the streams file holds ${all.length} samples, lengths add up to ${total}`);
  let at = 0;
  return lengths.map((n) => all.subarray(at, (at += n)));
}
