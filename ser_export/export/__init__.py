"""ONNX export, operator lint, metadata and release writing."""
