// Drive the demo page in headless Chromium: load a WAV through the file input, wait for
// the result, print what the page shows (JSON) and save a screenshot.
//   node test/demo_e2e.mjs --url http://127.0.0.1:PORT/demo/?backend=wasm --file a.wav --screenshot out.png
//   node test/demo_e2e.mjs --url ... --expect-error    (prints what the page says when the model cannot load)
//   node test/demo_e2e.mjs --url ... --mic a.wav --record-seconds 4   (records from Chromium's fake microphone
//        playing a.wav: the live timeline while recording, then the result of the whole recording)
import { chromium } from 'playwright-core';

import { launchOptions } from '../lib/chromium.mjs';
import { parseOrExit } from '../lib/cli.mjs';

const { values: args } = parseOrExit({ options: {
  url: { type: 'string' }, file: { type: 'string' }, screenshot: { type: 'string' }, chromium: { type: 'string' },
  mic: { type: 'string' }, 'record-seconds': { type: 'string' }, 'expect-error': { type: 'boolean' },
} });
const { url, file, mic } = args;
const recordSeconds = Number(args['record-seconds'] ?? '4');
const backend = new URL(url).searchParams.get('backend') || 'wasm';

const browser = await chromium.launch(launchOptions({ executablePath: args.chromium, backend, mic }));
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 } });
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.demoReady === true, null, { timeout: 120000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  if (args['expect-error']) {
    const shown = await page.evaluate(() => document.getElementById('error').textContent);
    const consoleErrors = console_.filter((line) => line.startsWith('error:') || line.startsWith('pageerror:'));
    process.stdout.write(JSON.stringify({ state, error: shown, consoleErrors }) + '\n');
    process.exit(0);
  }
  if (state === 'error') throw new Error(await page.evaluate(() => document.getElementById('error').textContent));
  let live = null;
  if (mic) {
    await page.click('#record');
    await page.waitForTimeout(recordSeconds * 1000);
    live = await page.evaluate(() => ({ results: window.demoLive,
      shown: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent),
      caption: document.getElementById('live-caption').textContent }));
    await page.click('#record');
  } else {
    await page.setInputFiles('#file', file);
  }
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 300000 });
  const result = await page.evaluate(() => window.demoResult);
  result.live = live;
  result.windowRows = await page.evaluate(() => [...document.querySelectorAll('#windows tbody tr')].map((tr) => ({
    verdict: tr.dataset.verdict, cells: [...tr.children].map((td) => td.textContent) })));
  result.shown = await page.evaluate(() => ({
    top: document.getElementById('top').textContent,
    status: document.getElementById('status').textContent,
    contract: document.getElementById('contract').textContent,
    error: document.getElementById('error').textContent,
    bars: [...document.querySelectorAll('.bar-row')].map((r) => ({ label: r.dataset.label, prob: Number(r.dataset.prob) })),
    spectrogram: (() => {
      const c = document.getElementById('spectrogram');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
      return { width: c.width, height: c.height, litPixels: lit };
    })(),
  }));
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  result.console = console_.slice(-10);
  // Any console error or uncaught exception fails the test (a 404, a failed fetch, a script error).
  result.consoleErrors = console_.filter((line) => line.startsWith('error:') || line.startsWith('pageerror:'));
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await browser.close();
}
