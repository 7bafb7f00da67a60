// Read a ser_export model's metadata and pin its symbolic dimensions, in plain JavaScript.
//
// onnxruntime-web does not expose an ONNX file's metadata_props, and its WebGL backend
// ignores freeDimensionOverrides (it rejects an input declared [batch, 46305]), so the
// page reads the contract from the file and pins `batch` itself.  Only the protobuf
// messages on the path ModelProto.graph.{input,output}.type.tensor_type.shape are
// decoded and re-encoded; everything else (the weights) is copied as raw bytes.

import { ModelFileError } from './errors.mjs';

const WIRE_VARINT = 0;
const WIRE_64 = 1;
const WIRE_LEN = 2;
const WIRE_32 = 5;

function readVarint(buf, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint in ONNX file');
    const byte = buf[pos++];
    result |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return [result, pos];
    shift += 7n;
  }
}

function writeVarint(value) {
  let v = BigInt(value);
  const out = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Uint8Array.from(out);
}

// Split a message into fields: {field, wire, start, end, dataStart, dataEnd}.
function fields(buf, start = 0, end = buf.length) {
  const out = [];
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let dataStart = pos;
    if (wire === WIRE_VARINT) {
      [, pos] = readVarint(buf, pos);
    } else if (wire === WIRE_64) {
      pos += 8;
    } else if (wire === WIRE_32) {
      pos += 4;
    } else if (wire === WIRE_LEN) {
      let len;
      [len, pos] = readVarint(buf, pos);
      dataStart = pos;
      pos += Number(len);
    } else {
      throw new Error(`unsupported protobuf wire type ${wire} (not an ONNX file?)`);
    }
    if (pos > end) throw new Error('truncated ONNX file');
    out.push({ field, wire, start: fieldStart, end: pos, dataStart, dataEnd: pos });
  }
  return out;
}

const utf8 = new TextDecoder();

function lenField(field, payload) {
  return concat([writeVarint((field << 3) | WIRE_LEN), writeVarint(payload.length), payload]);
}

/** The byte arrays `parts` joined into one Uint8Array. */
export function concat(parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export { ModelFileError };

/** The model's metadata_props as {key: value} (values are strings); `name` is used in errors. */
export function readMetadata(bytes, name = 'model') {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (!buf.length) throw new ModelFileError(`${name}: is empty (0 bytes)`);
  let top;
  try {
    top = fields(buf);
  } catch (e) {
    throw new ModelFileError(`${name}: not an ONNX model (truncated or corrupt: ${e.message})`);
  }
  if (!top.some((f) => f.field === 7 && f.wire === WIRE_LEN)) { // ModelProto.graph
    throw new ModelFileError(`${name}: not an ONNX model (no graph: truncated or another format?)`);
  }
  const meta = {};
  for (const f of top) {
    if (f.field !== 14 || f.wire !== WIRE_LEN) continue; // ModelProto.metadata_props
    let key = null;
    let value = null;
    for (const g of fields(buf, f.dataStart, f.dataEnd)) {
      const text = utf8.decode(buf.subarray(g.dataStart, g.dataEnd));
      if (g.field === 1) key = text;
      if (g.field === 2) value = text;
    }
    if (key !== null) meta[key] = value ?? '';
  }
  return meta;
}

/** The input/output contract of a ser_export model, decoded from its metadata (`name` is used in errors). */
export function readContract(bytes, name = 'model') {
  const meta = readMetadata(bytes, name);
  for (const key of ['labels', 'sample_rate', 'input_length', 'normalization']) {
    if (!(key in meta)) throw new ModelFileError(`${name}: its metadata has no '${key}': not a ser_export model`);
  }
  const json = (key) => {
    try {
      return JSON.parse(meta[key]);
    } catch (e) {
      throw new ModelFileError(`${name}: its metadata '${key}' is not JSON (${e.message})`);
    }
  };
  const contract = {
    labels: json('labels'),
    sampleRate: Number(meta.sample_rate),
    inputLength: Number(meta.input_length),
    normalization: json('normalization'),
    frontend: meta.frontend ? json('frontend') : null,
    featuresOutput: meta.features_output || null,
    arch: meta.arch || null,
    postprocessing: meta.postprocessing ? json('postprocessing') : null,
    metadata: meta,
  };
  if (!Array.isArray(contract.labels) || !contract.labels.length || !contract.labels.every((l) => typeof l === 'string')) {
    throw new ModelFileError(`${name}: its metadata 'labels' is not a list of label names`);
  }
  if (!(contract.sampleRate > 0) || !(contract.inputLength > 0)) {
    throw new ModelFileError(`${name}: its metadata sample_rate/input_length are not positive numbers`);
  }
  return contract;
}

function rewriteDim(buf, dim, values) {
  // TensorShapeProto.Dimension: 1 dim_value (varint), 2 dim_param (string), 3 denotation
  const parts = [];
  let changed = false;
  for (const f of fields(buf, dim.dataStart, dim.dataEnd)) {
    if (f.field === 2) {
      const name = utf8.decode(buf.subarray(f.dataStart, f.dataEnd));
      if (name in values) {
        parts.push(writeVarint((1 << 3) | WIRE_VARINT), writeVarint(values[name]));
        changed = true;
        continue;
      }
    }
    parts.push(buf.subarray(f.start, f.end));
  }
  return changed ? concat(parts) : null;
}

// Re-encode message `msg` (a field of buf) descending along `path` (field numbers) and
// rewriting the Dimension messages at its end; returns the new field bytes or null.
function rewrite(buf, msg, path, values) {
  const [head, ...rest] = path;
  const parts = [];
  let changed = false;
  for (const f of fields(buf, msg.dataStart, msg.dataEnd)) {
    if (f.field === head && f.wire === WIRE_LEN) {
      const inner = rest.length ? rewrite(buf, f, rest, values) : rewriteDim(buf, f, values);
      if (inner) {
        parts.push(lenField(head, inner));
        changed = true;
        continue;
      }
    }
    parts.push(buf.subarray(f.start, f.end));
  }
  return changed ? concat(parts) : null;
}

/**
 * A copy of the model whose symbolic dimensions named in `values` (e.g. {batch: 1}) are
 * fixed, on the graph's inputs and outputs.  Throws if none of them is found.
 */
export function pinDimensions(bytes, values) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const top = fields(buf);
  const graph = top.find((f) => f.field === 7 && f.wire === WIRE_LEN);
  if (!graph) throw new ModelFileError('no graph in this ONNX file');
  // GraphProto: 11 input, 12 output -> ValueInfoProto 2 type -> TypeProto 1 tensor_type
  //   -> TypeProto.Tensor 2 shape -> TensorShapeProto 1 dim
  const graphParts = [];
  let changed = false;
  for (const f of fields(buf, graph.dataStart, graph.dataEnd)) {
    if ((f.field === 11 || f.field === 12) && f.wire === WIRE_LEN) {
      const inner = rewrite(buf, f, [2, 1, 2, 1], values);
      if (inner) {
        graphParts.push(lenField(f.field, inner));
        changed = true;
        continue;
      }
    }
    graphParts.push(buf.subarray(f.start, f.end));
  }
  if (!changed) throw new ModelFileError(`no symbolic dimension named ${Object.keys(values).join(', ')} on the graph's inputs or outputs`);
  const newGraph = lenField(7, concat(graphParts));
  return concat(top.map((f) => (f === graph ? newGraph : buf.subarray(f.start, f.end))));
}

