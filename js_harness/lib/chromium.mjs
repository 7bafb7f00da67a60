// How the harness starts headless Chromium (browser_runner.mjs, test/demo_e2e.mjs, test/package_e2e.mjs):
// the one list of command-line flags, per backend, and where the binary is.
//
//   import { chromium } from 'playwright-core';
//   import { launchOptions } from './lib/chromium.mjs';
//   const browser = await chromium.launch(launchOptions({ backend: 'webgpu', mic: '/abs/a.wav' }));
//
// WebGL and WebGPU run on SwiftShader (Chromium's CPU implementation of Vulkan), so a machine
// without a GPU runs every backend; `gpu: false` gives a browser with neither WebGL2 nor a
// WebGPU adapter.  Python finds the binary itself (parity.runners.node.find_chromium) and passes
// it as --chromium; it builds no flags.

/** The binary: `given` (a --chromium option), else $SER_EXPORT_CHROMIUM, else /usr/bin/chromium. */
export function chromiumPath(given) {
  return given || process.env.SER_EXPORT_CHROMIUM || '/usr/bin/chromium';
}

const BASE = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps'];

const BACKEND = {
  wasm: [],
  webgl: ['--enable-unsafe-swiftshader', '--use-angle=swiftshader'],
  webgpu: ['--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--enable-features=Vulkan'],
};

const NO_GPU = ['--disable-gpu', '--disable-3d-apis', '--disable-features=Vulkan,WebGPU'];

/**
 * Chromium's command-line flags.
 *
 * @param backend 'wasm', 'webgl' or 'webgpu': the onnxruntime-web backend the page will use
 * @param gpu false: no WebGL2 and no WebGPU adapter (the backend's flags are left out)
 * @param mic a WAV file Chromium's fake microphone plays (getUserMedia granted without a prompt), or null
 * @param autoplay true: audio may start without a user gesture (an AudioContext in a test page)
 * @returns an Array of strings
 */
export function chromiumFlags({ backend = 'wasm', gpu = true, mic = null, autoplay = false } = {}) {
  if (!Object.hasOwn(BACKEND, backend)) throw new Error(`unknown backend ${backend} (wasm, webgl or webgpu)`);
  const flags = [...BASE];
  if (autoplay) flags.push('--autoplay-policy=no-user-gesture-required');
  flags.push(...(gpu ? BACKEND[backend] : NO_GPU));
  if (mic) {
    flags.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${mic}`);
  }
  return flags;
}

/**
 * The options of playwright-core's `chromium.launch` (and `launchPersistentContext`): headless,
 * the binary (`executablePath` as for chromiumPath) and chromiumFlags(`flags`).
 */
export function launchOptions({ executablePath, ...flags } = {}) {
  return { executablePath: chromiumPath(executablePath), headless: true, args: chromiumFlags(flags) };
}
