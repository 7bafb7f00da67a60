// The chunk loop of a stateful model lives in the ser-export-web package (packages/ser-export-web/src/stream.mjs);
// the harness, the parity runners and the tests import it from here.
export * from '../packages/ser-export-web/src/stream.mjs';
