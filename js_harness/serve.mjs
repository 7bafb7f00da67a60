// Serve the demo page: node serve.mjs [--port 8080] [--models ../saved_models]
// Then open the printed URL.  Models come from the release directory's manifest.json.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOrExit } from './lib/cli.mjs';
import { startServer } from './lib/static_server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseOrExit({ options: { port: { type: 'string' }, models: { type: 'string' } } });
const models = resolve(args.models ?? join(here, '..', 'saved_models'));
const { origin } = await startServer({
  '/ort/': join(here, 'node_modules', 'onnxruntime-web', 'dist'),
  '/lib/': join(here, 'lib'),
  '/packages/': join(here, 'packages'),
  '/demo/': join(here, 'demo'),
  '/models/': models,
}, new Map(), Number(args.port ?? '0'));
console.log(`${origin}/demo/`);
