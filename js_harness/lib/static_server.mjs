// A small static file server for the browser runner and the demo page: 127.0.0.1 only,
// `.wasm` as application/wasm, COOP/COEP so onnxruntime-web may use threads, no caching,
// and no path may escape its root.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';

const TYPES = { '.html': 'text/html; charset=utf-8', '.mjs': 'text/javascript', '.js': 'text/javascript',
  '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.f32': 'application/octet-stream',
  '.json': 'application/json', '.css': 'text/css', '.map': 'application/json', '.png': 'image/png',
  '.wav': 'audio/wav', '.md': 'text/markdown; charset=utf-8' };

/**
 * Serve `roots` ({'/prefix/': '/abs/dir'}) and single `files` (a Map of url -> abs path,
 * which may grow while serving).  Resolves to {server, origin}.
 */
export async function startServer(roots, files = new Map(), port = 0) {
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400);
      res.end('bad request');
      return;
    }
    let file = files.get(path);
    for (const [prefix, root] of Object.entries(roots)) {
      if (file || !path.startsWith(prefix)) continue;
      const base = resolve(root);
      const candidate = resolve(base, path.slice(prefix.length) || 'index.html');
      if (candidate === base || candidate.startsWith(base + sep)) file = candidate;
    }
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] || 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cache-Control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}
