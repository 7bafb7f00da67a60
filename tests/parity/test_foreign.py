"""The gate on audio models built anywhere: plain torch + torch.onnx.export, a declared contract."""
import json

import pytest

from ser_export.model_contract import ContractError, ModelContract, json_schema
from tests.e2e import ROOT, run_cli
from tests.parity import foreign_models

pytestmark = pytest.mark.node

RUNTIMES = "onnxruntime-python,onnxruntime-web-wasm,onnxruntime-node"
FAST = ["--examples", "12", "--no-shrink"]
FACTORY = {"kws": "tests.parity.foreign_models:kws_factory", "mel": "tests.parity.foreign_models:mel_factory"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    paths = foreign_models.build(folder)
    foreign_models.set_pad_mode(paths["kws"], folder / "kws_constant.onnx")
    foreign_models.change_one_weight(paths["mel"], folder / "mel_changed.onnx")
    return folder


def _verify(folder, model, name, *extra, torch=True):
    report = folder / f"{model}.report.json"
    args = ["verify", str(folder / f"{model}.onnx"), "--contract", str(folder / f"{name}.toml"),
            "--runtimes", (("pytorch," if torch else "") + RUNTIMES), "--report", str(report), *FAST, *extra]
    if torch:
        args += ["--torch", FACTORY[name], "--torch-weights", str(folder / f"{name}.pt")]
    proc = run_cli(*args, cwd=ROOT)
    return proc, (json.loads(report.read_text()) if report.exists() else None)


@pytest.mark.parametrize("name", ["kws", "mel"])
@pytest.mark.parametrize("torch", [True, False])
def test_foreign_models_pass_on_every_runtime(models, name, torch):
    proc, data = _verify(models, name, name, torch=torch)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = data["models"][0]["results"]
    ran = {r["runner"] for r in results if r["applicable"]}
    assert set(RUNTIMES.split(",")) | ({"pytorch"} if torch else set()) <= ran
    baseline = "pytorch" if torch else "onnxruntime-python"
    assert {r["against"] for r in results if r["stage"] == "logits"} == {baseline}
    na = {r["stage"] for r in results if not r["applicable"]}
    assert "golden_logits" in na and "js_preprocessing" in na
    if name == "kws":  # the in-graph front-end is judged against librosa with the declared parameters
        mel = [r for r in results if r["stage"] == "logmel_vs_librosa[all_bins]"]
        assert len(mel) == len(ran) and all(r["passed"] for r in mel)
    else:
        assert "logmel_vs_librosa" in na and "labels" in na


def test_kws_with_another_pad_mode_fails_naming_the_stage_and_the_pad_node(models):
    proc, data = _verify(models, "kws_constant", "kws")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {r["stage"] for r in data["models"][0]["results"] if not r["passed"]}
    assert "logmel_vs_librosa[all_bins]" in failed and "logmel_vs_pytorch[all_bins]" in failed
    nodes = [loc for loc in data["models"][0]["localization"] if loc.get("node")]
    assert nodes and nodes[0]["op_type"] == "Pad", data["models"][0]["localization"]
    assert "logmel_vs_librosa" in proc.stderr and "/Pad (Pad)" in proc.stdout and proc.stderr.count("\n") == 1


def test_mel_classifier_with_one_weight_changed_fails_naming_the_conv(models):
    proc, data = _verify(models, "mel_changed", "mel")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {r["stage"] for r in data["models"][0]["results"] if not r["passed"]}
    assert "logits" in failed
    nodes = [loc for loc in data["models"][0]["localization"] if loc.get("node")]
    assert nodes and nodes[0]["node"] == "/conv2/Conv", data["models"][0]["localization"]


@pytest.mark.parametrize("edit, field", [
    (lambda t: t.replace("hop_length = 160", "hop_lenght = 160"), "outputs.frontend.hop_lenght is not a field"),
    (lambda t: t.replace('pad_mode = "reflect"', 'pad_mode = "mirror"'), "pad_mode must be one of"),
    (lambda t: t.replace("sample_rate = 16000", 'sample_rate = "16k"'), "input.sample_rate must be an integer"),
    (lambda t: t.replace('logits = "logits"', ""), "outputs.logits is missing"),
    (lambda t: t.replace('logits = "logits"', 'logits = "scores"'), "has no tensor 'scores'"),
    (lambda t: t + "\n[[", "not valid TOML"),
])
def test_a_wrong_contract_exits_2_naming_the_field(models, tmp_path, edit, field):
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(foreign_models.KWS_CONTRACT))
    if "has no tensor" not in field:
        with pytest.raises(ContractError, match=field.replace(".", r"\.")):
            ModelContract.read(bad)
    proc = run_cli("verify", str(models / "kws.onnx"), "--contract", str(bad), "--runtimes", "onnxruntime-python",
                   *FAST)
    assert proc.returncode == 2 and field in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert str(bad) in proc.stderr or str(models / "kws.onnx") in proc.stderr


def test_a_backend_that_cannot_run_the_model_is_reported_and_fails_only_as_a_target(models, tmp_path):
    """torch's export of reflect padding needs ConstantOfShape and int64 Slice, which WebGL cannot load
    (the measured table says so): reported with the lint's reason, not run; a failure only when targeted."""
    from ser_export.export.lint import lint_model
    import onnx

    assert not lint_model(onnx.load(str(models / "kws.onnx")), ["webgl"]).compatible("webgl")
    proc = run_cli("verify", str(models / "kws.onnx"), "--contract", str(models / "kws.toml"), "--runtimes",
                   "onnxruntime-python,chromium-webgl", "--report", str(tmp_path / "r.json"), *FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [r for r in json.loads((tmp_path / "r.json").read_text())["models"][0]["results"]
            if r["stage"] == "operator_lint"]
    assert len(rows) == 1 and not rows[0]["applicable"] and "ConstantOfShape" in rows[0]["detail"]
    targeted = tmp_path / "webgl.toml"
    targeted.write_text(foreign_models.KWS_CONTRACT.replace('targets = ["wasm"]', 'targets = ["wasm", "webgl"]'))
    proc = run_cli("verify", str(models / "kws.onnx"), "--contract", str(targeted), "--runtimes",
                   "onnxruntime-python,chromium-webgl", *FAST)
    assert proc.returncode == 1 and "operator_lint" in proc.stderr, proc.stdout + proc.stderr


def test_schema_and_check_commands(models):
    proc = run_cli("contract", "--schema")
    assert proc.returncode == 0 and json.loads(proc.stdout) == json.loads(json.dumps(json_schema()))
    schema = json_schema()
    assert schema["required"] == ["input", "outputs"] and "frontend" in schema["properties"]["outputs"]["properties"]
    proc = run_cli("contract", "--check", str(models / "kws.toml"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["outputs"]["frontend"]["htk"] is True


def test_python_api_returns_the_report(models):
    import ser_export

    report = ser_export.verify(models / "mel.onnx", models / "mel.toml", runtimes=["onnxruntime-python"],
                               examples=4, shrink=False)
    assert report.exit_code == 0 and report.models[0].results


def test_readme_shows_the_contract_the_tests_use():
    """The docs' contract is the file the tests verify, byte for byte (so the docs stay true)."""
    from ser_export import docs_blocks

    block = docs_blocks.read_block("contract", ROOT)
    toml = block.strip().removeprefix("```toml").removesuffix("```").strip()
    assert toml == foreign_models.KWS_CONTRACT.strip()
    ModelContract.from_mapping(__import__("tomllib").loads(toml), docs_blocks.page("contract"))


def test_a_saved_foreign_run_is_rejudged_under_its_contract_tolerances(models, tmp_path):
    """The contract's own tolerances travel with --save-outputs: re-judging gives the live figures;
    --tolerances is laid over them."""
    proc, live = _verify(models, "kws", "kws", "--save-outputs", str(tmp_path / "saved"), torch=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    index = json.loads((tmp_path / "saved" / "index.json").read_text())
    assert index["tolerances"]["defaults"]["logmel_db"]["floor_margin_db"] == 5.0
    report = tmp_path / "again.json"
    proc = run_cli("verify", "--rejudge", str(tmp_path / "saved"), "--report", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = json.loads(report.read_text())["models"][0]["results"]
    figures = lambda rs: {(r["stage"], r["runner"]): (r["max_abs"], r["tolerance"]) for r in rs if r["applicable"]}  # noqa: E731
    assert figures(again) == figures(live["models"][0]["results"])
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"defaults": {"logmel_db": {"all_bins": 1e-9}}}))
    proc = run_cli("verify", "--rejudge", str(tmp_path / "saved"), "--tolerances", str(tight))
    assert proc.returncode == 1 and "logmel_vs_librosa[all_bins]" in proc.stderr, proc.stdout + proc.stderr
