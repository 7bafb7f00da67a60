"""Where each generated block of the docs lives, and the command that prints it: the one place.

A *generated block* is text a command prints, pasted into a page between two markers
(``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->``) and checked by a test against what the code or
the committed release gives. Each block lives in exactly one page of a checkout (``README.md`` or
``docs/*.md``); the tests find it through :func:`read_block`, the commands that print one name its page
through :func:`page`, so moving a block means changing its entry in :data:`BLOCKS` and nothing else.

Examples
--------
>>> BLOCKS["optable"].page
'docs/operator-lint.md'
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md")


@dataclass(frozen=True)
class Block:
    """One generated block.

    Parameters
    ----------
    page : str
        The page that holds it, relative to the checkout's root (``docs/front-ends.md``).
    source : str
        What gives its content: a command run from the checkout's root, or the code it copies.
    begin : str
        Its opening marker, a line of its own (``end`` is ``<!-- NAME:end -->``).
    """

    name: str
    page: str
    source: str
    begin: str

    @property
    def end(self) -> str:
        return f"<!-- {self.name}:end -->"


def _block(name: str, page: str, source: str, begin: str | None = None) -> Block:
    return Block(name, page, source, begin or f"<!-- {name}:begin -->")


BLOCKS: dict[str, Block] = {b.name: b for b in (
    _block("optable", "docs/operator-lint.md",
           "python -m ser_export optable --markdown ser_export/export/measured_ops.json",
           "<!-- optable:begin (python -m ser_export optable --markdown ser_export/export/measured_ops.json) -->"),
    _block("bench", "docs/front-ends.md", "python -m ser_export bench --markdown parity-out/bench.json"),
    _block("contract", "docs/verify-your-model.md",
           "tests/parity/foreign_models.py's KWS_CONTRACT, in a ```toml fence"),
    _block("variants", "docs/variants.md", "python -m ser_export card saved_models --section variants"),
    _block("stream_contract", "docs/streaming.md", "parity/contracts/silero_vad.toml, in a ```toml fence"),
    _block("silero_table", "docs/streaming.md",
           "python -m ser_export stream-table --markdown parity/contracts/silero_table.json"),
    # the plots' paths are relative to the page: the release folder as seen from docs/
    _block("unseen", "docs/unseen-input.md",
           "cd docs && python -m ser_export card ../saved_models --section unseen"),
)}


def page(name: str) -> str:
    """The page that holds block ``name``, relative to the checkout's root."""
    return BLOCKS[name].page


def release_prefix(name: str, release: str = "saved_models") -> str:
    """The release folder as a link from block ``name``'s page (``../saved_models/`` from ``docs/``)."""
    page_dir = (CHECKOUT / BLOCKS[name].page).parent
    return Path(os.path.relpath(CHECKOUT / release, page_dir)).as_posix() + "/"


def pages(root: Path = CHECKOUT) -> list[Path]:
    """Every page of the docs in a checkout: ``README.md`` and ``docs/*.md``."""
    return sorted(p for pattern in PAGES for p in root.glob(pattern))


def read_block(name: str, root: Path = CHECKOUT) -> str:
    """The text between block ``name``'s markers in its page, without the newlines next to them.

    Raises
    ------
    ValueError
        The page lacks either marker, or a page other than its own holds a marker of the block
        (a block lives in one place only).
    """
    block = BLOCKS[name]
    elsewhere = [p.relative_to(root).as_posix() for p in pages(root)
                 if p.relative_to(root).as_posix() != block.page
                 and re.search(rf"^<!-- {name}:(begin|end)\b", p.read_text(encoding="utf-8"), re.M)]
    if elsewhere:
        raise ValueError(f"block {name!r} belongs in {block.page} only, but {', '.join(elsewhere)} has its marker")
    text = (root / block.page).read_text(encoding="utf-8")
    if text.count(block.begin) != 1 or text.count(block.end) != 1:
        raise ValueError(f"{block.page}: needs one {block.begin!r} and one {block.end!r}")
    inner = text.split(block.begin, 1)[1].split(block.end, 1)[0]
    if not (inner.startswith("\n") and inner.endswith("\n")):
        raise ValueError(f"{block.page}: block {name!r}'s markers must be lines of their own")
    return inner[1:-1]
