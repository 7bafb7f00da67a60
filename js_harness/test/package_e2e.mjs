// Drive a page of a consumer project that imports the installed ser-export-web package, in headless
// Chromium; print what the page reports (window.result) as one JSON line.
//   node test/package_e2e.mjs --root APP --page /page.html?backend=wasm&model=/models/m.onnx&wav=/audio/a.wav
//        --models RELEASE_DIR --audio AUDIO_DIR [--mic FILE.wav] [--no-gpu] [--timeout-s 300]
// APP is served at / (its node_modules included) and RELEASE_DIR at /models/, AUDIO_DIR at /audio/, with
// COOP/COEP so the page is cross-origin isolated.  --mic feeds FILE.wav to Chromium's fake microphone.
import { chromium } from 'playwright-core';

import { launchOptions } from '../lib/chromium.mjs';
import { parseOrExit } from '../lib/cli.mjs';
import { startServer } from '../lib/static_server.mjs';

const { values: args } = parseOrExit({ options: {
  root: { type: 'string' }, page: { type: 'string' }, models: { type: 'string' }, audio: { type: 'string' },
  mic: { type: 'string' }, 'no-gpu': { type: 'boolean' }, 'timeout-s': { type: 'string' }, chromium: { type: 'string' },
} });
const { root, page: pagePath, mic } = args;
const timeout = Number(args['timeout-s'] ?? '300') * 1000;
const backend = new URL(pagePath, 'http://x').searchParams.get('backend') || 'wasm';

const { server, origin } = await startServer({ '/models/': args.models, '/audio/': args.audio, '/': root });
// --no-gpu: a browser without WebGL2 or a WebGPU adapter
const browser = await chromium.launch(launchOptions({ executablePath: args.chromium, backend, gpu: !args['no-gpu'], mic,
  autoplay: true }));
try {
  const page = await browser.newPage();
  const lines = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`));
  // Chromium reports a no-store fetch whose body stream was read to its end as failed with ERR_ABORTED
  // (microsoft/playwright#42742); such a request, answered 200, is listed apart, not as an error.  The
  // tests check that every byte arrived (the page's download progress against the file size).
  const abortedAfter200 = [];
  page.on('requestfailed', async (r) => {
    const status = (await r.response().catch(() => null))?.status();
    if (r.failure()?.errorText === 'net::ERR_ABORTED' && status === 200) abortedAfter200.push(new URL(r.url()).pathname);
    else lines.push(`requestfailed: ${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('response', (r) => r.status() >= 400 && lines.push(`http ${r.status()}: ${r.url()}`));
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  // the page's workers by name (onnxruntime-web's proxy: 'ort-wasm-proxy-worker'; wasm threads: 'em-pthread')
  const workers = [];
  page.on('worker', (w) => workers.push(w.evaluate(() => self.name).catch(() => null)));
  await page.goto(origin + pagePath);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout });
  const result = await page.evaluate(() => window.result);
  result.abortedAfter200 = abortedAfter200;
  result.workers = [...new Set(await Promise.all(workers))].sort();
  result.consoleErrors = lines.filter((l) => /^(error|pageerror|requestfailed|http \d+):/.test(l));
  result.ortFiles = [...new Set(requests.filter((p) => p.includes('/onnxruntime-web/dist/')).map((p) => p.split('/').pop()))];
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await browser.close();
  server.close();
}
