// Serve the demo page: node serve.mjs [--port 8080] [--models ../saved_models]
// Then open the printed URL.  Models come from the release directory's manifest.json.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer } from './lib/static_server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const models = resolve(opt('--models', join(here, '..', 'saved_models')));
const { origin } = await startServer({
  '/ort/': join(here, 'node_modules', 'onnxruntime-web', 'dist'),
  '/lib/': join(here, 'lib'),
  '/packages/': join(here, 'packages'),
  '/demo/': join(here, 'demo'),
  '/models/': models,
}, new Map(), Number(opt('--port', '0')));
console.log(`${origin}/demo/`);
