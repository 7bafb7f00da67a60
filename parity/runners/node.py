"""Runners in Node: onnxruntime-web (wasm backend) and onnxruntime-node, via ``js_harness/runner.mjs``.

One long-lived node process per runner: the model is loaded once and every call
sends a whole batch (as a float32 file) over a JSON-lines protocol.  Every
request has a deadline; a harness that hangs or dies raises :class:`RunnerError`
(the gate exits 2), it never hangs the caller.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ser_export.errors import ToolMissingError
from ser_export.jsenv import HARNESS_DIR, ensure_harness, find_node

from .base import Runner, RunnerError, StreamOutputs

DEFAULT_TIMEOUT_S = float(os.environ.get("SER_EXPORT_HARNESS_TIMEOUT", "300"))

#: onnxruntime-web tensor types the operator table feeds and reads (named as numpy names them), and
#: their little-endian numpy dtypes.
_ORT_TO_DTYPES = {"float32": "<f4", "int32": "<i4", "int64": "<i8", "uint8": "u1", "int8": "i1", "bool": "?"}


class NodeHarnessRunner(Runner):
    """A ``runner.mjs`` process for ``runtime`` ``"web"`` (onnxruntime-web) or ``"node"``."""

    def __init__(self, runtime: str, backend: str, threads: int = 1, timeout_s: float = DEFAULT_TIMEOUT_S,
                 harness: Path = HARNESS_DIR):
        self.runtime, self.backend, self.threads = runtime, backend, threads
        self.timeout_s = timeout_s
        self.harness = harness
        self.proc: subprocess.Popen | None = None
        self._info: dict = {}
        self._next_id = 0
        self._buf = b""
        self._tmp = tempfile.TemporaryDirectory(prefix="ser_export_node_")

    # -- process -------------------------------------------------------------
    def _command(self, node: str) -> list[str]:
        return [node, str(self.harness / "runner.mjs"), "--runtime", self.runtime]

    def _start(self) -> None:
        try:
            tool = find_node()
            ensure_harness(self.harness)  # the first use installs it (one progress line), or says what to run
        except ToolMissingError as exc:
            raise RunnerError(f"{self.name}: {exc}") from exc
        self.node = tool
        # its own process group: a kill reaches what it started too (Chromium, or a child that would keep
        # the pipes open and make reading its stderr wait for that child)
        self.proc = subprocess.Popen(self._command(tool.node), cwd=self.harness, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def _request(self, payload: dict, timeout_s: float | None = None) -> dict:
        if self.proc is None:
            self._start()
        self._next_id += 1
        payload = dict(payload, id=self._next_id)
        try:
            self.proc.stdin.write((json.dumps(payload) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kill()
                code = "no exit code (it closed its input; killed)"
            raise RunnerError(f"{self.name}: the harness exited with {code} ({self._stderr_tail()})") from None
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise RunnerError(f"{self.name}: the harness did not answer {payload['cmd']!r} within "
                                  f"{timeout_s or self.timeout_s:.0f} s (killed)")
            if not self._selector.select(timeout=min(remaining, 1.0)):
                if self.proc.poll() is not None:
                    raise RunnerError(f"{self.name}: the harness exited with {self.proc.returncode} "
                                      f"({self._stderr_tail()})")
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                self.proc.wait(timeout=5)
                raise RunnerError(f"{self.name}: the harness exited with {self.proc.returncode} "
                                  f"({self._stderr_tail()})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise RunnerError(f"{self.name}: the harness answered garbage: {line[:200]!r}") from None
        if reply.get("id") != payload["id"]:
            raise RunnerError(f"{self.name}: reply {reply.get('id')} to request {payload['id']}")
        if not reply.get("ok"):
            raise RunnerError(f"{self.name}: {reply.get('error', 'unknown error')}")
        return reply

    def _stderr_tail(self) -> str:
        if self.proc is None or self.proc.poll() is None:
            return "still running"
        self._kill_group()  # what it left running would hold stderr open: read() would wait for it
        err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
        return " | ".join(err[-3:]) or f"exit code {self.proc.returncode}"

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already

    def _kill(self) -> None:
        """The harness and everything it started (its process group)."""
        if self.proc is not None:
            self._kill_group()
            if self.proc.poll() is None:
                self.proc.wait(timeout=10)

    # -- Runner --------------------------------------------------------------
    def activate(self, model_path: Path, outputs: list[str],
                 free_dimension_overrides: dict | None = None) -> None:
        request = {"cmd": "load", "model": str(Path(model_path).resolve()), "backend": self.backend,
                   "threads": self.threads, "outputs": outputs}
        if free_dimension_overrides:
            request["freeDimensionOverrides"] = free_dimension_overrides
        reply = self._request(request)
        info = reply["info"]
        loaded = info.get("loaded") or {}
        if loaded.get("requestedBackend") != self.backend:
            raise RunnerError(f"{self.name}: asked for backend {self.backend}, "
                              f"the harness loaded {loaded.get('requestedBackend')}")
        if self.runtime == "web" and info.get("wasm", {}).get("numThreads") != self.threads:
            raise RunnerError(f"{self.name}: asked for {self.threads} threads, "
                              f"onnxruntime-web uses {info.get('wasm', {}).get('numThreads')}")
        self._check_placement(loaded.get("placement"))
        self._info = info
        self.outputs = outputs
        #: milliseconds ``InferenceSession.create`` took for this model (the harness's own clock)
        self.last_load_ms = float(loaded.get("loadMs", float("nan")))

    def infer(self, waveforms: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(waveforms, dtype="<f4")
        tmp = Path(self._tmp.name)
        inp = tmp / "input.f32"
        x.tofile(inp)
        out_dir = tmp / "out"
        out_dir.mkdir(exist_ok=True)
        reply = self._request({"cmd": "run", "input": str(inp), "dims": list(x.shape), "outDir": str(out_dir)})
        self.last_ms = float(reply.get("ms", float("nan")))
        result = {}
        for item in reply["outputs"]:
            data = np.fromfile(item["file"], dtype="<f4")
            result[item["name"]] = data.reshape(item["dims"]).astype(np.float32)
        return result

    def _check_placement(self, placement: dict | None) -> None:
        """Node runners have one provider: nothing to check."""

    capabilities = frozenset({"preprocess", "postprocess", "stream"})
    js_engine = "node"

    def run_stream(self, model_path: Path, protocol: dict, streams: list[np.ndarray]) -> StreamOutputs:
        """Every stream through a stateful model in ONE harness request (``js_harness/lib/stream.mjs``
        loops over the chunks, :func:`ser_export.streaming.stream_windows`'s rule).

        ``streams``: 1-D float32 arrays.  Returns per stream ``outputs[name]`` ``(n_chunks, *dims)``
        and ``final_state[state output]`` (float32); a protocol the model does not fit raises
        :class:`RunnerError` with the harness's message (naming the input or output).
        """
        flat = [np.ascontiguousarray(y, dtype="<f4") for y in streams]
        if not flat or any(y.ndim != 1 for y in flat):
            raise RunnerError(f"{self.name}: run_stream takes a non-empty list of 1-D streams, got shapes "
                              f"{[y.shape for y in flat][:3]}")
        tmp = Path(self._tmp.name) / "stream"
        shutil.rmtree(tmp, ignore_errors=True)  # the last call's files
        tmp.mkdir()
        inp = tmp / "streams.f32"
        np.concatenate(flat).tofile(inp)
        out_dir = tmp / "out"
        out_dir.mkdir()
        t0 = time.perf_counter()  # the request's wall time, process start included on a first call
        reply = self._request({"cmd": "stream", "model": str(Path(model_path).resolve()), "backend": self.backend,
                               "threads": self.threads, "protocol": protocol, "input": str(inp),
                               "lengths": [int(y.shape[0]) for y in flat], "outDir": str(out_dir)})
        seconds = time.perf_counter() - t0
        if len(reply.get("streams", [])) != len(flat):
            raise RunnerError(f"{self.name}: the harness answered {len(reply.get('streams', []))} streams "
                              f"for {len(flat)}")

        def read(item: dict) -> np.ndarray:
            return np.fromfile(item["file"], dtype="<f4").reshape(item["dims"]).astype(np.float32)

        outputs = [{name: read(item) for name, item in s["outputs"].items()} for s in reply["streams"]]
        final = [{name: read(item) for name, item in s["finalState"].items()} for s in reply["streams"]]
        self._check_placement(reply.get("placement"))
        self.last_ms = float(reply.get("ms", float("nan")))
        if not self._info:
            self._info = self.harness_info()
        # what ran is the stream's session: info() reports it as it reports a loaded model
        self._info = dict(self._info, loaded={"model": str(Path(model_path).resolve()), "requestedBackend": self.backend,
                                              "executionProviders": reply.get("executionProviders"),
                                              "threads": reply.get("threads"), "placement": reply.get("placement")})
        info = dict(self.info(), request_seconds=round(seconds, 3))
        # the harness's own clock around the chunk loops (not the process start, the session or the files), as
        # onnxruntime-python times its loop
        return StreamOutputs(self.name, outputs, final, info, round(self.last_ms / 1000, 3))

    def postprocess(self, windows: np.ndarray, logits: np.ndarray, logmel: np.ndarray, sample_rate: int,
                    params: dict, vad_model: Path) -> dict:
        """``js_harness/lib/postprocess.mjs`` on a batch (this runner's JS engine and onnxruntime).

        Returns ``frames`` ``(b, n_vad_frames)`` float32 and, per window, ``speechFraction``,
        ``speech``, ``probabilities`` (calibrated), ``oodScore``, ``uncertain`` and ``verdicts``.
        """
        tmp = Path(self._tmp.name)
        files = {}
        for key, value in (("windows", windows), ("logits", logits), ("logmel", logmel)):
            files[key] = tmp / f"post-{key}.f32"
            np.ascontiguousarray(value, dtype="<f4").tofile(files[key])
        out_dir = tmp / "post"
        out_dir.mkdir(exist_ok=True)
        reply = self._request({"cmd": "postprocess", "vadModel": str(Path(vad_model).resolve()),
                               "windows": str(files["windows"]), "dims": list(windows.shape),
                               "logits": str(files["logits"]), "logitsDims": list(logits.shape),
                               "logmel": str(files["logmel"]),
                               "logmelDims": [logmel.shape[0], *logmel.shape[-2:]], "sampleRate": int(sample_rate),
                               "params": params, "outDir": str(out_dir)})
        frames = np.fromfile(reply["frames"], dtype="<f4").reshape(windows.shape[0], int(reply["vadFrames"]))
        return {**{k: v for k, v in reply.items() if k not in ("frames", "id", "ok")}, "frames": frames}

    def preprocess(self, planar: np.ndarray, sample_rate: int, contract: dict) -> dict:
        """``js_harness/lib/preprocess.mjs`` on a planar ``(channels, n)`` recording, in this runner's JS engine."""
        planar = np.ascontiguousarray(np.atleast_2d(planar), dtype="<f4")
        tmp = Path(self._tmp.name)
        inp = tmp / "recording.f32"
        planar.tofile(inp)
        out_dir = tmp / "windows"
        out_dir.mkdir(exist_ok=True)
        reply = self._request({"cmd": "preprocess", "input": str(inp), "channels": int(planar.shape[0]),
                               "sampleRate": int(sample_rate), "contract": contract, "outDir": str(out_dir)})
        windows = [{"start": int(w["start"]), "silent": bool(w["silent"]),
                    "samples": None if w["silent"] else np.fromfile(w["file"], dtype="<f4")}
                   for w in reply["windows"]]
        return {"windows": windows, "ms": float(reply.get("ms", 0.0))}

    def harness_info(self) -> dict:
        """What the harness reports of itself (versions, browser, renderer), no model needed."""
        return self._request({"cmd": "info"})["info"]

    def run_case(self, model_path: Path, inputs: dict[str, np.ndarray], pin: dict[str, int] | None = None) -> dict:
        """One case of the measured operator table (``lib/opcase.mjs``): load and run, never raise for
        the model's sake.  ``pin``: symbolic dimensions the WebGL page pins in the model bytes first.

        Returns the harness's answer: ``loaded``, ``loadError``, ``ran``, ``runError``,
        ``placement`` and ``outputs`` as arrays by name.  A dead or hung harness still
        raises :class:`RunnerError`.
        """
        tmp = Path(self._tmp.name) / "case"
        if tmp.exists():
            for f in tmp.iterdir():
                f.unlink()
        tmp.mkdir(exist_ok=True)
        fed = []
        for i, (name, value) in enumerate(inputs.items()):
            value = np.asarray(value)
            path = tmp / f"in{i}.bin"
            np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tofile(path)
            if value.dtype.name not in _ORT_TO_DTYPES:
                raise RunnerError(f"{self.name}: input {name} has dtype {value.dtype}, which the harness cannot feed")
            fed.append({"name": name, "dtype": value.dtype.name, "dims": list(value.shape), "file": str(path)})
        request = {"cmd": "opcase", "model": str(Path(model_path).resolve()), "backend": self.backend,
                   "inputs": fed, "outDir": str(tmp)}
        if pin:
            request["pin"] = pin
        reply = self._request(request)
        outputs = {}
        for item in reply.get("outputs", []):
            dtype = _ORT_TO_DTYPES.get(item["dtype"])
            if dtype is None:
                raise RunnerError(f"{self.name}: output {item['name']} has type {item['dtype']}, which the "
                                  f"operator table does not read")
            outputs[item["name"]] = np.fromfile(item["file"], dtype=dtype).reshape(item["dims"])
        return dict(reply, outputs=outputs)

    def bench(self, waveforms: np.ndarray, warmup: int = 3, repeat: int = 20) -> list[float]:
        """Milliseconds of each of ``repeat`` runs of the same batch, timed inside node."""
        x = np.ascontiguousarray(waveforms, dtype="<f4")
        inp = Path(self._tmp.name) / "bench.f32"
        x.tofile(inp)
        reply = self._request({"cmd": "bench", "input": str(inp), "dims": list(x.shape), "warmup": warmup,
                               "repeat": repeat})
        return [float(v) for v in reply["ms"]]

    def info(self) -> dict:
        loaded = self._info.get("loaded") or {}
        out = {"runtime": self._info.get("runtime", f"onnxruntime-{self.runtime}"),
               "version": self._info.get("version"), "backend": loaded.get("requestedBackend", self.backend),
               "execution_providers": loaded.get("executionProviders"), "threads": loaded.get("threads"),
               "node": self._info.get("node"), "node_source": getattr(getattr(self, "node", None), "source", None),
               "wasm": self._info.get("wasm")}
        for key in ("browser", "userAgent", "webglRenderer", "webgpuAdapter", "crossOriginIsolated"):
            if key in self._info:
                out[key] = self._info[key]
        if loaded.get("placement"):
            out["placement"] = loaded["placement"]
        return out

    def deactivate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self._request({"cmd": "close"}, timeout_s=10)
            except RunnerError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        self.proc = None
        self._buf = b""
        self._tmp.cleanup()
        self._tmp = tempfile.TemporaryDirectory(prefix="ser_export_node_")


class OrtWebWasmRunner(NodeHarnessRunner):
    name = "onnxruntime-web-wasm"

    def __init__(self, threads: int = 1, **kw):
        super().__init__("web", "wasm", threads, **kw)


class OrtNodeRunner(NodeHarnessRunner):
    name = "onnxruntime-node"

    def __init__(self, threads: int = 1, **kw):
        super().__init__("node", "cpu", threads, **kw)


def find_chromium() -> str:
    """``$SER_EXPORT_CHROMIUM`` or a Chromium/Chrome on PATH; :class:`RunnerError` with the fix if none."""
    import shutil

    env = os.environ.get("SER_EXPORT_CHROMIUM")
    candidates = [env] if env else []
    candidates += [shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    for path in candidates:
        if path and Path(path).exists():
            return path
    raise RunnerError("chromium not found: install it with `apt-get install -y chromium` (Debian/Ubuntu) "
                      "or set SER_EXPORT_CHROMIUM=/path/to/chromium")


#: The onnxruntime-web builds a page can load: every backend (what the gate's runners use), or wasm only.
BUNDLES = {"all": "ort.all.min.mjs", "wasm": "ort.wasm.min.mjs"}

#: The onnxruntime provider that must run every node, per browser backend.
EXPECTED_PROVIDER = {"wasm": "CPUExecutionProvider", "webgpu": "JsExecutionProvider", "webgl": "webgl"}


class BrowserRunner(NodeHarnessRunner):
    """onnxruntime-web in headless Chromium (``js_harness/browser_runner.mjs``), one page per runner."""

    def __init__(self, backend: str, threads: int = 1, bundle: str = "all", **kw):
        super().__init__("web", backend, threads, **kw)
        if bundle not in BUNDLES or (bundle == "wasm" and backend != "wasm"):
            raise ValueError(f"onnxruntime-web bundle {bundle!r} cannot run {backend}")
        self.bundle = bundle
        self.name = f"chromium-{backend}" + ("" if bundle == "all" else f"/ort.{bundle}")
        self.js_engine = "chromium"

    def _command(self, node: str) -> list[str]:
        return [node, str(self.harness / "browser_runner.mjs"), "--backend", self.backend, "--bundle", self.bundle,
                "--chromium", find_chromium()]

    def _check_placement(self, placement: dict | None) -> None:
        """Every node on the requested backend's provider: a silent fallback is a failure."""
        expected = EXPECTED_PROVIDER[self.backend]
        providers = (placement or {}).get("providers") or {}
        others = {p: n for p, n in providers.items() if p != expected}
        if not providers or expected not in providers:
            raise RunnerError(f"{self.name}: cannot prove the nodes ran on {expected} (placement: {placement})")
        if others:
            raise RunnerError(f"{self.name}: nodes fell back from {expected} to {others}")


class ChromiumWasmRunner(BrowserRunner):
    name = "chromium-wasm"

    def __init__(self, threads: int = 1, bundle: str = "all", **kw):
        super().__init__("wasm", threads, bundle=bundle, **kw)


class ChromiumWebglRunner(BrowserRunner):
    name = "chromium-webgl"

    def __init__(self, threads: int = 1, **kw):
        super().__init__("webgl", threads, **kw)


class ChromiumWebgpuRunner(BrowserRunner):
    name = "chromium-webgpu"

    def __init__(self, threads: int = 1, **kw):
        super().__init__("webgpu", threads, **kw)
