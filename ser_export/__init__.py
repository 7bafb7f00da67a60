"""ser_export: build, export and release-verify speech-emotion CNNs for onnxruntime-web."""
__version__ = "0.1.0"
