"""The table of every ONNX file of the silero-vad wheel x every runtime (python -m ser_export stream-table), the
docs page's blocks, and one row measured again."""
import importlib.metadata
import json
from pathlib import Path

import pytest

from parity.runners.onnxruntime_python import OnnxruntimePythonRunner
from parity.stream_table import CHECK, PATH, RUNTIMES, measure, render_markdown, wheel_data
from ser_export import docs_blocks, tolerances
from tests.e2e import ROOT

TABLE = json.loads(PATH.read_text())


def test_the_table_covers_every_onnx_file_of_the_installed_wheel_on_every_runtime():
    assert TABLE["silero_vad"] == importlib.metadata.version("silero-vad"), "re-run python -m ser_export stream-table"
    assert [r["file"] for r in TABLE["rows"]] == sorted(p.name for p in wheel_data().glob("*.onnx"))
    assert TABLE["runtimes"] == list(RUNTIMES)
    assert TABLE["seconds"] == list(CHECK.seconds) and TABLE["streams"] == CHECK.streams
    for row in TABLE["rows"]:
        assert set(row["runtimes"]) == set(TABLE["runtimes"]) and all(row["runtimes"].values()), row
        verdicts = {f["passed"] for f in row["runtimes"].values()}
        assert verdicts == ({False} if row["file"] == "silero_vad_half.onnx" else {True}), row
    half = next(r for r in TABLE["rows"] if r["file"] == "silero_vad_half.onnx")
    assert half["vs_parent"]["parent"] == "silero_vad.onnx" and not half["vs_parent"]["passed"]
    assert half["vs_parent"]["runner"] == "onnxruntime-python"


def test_the_table_was_measured_on_the_installed_runtimes():
    """A runtime upgraded since the table was measured: re-run python -m ser_export stream-table."""
    import onnxruntime
    import torch

    from ser_export.jsenv import HARNESS_DIR

    def package(name):
        return json.loads((HARNESS_DIR / "node_modules" / name / "package.json").read_text())["version"]

    installed = {"pytorch": torch.__version__, "onnxruntime-python": onnxruntime.__version__,
                 "onnxruntime-web-wasm": package("onnxruntime-web"), "onnxruntime-node": package("onnxruntime-node"),
                 "chromium-wasm": package("onnxruntime-web")}
    recorded = {k: v for k, v in TABLE["versions"].items() if k in installed}
    assert recorded == installed, "re-run python -m ser_export stream-table"


def test_the_docs_show_the_table_and_the_contract_the_tests_use():
    assert docs_blocks.read_block("silero_table", ROOT) == render_markdown(TABLE).rstrip("\n")
    block = docs_blocks.read_block("stream_contract", ROOT)
    assert block.removeprefix("```toml\n").removesuffix("\n```") == \
        (ROOT / "parity" / "contracts" / "silero_vad.toml").read_text().rstrip("\n")


def test_a_row_measured_again_gives_the_committed_figures():
    name = "silero_vad_op18_ifless.onnx"
    again = measure({"onnxruntime-python": OnnxruntimePythonRunner()}, tolerances.load(), CHECK, files=[name])
    got = again["rows"][0]["runtimes"]["onnxruntime-python"]
    want = next(r for r in TABLE["rows"] if r["file"] == name)["runtimes"]["onnxruntime-python"]
    for key in ("max_abs", "drift_first", "drift_last"):
        assert got[key] == pytest.approx(want[key], rel=0.05, abs=1e-7), key
    assert got["decision_agreement"] == want["decision_agreement"] and got["passed"] == want["passed"]


def test_the_rendered_block_says_what_the_table_records():
    """The streams' seconds and the parent's runner come from the table, not typed into the renderer."""
    rows = [dict(r, vs_parent=dict(r["vs_parent"], runner="onnxruntime-node")) if r.get("vs_parent") else r
            for r in TABLE["rows"]]
    text = render_markdown(dict(TABLE, seconds=[2.0, 3.5], rows=rows))
    assert text.startswith(f"silero-vad {TABLE['silero_vad']}, 10 streams of 2-3.5 s and one of 60 s")
    assert "(class fp16_stream, onnxruntime-node)" in text


def test_the_fresh_install_commands_find_the_shipped_contract():
    """docs/streaming.md's commands name the contract through the installed package (parity's package data),
    not a file a fresh install does not have."""
    import re
    import subprocess
    import sys

    text = (ROOT / "docs" / "streaming.md").read_text()
    block = text[text.index("## The commands, from a fresh install"):text.index("## What is judged")]
    code, rest = re.search(r'^C=\$\(python -c "([^"]+)"\)(\S*)', block, re.M).groups()
    folder = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd="/").stdout.strip() + rest
    for contract in set(re.findall(r"--contract \$C/(\S+)", block)) | {"silero_vad.toml"}:
        assert (Path(folder) / contract).is_file(), contract
    assert all(line.split("--contract ")[1].startswith("$C/") for line in block.splitlines() if "--contract" in line
               and "verify $D" in line)


def test_the_float_files_sit_two_orders_below_the_stream_bound():
    """What tolerances.json's description says of the table (its figures are the table's, not copied there)."""
    bound = tolerances.load()["defaults"]["stream"]["scores_max_abs"]
    worst = max(f["max_abs"] for r in TABLE["rows"] if r["file"] != "silero_vad_half.onnx"
                for f in r["runtimes"].values())
    assert 0 < worst <= bound / 100, worst
    assert "two orders of magnitude below 1e-3" in tolerances.load()["description"] and bound == 1e-3
