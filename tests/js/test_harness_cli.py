"""The harness's command lines (node's util.parseArgs through js_harness/lib/cli.mjs: unknown options and
stray arguments are refused with one line and exit 2) and its one list of Chromium launch options
(js_harness/lib/chromium.mjs), without starting Chromium."""
import json
import subprocess
from pathlib import Path

import pytest

from ser_export.jsenv import HARNESS_DIR, _nodejs_bin, find_node
from tests.e2e import ROOT
from tests.js.test_js_modules import node_eval

pytestmark = pytest.mark.node


def _nodes() -> list[str]:
    """The node the harness finds, and the nodejs-bin wheel's (18.4, the oldest the harness supports) if installed."""
    nodes = [find_node().node]
    bundled = _nodejs_bin()
    if bundled and bundled[0] not in nodes:
        nodes.append(bundled[0])
    return nodes


def _run(node: str, script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([node, script, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=HARNESS_DIR)


def _refused(proc: subprocess.CompletedProcess, line: str) -> None:
    """A refused command line: exit 2 and one line on stderr starting with ``line``, no stack trace."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith(line), proc.stderr[-2000:]
    assert "TypeError" not in proc.stderr and "ERR_PARSE_ARGS" not in proc.stderr, proc.stderr[-2000:]


REQUESTS = '{"id": 1, "cmd": "info"}\n{"id": 2, "cmd": "close"}\n'


@pytest.mark.parametrize("node", _nodes())
def test_runner_takes_its_runtime_from_the_option_only(node):
    """``--runtime`` (default web) as parity.runners.node passes it; the old positional form is refused."""
    for args, runtime in (((), "onnxruntime-web"), (("--runtime", "node"), "onnxruntime-node"),
                          (("--runtime", "web"), "onnxruntime-web")):
        proc = _run(node, "runner.mjs", *args, stdin=REQUESTS)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout.splitlines()[0])["info"]["runtime"] == runtime
    _refused(_run(node, "runner.mjs", "node", stdin=REQUESTS), "error: Unexpected argument 'node'")
    proc = _run(node, "runner.mjs", "--runtime", "deno")
    assert proc.returncode == 2 and "unknown runtime deno" in proc.stderr


@pytest.mark.parametrize("node", _nodes())
def test_browser_runner_options_reach_it_before_chromium_starts(node):
    """The backend and the binary as parity.runners.node passes them (defaults: wasm, bundle all)."""
    proc = _run(node, "browser_runner.mjs", "--backend", "cuda")
    assert proc.returncode == 2 and "unknown backend cuda" in proc.stderr
    proc = _run(node, "browser_runner.mjs", "--chromium", "/nonexistent/chromium")  # wasm, all: valid
    assert proc.returncode == 3 and "chromium not found at /nonexistent/chromium" in proc.stderr
    proc = _run(node, "browser_runner.mjs", "--backend", "webgl", "--bundle", "wasm")
    assert proc.returncode != 0 and "the wasm-only bundle cannot run webgl" in proc.stderr


@pytest.mark.parametrize("node", _nodes())
def test_serve_prints_its_url_and_refuses_unknown_options(node, tmp_path):
    proc = subprocess.Popen([node, "serve.mjs", "--port", "0", "--models", str(ROOT / "saved_models")],
                            cwd=HARNESS_DIR, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/demo/"), url
    _refused(_run(node, "serve.mjs", "--model", str(tmp_path)), "error: Unknown option '--model'")


@pytest.mark.parametrize("script", ["runner.mjs", "browser_runner.mjs", "serve.mjs", "test/demo_e2e.mjs",
                                    "test/package_e2e.mjs"])
def test_every_command_line_refuses_what_it_does_not_know(script):
    """A misspelt option fails loudly (before any browser starts) instead of being ignored: one line, exit 2."""
    _refused(_run(find_node().node, script, "--backnd", "webgpu"), "error: Unknown option '--backnd'")
    _refused(_run(find_node().node, script, "stray"), "error: Unexpected argument 'stray'")
    _refused(_run(find_node().node, script, "--help"), "error: Unknown option '--help'")


def test_parse_or_exit_returns_the_values_and_throws_what_is_not_a_command_line():
    """A good command line gives parseArgs's values (strict, no positionals by default); a wrong config is a bug
    in the script and is thrown as it is, not turned into a usage error."""
    out = node_eval("""
import { parseOrExit } from './lib/cli.mjs';
const options = { port: { type: 'string' }, quiet: { type: 'boolean' } };
const good = parseOrExit({ options, args: ['--port', '8', '--quiet'] });
const positional = parseOrExit({ options, args: ['a'], allowPositionals: true });
let thrown = null;
try { parseOrExit({ options: { port: { type: 'int' } }, args: [] }); } catch (e) { thrown = e.code; }
console.log(JSON.stringify({ good: good.values, positionals: positional.positionals, thrown }));
""")
    assert out["good"] == {"port": "8", "quiet": True} and out["positionals"] == ["a"], out
    assert str(out["thrown"]).startswith("ERR_INVALID_ARG_"), out  # thrown, not exit 2 with one line


def _launch(**options) -> dict:
    return node_eval(f"""
import {{ launchOptions }} from './lib/chromium.mjs';
console.log(JSON.stringify(launchOptions({json.dumps(options)})));
""")


def test_chromium_flags_per_backend():
    base = _launch(backend="wasm", executablePath="/opt/c")
    assert base["headless"] is True and base["executablePath"] == "/opt/c"
    assert {"--headless", "--no-sandbox", "--disable-background-networking"} <= set(base["args"])
    assert not any("swiftshader" in a or "webgpu" in a for a in base["args"]), base
    webgl = set(_launch(backend="webgl")["args"])
    assert {"--use-angle=swiftshader", "--enable-unsafe-swiftshader"} <= webgl and "--enable-unsafe-webgpu" not in webgl
    webgpu = set(_launch(backend="webgpu")["args"])
    assert {"--enable-unsafe-webgpu", "--enable-unsafe-swiftshader", "--enable-features=Vulkan"} <= webgpu
    off = set(_launch(backend="webgpu", gpu=False)["args"])
    assert {"--disable-gpu", "--disable-3d-apis", "--disable-features=Vulkan,WebGPU"} <= off
    assert not off & (webgpu - set(base["args"])), off
    mic = _launch(mic="/a b/x.wav", autoplay=True)["args"]
    assert {"--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "--use-file-for-fake-audio-capture=/a b/x.wav", "--autoplay-policy=no-user-gesture-required"} <= set(mic)
    assert "--autoplay-policy=no-user-gesture-required" not in base["args"]
    out = node_eval("""
import { chromiumFlags } from './lib/chromium.mjs';
try { chromiumFlags({ backend: 'cuda' }); console.log('{"ok": true}'); }
catch (e) { console.log(JSON.stringify({ ok: false, error: e.message })); }
""")
    assert out == {"ok": False, "error": "unknown backend cuda (wasm, webgl or webgpu)"}


def test_chromium_binary_is_the_option_then_the_environment_then_usr_bin(monkeypatch):
    code = """
import { chromiumPath } from './lib/chromium.mjs';
console.log(JSON.stringify([chromiumPath('/given'), chromiumPath(undefined)]));
"""
    monkeypatch.setenv("SER_EXPORT_CHROMIUM", "/from/env")
    assert node_eval(code) == ["/given", "/from/env"]
    monkeypatch.delenv("SER_EXPORT_CHROMIUM")
    assert node_eval(code) == ["/given", "/usr/bin/chromium"]


def test_chromium_flags_have_one_home():
    """No script of the harness and no Python module writes a Chromium flag of its own: every flag
    chromium.mjs can give appears in chromium.mjs only."""
    flags = set()
    for options in ({"backend": b, "gpu": g} for b in ("wasm", "webgl", "webgpu") for g in (True, False)):
        flags |= set(_launch(**options, mic="X", autoplay=True)["args"])
    flags = {f.removesuffix("=X") for f in flags}  # the microphone file flag by its name
    sources = [p for p in HARNESS_DIR.rglob("*.mjs") if "node_modules" not in p.parts]
    sources += [p for d in ("parity", "ser_export") for p in (ROOT / d).rglob("*.py")]
    found = {}
    for path in sources:
        text = path.read_text()
        for flag in flags:
            if flag in text:
                found.setdefault(Path(path).relative_to(ROOT).as_posix(), set()).add(flag)
    assert found.keys() == {"js_harness/lib/chromium.mjs"}, found
