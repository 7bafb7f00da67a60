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
