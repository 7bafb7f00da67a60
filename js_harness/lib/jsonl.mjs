// The harness protocol: one JSON request per line on stdin, one JSON response per line on
// stdout ({"id", "ok": true, ...} or {"id", "ok": false, "error"}), until {"cmd": "close"}.
import { createInterface } from 'node:readline';

export function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Answer requests with `handlers[cmd](req)`; `describeError(e)` turns a failure into text. */
export async function serveRequests(handlers, describeError = (e) => String(e && e.message ? e.message : e)) {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      send({ id: null, ok: false, error: `bad request: ${e.message}` });
      continue;
    }
    if (req.cmd === 'close') {
      send({ id: req.id, ok: true });
      return;
    }
    const handler = handlers[req.cmd];
    if (!handler) {
      send({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
      continue;
    }
    try {
      send({ id: req.id, ok: true, ...(await handler(req)) });
    } catch (e) {
      send({ id: req.id, ok: false, error: describeError(e) });
    }
  }
}
