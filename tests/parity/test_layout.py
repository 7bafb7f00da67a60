"""The gate's layout: one module per job, on floors that import only downwards, and the low-level
ser_export packages free of the parity suite."""
from __future__ import annotations

import ast

import pytest

from tests.e2e import ROOT

#: The gate's modules, bottom floor first: a module imports gate modules only from floors below its own.
FLOORS = (("config",), ("subject",), ("collect",), ("pipeline",), ("variants", "foreign", "rejudge", "vad_stream"),
          ("release", "merge", "gate"))
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
#: Most lines a gate module may have (the judge, the one home of every rule, is not one of them).
MAX_LINES = 450


def parity_imports(path) -> set[str]:
    """The ``parity`` modules ``path`` imports (top-level names: ``parity.runners.base`` -> ``runners``)."""
    tree = ast.parse(path.read_text())
    own = path.relative_to(ROOT).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = list(own[:len(own) - node.level])
                parts = base + (node.module.split(".") if node.module else [])
            else:
                parts = (node.module or "").split(".")
            if parts[:1] != ["parity"]:
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("parity.")}
    return found


@pytest.mark.parametrize("name", sorted(FLOOR))
def test_each_gate_module_imports_only_from_the_floors_below(name):
    imports = parity_imports(ROOT / "parity" / f"{name}.py")
    upward = sorted(m for m in imports if m in FLOOR and FLOOR[m] >= FLOOR[name])
    assert not upward, f"parity/{name}.py (floor {FLOOR[name]}) imports {upward} from its own floor or above"


def test_the_shared_modules_import_no_gate_module():
    """cases, judge, record, report, runners, ...: below every floor of the gate."""
    for path in sorted((ROOT / "parity").rglob("*.py")):
        if path.stem in FLOOR:
            continue
        gate_modules = sorted(parity_imports(path) & set(FLOOR))
        assert not gate_modules, f"{path.relative_to(ROOT)} imports the gate's {gate_modules}"


def test_gate_orchestrates_and_no_module_does_several_jobs():
    lines = {p.stem: len(p.read_text().splitlines()) for p in (ROOT / "parity").glob("*.py")}
    assert lines["gate"] <= 350, lines["gate"]
    too_long = {n: k for n, k in lines.items() if k > MAX_LINES and n != "judge"}
    assert not too_long, too_long


def test_the_low_level_packages_do_not_import_parity():
    low = [ROOT / "ser_export" / d for d in ("frontend", "models", "data", "export")]
    single = ("manifest.py", "vad.py", "streaming.py", "stream_contract.py", "longaudio.py", "predict.py")
    files = [p for d in low for p in d.rglob("*.py")] + [ROOT / "ser_export" / f for f in single]
    assert files
    hits = [str(p.relative_to(ROOT)) for p in files if parity_imports(p) or "import parity" in p.read_text()]
    assert not hits, hits


def test_parity_uses_no_command_layer_module():
    """parity sits on ser_export's low floor (contract, front-end, export, manifest), never on the commands."""
    commands = {"cli", "build", "reexport", "bench"}
    hits = []
    for path in sorted((ROOT / "parity").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                names = parts[1:2] if len(parts) > 1 else [a.name for a in node.names]
                if parts[0] == "ser_export" and commands & set(names):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Import):
                hits += [f"{path.relative_to(ROOT)}:{node.lineno}" for a in node.names
                         if a.name.split(".")[:2][-1] in commands and a.name.startswith("ser_export.")]
    assert not hits, hits
