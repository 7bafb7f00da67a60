"""Figures in the README and the docs/ pages that a test can tie to the committed release or the code,
and the pages' own shape: every generated block in its one page, every link between pages resolving."""
import json
import re
from pathlib import Path

import pytest

from ser_export import docs_blocks
from ser_export.contract import FrontEnd
from tests.e2e import ROOT

PAGES = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in docs_blocks.pages(ROOT)}
README = PAGES["README.md"]
MANIFEST = json.loads((ROOT / "saved_models" / "manifest.json").read_text())
NAMES = {"alexnet": "AlexNet", "resnet18": "ResNet18"}


def _everywhere(pattern: str, flags: int = 0) -> list[tuple[str, re.Match]]:
    """Every match of ``pattern`` in every page: a figure typed in two pages is checked in both."""
    return [(name, m) for name, text in PAGES.items() for m in re.finditer(pattern, text, flags)]


def test_held_out_accuracies_are_the_committed_release_s():
    found = _everywhere(r"Held-out-speaker accuracy: AlexNet ([\d.]+) %, ResNet18 ([\d.]+) %")
    assert found, "a page states the held-out accuracies"
    for page, line in found:
        for arch, quoted in zip(("alexnet", "resnet18"), line.groups()):
            assert float(quoted) == round(100 * MANIFEST["models"][arch]["held_out"]["test"]["accuracy"], 1), page


def test_mel_groups_as_in_the_code():
    found = _everywhere(r"projects onto the mel bands in (\d+) band-limited")
    assert found, "a page states the FFT front-end's mel groups"
    assert all(int(m.group(1)) == FrontEnd().mel_groups for _, m in found), found


def test_committed_file_sizes_in_the_bench_table():
    bench = docs_blocks.read_block("bench", ROOT)
    for arch, name in NAMES.items():
        row = re.search(rf"\| {name}, `fft` \|[^\n]*\| ([\d.]+) MB \|", bench)
        assert row, f"the bench table has a row for {name} with the fft front-end"
        assert float(row.group(1)) == round(MANIFEST["models"][arch]["bytes"] / 1e6, 1)


def test_the_unseen_inputs_block_is_the_committed_release_s():
    """The figures on voice activity, calibration and "uncertain" are the committed manifest's, rendered
    as `python -m ser_export card --section unseen` prints them, the plots linked from the block's page."""
    from ser_export.export.model_card import unseen_inputs_section

    block = docs_blocks.read_block("unseen", ROOT)
    expected = "\n".join(unseen_inputs_section(MANIFEST, level="###",
                                               images=docs_blocks.release_prefix("unseen"))).rstrip("\n")
    assert expected and block == expected
    page = ROOT / docs_blocks.page("unseen")
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", block)
    assert plots and all((page.parent / p).is_file() for p in plots), plots


def test_the_shipped_silero_file_is_the_one_the_manifest_names():
    from ser_export.io import sha256_file

    vad = MANIFEST["vad"]
    assert sha256_file(ROOT / "saved_models" / vad["file"]) == vad["sha256"] and vad["license"].startswith("MIT")
    for m in MANIFEST["models"].values():
        assert m["postprocessing"]["vad"]["sha256"] == vad["sha256"]


def test_the_variants_block_is_the_committed_release_s():
    """The variants table is the committed manifest's, as `python -m ser_export card saved_models
    --section variants` prints it; every model has every variant the build makes (fp16, int8, int8s)."""
    from ser_export.export.model_card import variants_section
    from ser_export.export.variants import VARIANTS

    block = docs_blocks.read_block("variants", ROOT)
    expected = "\n".join(variants_section(MANIFEST, level="###")).rstrip("\n")
    assert expected and block == expected
    for m in MANIFEST["models"].values():
        assert set(m["variants"]) == set(VARIANTS)


@pytest.mark.parametrize("name", sorted(docs_blocks.BLOCKS))
def test_every_generated_block_lives_in_its_one_page(name):
    """Each block is read from the page the helper names, and no other page has its marker."""
    assert docs_blocks.read_block(name, ROOT).strip()


def test_every_marked_block_is_known_to_the_helper():
    marked = {m.group(1) for _, m in _everywhere(r"^<!-- ([\w-]+):(?:begin|end)\b", re.M)}
    assert marked == set(docs_blocks.BLOCKS), "a block the helper does not know, or one it knows gone missing"


def test_a_block_in_two_pages_is_refused(tmp_path):
    for rel in ("README.md", docs_blocks.page("variants")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<!-- variants:begin -->\nx\n<!-- variants:end -->\n")
    with pytest.raises(ValueError, match="belongs in docs/variants.md only, but README.md"):
        docs_blocks.read_block("variants", tmp_path)
    (tmp_path / "README.md").write_text("no blocks\n")
    assert docs_blocks.read_block("variants", tmp_path) == "x"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_links_between_pages_resolve():
    """Every relative link of the README and docs/ names a file of the checkout, and an anchor of it."""
    broken = []
    for name, text in PAGES.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = ((ROOT / name).parent / path).resolve() if path else ROOT / name
            if not file.exists():
                broken.append(f"{name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_is_short_and_names_every_page():
    assert len(README.splitlines()) <= 200
    for page in PAGES:
        if page != "README.md":
            assert f"]({page})" in README, f"the README's table links {page}"
