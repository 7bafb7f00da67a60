// onnxruntime-web in headless Chromium (wasm, webgl or webgpu), for the ser_export parity suite.
//
//   node browser_runner.mjs --backend webgl [--bundle all|wasm] [--chromium /usr/bin/chromium]
//
// Same JSON-lines protocol as runner.mjs (load, run, bench, preprocess, opcase, stream, info, close).  Node serves the
// page, onnxruntime-web's dist/ and the model and input files on 127.0.0.1 (with COOP/COEP
// so wasm threads may use SharedArrayBuffer), and drives Chromium with playwright-core.
// A batch of cases costs one page call; the page is loaded once.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { launchOptions } from './lib/chromium.mjs';
import { parseOrExit } from './lib/cli.mjs';
import { serveRequests } from './lib/jsonl.mjs';
import { startServer } from './lib/static_server.mjs';
import { placementOfLog, staticPlacement } from './packages/ser-export-web/src/placement.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseOrExit({ options: { backend: { type: 'string' }, bundle: { type: 'string' },
  chromium: { type: 'string' } } });
const backend = args.backend ?? 'wasm';
const bundle = args.bundle ?? 'all'; // onnxruntime-web build the page loads: all, or wasm (wasm backend only)
if (bundle === 'wasm' && backend !== 'wasm') throw new Error(`the wasm-only bundle cannot run ${backend}`);
if (!['wasm', 'webgl', 'webgpu'].includes(backend)) {
  process.stderr.write(`unknown backend ${backend}\n`);
  process.exit(2);
}
const launch = launchOptions({ executablePath: args.chromium, backend });
const chromiumPath = launch.executablePath;
if (!existsSync(chromiumPath)) {
  process.stderr.write(`chromium not found at ${chromiumPath}\n`);
  process.exit(3);
}

const { chromium } = await import('playwright-core');
const ortPkg = JSON.parse(readFileSync(join(here, 'node_modules', 'onnxruntime-web', 'package.json'), 'utf8'));

// ---------------------------------------------------------------- server ---
const served = new Map(); // url path -> absolute file (models and inputs, added per request)
const { server, origin } = await startServer({
  '/ort/': join(here, 'node_modules', 'onnxruntime-web', 'dist'),
  '/page/': join(here, 'browser'),
  '/lib/': join(here, 'lib'),
  '/packages/': join(here, 'packages'),
}, served);

// --------------------------------------------------------------- browser ---
const userDataDir = mkdtempSync(join(tmpdir(), 'ser_export_chromium_'));
const context = await chromium.launchPersistentContext(userDataDir, launch);
const page = context.pages()[0] || (await context.newPage());
const consoleLines = [];
page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
page.on('pageerror', (err) => consoleLines.push(`pageerror: ${err.message}`));
await page.goto(`${origin}/page/page.html?bundle=${bundle}`);
await page.waitForFunction(() => window.harness !== undefined, null, { timeout: 60000 });


let loaded = null;
let fileCounter = 0;

function serve(absPath) {
  const url = `/files/${++fileCounter}${extname(absPath)}`;
  served.set(url, absPath);
  return url;
}

async function info() {
  const pageInfo = await page.evaluate(() => window.harness.info());
  return { runtime: 'onnxruntime-web (chromium)', version: ortPkg.version, node: process.version,
    browser: `chromium ${context.browser() ? context.browser().version() : ''}`.trim(),
    chromiumPath, backend, bundle, loaded, ...pageInfo };
}

async function load(req) {
  if (req.backend && req.backend !== backend) throw new Error(`this runner drives ${backend}, not ${req.backend}`);
  const url = serve(req.model);
  consoleLines.length = 0;
  const result = await page.evaluate((a) => window.harness.load(a), {
    modelUrl: url, backend, threads: req.threads || 1, outputs: req.outputs || null,
    freeDimensionOverrides: req.freeDimensionOverrides || null,
  });
  loaded = { model: req.model, requestedBackend: backend, executionProviders: [backend], threads: req.threads || 1,
    outputs: result.outputs, loadMs: result.loadMs, placement: placementFromConsole() };
  return { info: await info() };
}

// onnxruntime's verbose "Node placements" log from the page's console (one line per provider when some
// nodes fell back).  WebGL runs on the onnxjs engine, which has no per-node fallback (an unsupported
// operator fails the load) and prints no such log.  The rules live in the package (placement.mjs).
function placementFromConsole() {
  return backend === 'webgl' ? staticPlacement('webgl') : placementOfLog(consoleLines);
}

async function run(req) {
  const url = serve(req.input);
  const result = await page.evaluate((a) => window.harness.run(a), { inputUrl: url, dims: req.dims });
  const outputs = result.outputs.map((o, i) => {
    const file = join(req.outDir, `${i}.f32`);
    writeFileSync(file, Buffer.from(o.b64, 'base64'));
    return { name: o.name, file, dims: o.dims };
  });
  return { outputs, ms: result.ms };
}

async function bench(req) {
  const url = serve(req.input);
  const result = await page.evaluate((a) => window.harness.bench(a), {
    inputUrl: url, dims: req.dims, warmup: req.warmup ?? 3, repeat: req.repeat ?? 20,
  });
  return { ms: result.ms };
}

// The shipped preprocessing, run inside the page (the browser's JS engine, not node's).
async function preprocess(req) {
  const result = await page.evaluate((a) => window.harness.preprocess(a), {
    inputUrl: serve(req.input), channels: req.channels, sampleRate: req.sampleRate, contract: req.contract,
  });
  const windows = result.windows.map((w, i) => {
    let file = null;
    if (w.b64) {
      file = join(req.outDir, `w${i}.f32`);
      writeFileSync(file, Buffer.from(w.b64, 'base64'));
    }
    return { start: w.start, silent: w.silent, file };
  });
  return { windows, ms: result.ms };
}

// The shipped post-processing, run inside the page (onnxruntime-web's wasm backend for the VAD).
async function postprocess(req) {
  const result = await page.evaluate((a) => window.harness.postprocess(a), {
    vadUrl: serve(req.vadModel), windowsUrl: serve(req.windows), dims: req.dims, logitsUrl: serve(req.logits),
    logitsDims: req.logitsDims, logmelUrl: serve(req.logmel), logmelDims: req.logmelDims, sampleRate: req.sampleRate,
    params: req.params,
  });
  const file = join(req.outDir, 'frames.f32');
  writeFileSync(file, Buffer.from(result.frames, 'base64'));
  return { ...result, frames: file };
}

// One case of the measured operator table: never a failed request (a failure is the measurement).
async function opcase(req) {
  const inputs = req.inputs.map((i) => ({ name: i.name, dtype: i.dtype, dims: i.dims, url: serve(i.file) }));
  consoleLines.length = 0;
  const result = await page.evaluate((a) => window.harness.opcase(a), {
    modelUrl: serve(req.model), backend, inputs, pin: req.pin || null,
  });
  const outputs = result.outputs.map((o, i) => {
    const file = join(req.outDir, `out${i}.bin`);
    writeFileSync(file, Buffer.from(o.b64, 'base64'));
    return { name: o.name, dtype: o.dtype, dims: o.dims, file };
  });
  return { ...result, outputs, placement: result.loaded ? placementFromConsole() : null };
}

// Whole streams through a stateful model, chunk by chunk inside the page (lib/stream.mjs), all in one page call;
// each stream's outputs and final state come back as float32 files, with the node placement of the session.
async function stream(req) {
  if (req.backend && req.backend !== backend) throw new Error(`this runner drives ${backend}, not ${req.backend}`);
  consoleLines.length = 0;
  const result = await page.evaluate((a) => window.harness.stream(a), {
    modelUrl: serve(req.model), backend, threads: req.threads || 1, protocol: req.protocol, inputUrl: serve(req.input),
    lengths: req.lengths,
  });
  const write = (tag, tensors) => Object.fromEntries(Object.entries(tensors).map(([name, t], j) => {
    const file = join(req.outDir, `${tag}-${j}.f32`);
    writeFileSync(file, Buffer.from(t.b64, 'base64'));
    return [name, { file, dims: t.dims }];
  }));
  const streams = result.streams.map((r, i) => ({ chunks: r.chunks, outputs: write(`s${i}-o`, r.outputs),
    finalState: write(`s${i}-f`, r.finalState) }));
  return { streams, ms: result.ms, executionProviders: [backend], threads: result.threads,
    placement: placementFromConsole() };
}

const handlers = { load, run, bench, preprocess, postprocess, opcase, stream, info: async () => ({ info: await info() }),
  console: async () => ({ lines: consoleLines.slice(-200) }) };

await serveRequests(handlers, (e) => {
  const msg = String(e && e.message ? e.message : e).split('\n')[0];
  const tail = consoleLines.filter((l) => l.startsWith('error') || l.startsWith('pageerror')).slice(-3);
  return msg + (tail.length ? ` [console: ${tail.join(' | ')}]` : '');
});
await context.close();
server.close();
process.exit(0);
