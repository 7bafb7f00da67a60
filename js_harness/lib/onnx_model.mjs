// Moved into the ser-export-web package (packages/ser-export-web/src/onnx_model.mjs); the harness, the
// parity runners and the tests import it from here.
export * from '../packages/ser-export-web/src/onnx_model.mjs';
