"""Throughput of whole streams on the JS runners: ``python -m tests.parity.measure_stream [--streams 100]``.

Silero VAD (the silero-vad wheel's ``silero_vad.onnx``, 512-sample chunks with 64 of context, the state
carried) on ``--streams`` streams of ``--seconds`` s at 16 kHz (synthetic speech, silence and noise), all in
one ``run_stream`` call per runtime (one harness request), one thread.  Prints streams per second, chunks per
second (the harness's own clock around its chunk loops, as ``StreamOutputs.seconds``) and the request's wall
time; onnxruntime-python in a plain loop (this script's) for scale.
Figures only: nothing is asserted.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from parity.runners.node import OrtNodeRunner, OrtWebWasmRunner
from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.ortsession import cpu_session
from ser_export.streaming import n_chunks, stream_windows
from ser_export.vad import packaged_vad_path
from tests.parity.test_stream_js import PROTOCOL


def make_streams(count: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """``count`` streams of ``seconds`` s: utterances of two synthetic speakers between silence and noise."""
    rng = np.random.default_rng(seed)
    speakers = make_speakers(2, 5)
    n = int(round(seconds * 16000))
    out = []
    for i in range(count):
        speech = synthesize(speakers[i % 2], ("angry", "sad")[i % 2], clip_rng(5, i % 2, i % 2 + 2, i), sr=16000)
        y = 0.01 * rng.standard_normal(n)
        at = int(rng.integers(0, max(1, n - speech.size)))
        y[at:at + speech.size] += 0.3 * speech[:n - at] / np.abs(speech).max()
        out.append(y.astype(np.float32))
    return out


def python_loop(streams: list[np.ndarray]) -> float:
    """Seconds onnxruntime-python takes for every stream, chunk by chunk, in a plain loop."""
    session = cpu_session(str(packaged_vad_path()), threads=1)
    sr = np.array(16000, np.int64)
    t0 = time.perf_counter()
    for y in streams:
        state = np.zeros((2, 1, 128), np.float32)
        for window in stream_windows(y, 512, 64):
            _, state = session.run(None, {"input": window[None], "state": state, "sr": sr})
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    streams = make_streams(args.streams, args.seconds)
    chunks = sum(n_chunks(y.size, 512) for y in streams)
    print(f"{args.streams} streams of {args.seconds:g} s ({chunks} chunks of 512 samples), silero_vad.onnx, 1 thread")
    for cls in (OrtWebWasmRunner, OrtNodeRunner):
        with cls() as runner:
            runner.run_stream(packaged_vad_path(), PROTOCOL, streams[:1])  # start the harness, warm the wasm
            result = runner.run_stream(packaged_vad_path(), PROTOCOL, streams)
        print(f"  {cls.name:22s} {args.streams / result.seconds:7.1f} streams/s  {chunks / result.seconds:8.0f} "
              f"chunks/s  ({result.seconds:.2f} s in the harness's chunk loops, "
              f"{result.info['request_seconds']:.2f} s for the request)")
    seconds = python_loop(streams)
    print(f"  {'onnxruntime-python':22s} {args.streams / seconds:7.1f} streams/s  {chunks / seconds:8.0f} chunks/s  "
          f"(plain loop in this script)")


if __name__ == "__main__":
    main()
