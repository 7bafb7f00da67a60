"""Figures in the README that a test can tie to the committed release or the code."""
import json
import re

from ser_export.contract import FrontendParams
from tests.e2e import ROOT

README = (ROOT / "README.md").read_text()
MANIFEST = json.loads((ROOT / "saved_models" / "manifest.json").read_text())
NAMES = {"alexnet": "AlexNet", "resnet18": "ResNet18"}


def test_held_out_accuracies_are_the_committed_release_s():
    line = re.search(r"Held-out-speaker accuracy: AlexNet ([\d.]+) %, ResNet18 ([\d.]+) %", README)
    assert line, "the README states the held-out accuracies"
    for arch, quoted in zip(("alexnet", "resnet18"), line.groups()):
        assert float(quoted) == round(100 * MANIFEST["models"][arch]["held_out"]["test"]["accuracy"], 1)


def test_mel_groups_as_in_the_code():
    groups = re.search(r"projects onto the mel bands in (\d+) band-limited", README)
    assert groups and int(groups.group(1)) == FrontendParams().mel_groups


def test_committed_file_sizes_in_the_bench_table():
    for arch, name in NAMES.items():
        row = re.search(rf"\| {name}, `fft` \|[^\n]*\| ([\d.]+) MB \|", README)
        assert row, f"the bench table has a row for {name} with the fft front-end"
        assert float(row.group(1)) == round(MANIFEST["models"][arch]["bytes"] / 1e6, 1)


def test_the_unseen_inputs_block_is_the_committed_release_s():
    """The README's figures on voice activity, calibration and "uncertain" are the committed manifest's,
    rendered as `python -m ser_export card saved_models --section unseen` prints them."""
    from ser_export.export.model_card import unseen_inputs_section

    block = re.search(r"<!-- unseen:begin -->\n(.*?)\n<!-- unseen:end -->", README, re.S)
    assert block, "the README has the unseen-inputs block"
    expected = "\n".join(unseen_inputs_section(MANIFEST, level="###", images="saved_models/")).rstrip("\n")
    assert expected and block.group(1) == expected


def test_the_shipped_silero_file_is_the_one_the_manifest_names():
    from ser_export.io import sha256_file

    vad = MANIFEST["vad"]
    assert sha256_file(ROOT / "saved_models" / vad["file"]) == vad["sha256"] and vad["license"].startswith("MIT")
    for m in MANIFEST["models"].values():
        assert m["postprocessing"]["vad"]["sha256"] == vad["sha256"]


def test_the_variants_block_is_the_committed_release_s():
    """The README's variants table is the committed manifest's, as `python -m ser_export card saved_models
    --section variants` prints it; every model has its fp16 and int8 variant."""
    from ser_export.export.model_card import variants_section

    block = re.search(r"<!-- variants:begin -->\n(.*?)\n<!-- variants:end -->", README, re.S)
    assert block, "the README has the variants block"
    expected = "\n".join(variants_section(MANIFEST, level="###")).rstrip("\n")
    assert expected and block.group(1) == expected
    for m in MANIFEST["models"].values():
        assert set(m["variants"]) == {"fp16", "int8"}
