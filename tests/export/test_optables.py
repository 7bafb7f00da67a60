import pytest

from ser_export.export.optables import OPEN, OpTable, load_tables, parse_webgl_table, parse_webgpu_table

WEBGL_SNIPPET = """
| Operator | WebGl Backend |
|:--------:|:-------------:|
| [Abs](https://x/Operators.md#Abs) | [6-12](https://x#Abs-6), [13+](https://x#Abs-13) |
| [Acosh](https://x/Operators.md#Acosh) |  |
| [Add](https://x#Add) | [7-12](https://x), [13](https://x), [14+](https://x) |
"""

WEBGPU_SNIPPET = """
| Operator | Opset | Comments |
|:--------:|:-------------:|-----|
| Abs | ai.onnx(6-12,13+) |  |
| Attention | com.microsoft(1+) | need implementing mask |
| Conv | ai.onnx(1-10,11+); com.ms.internal.nhwc(1-10,11+) | need perf optimization |
"""


def test_parse_webgl_rows():
    table = parse_webgl_table(WEBGL_SNIPPET)
    assert table == {"Abs": ((6, 12), (13, OPEN)), "Add": ((7, 12), (13, 13), (14, OPEN))}


def test_parse_webgpu_rows_ignores_other_domains():
    table = parse_webgpu_table(WEBGPU_SNIPPET)
    assert table == {"Abs": ((6, 12), (13, OPEN)), "Conv": ((1, 10), (11, OPEN))}


def test_supports_uses_the_schema_version_in_effect():
    table = OpTable("t", "test", {"Add": ((7, 12),), "Relu": ((14, OPEN),)})
    assert table.supports("Add", 12) and not table.supports("Add", 13)  # Add-13 is a new schema
    assert table.supports("Relu", 14) and not table.supports("Relu", 13)
    assert not table.supports("NoSuchOp", 13)


def test_installed_tables_know_the_documented_webgl_gaps():
    """The facts of shared/WEB-BACKENDS.md, read from the installed onnxruntime-web docs."""
    tables = load_tables()
    for op in ("Max", "Min", "LayerNormalization", "ConstantOfShape", "STFT", "DFT", "Where", "Range", "Expand"):
        assert not tables["webgl"].supports(op, 17), op
    for op in ("Conv", "MatMul", "Clip", "ReduceMax", "Log", "Pad", "Relu"):
        assert all(tables[b].supports(op, 13) for b in ("wasm", "webgl", "webgpu")), op
    assert tables["webgpu"].supports("LayerNormalization", 17)
    assert "onnxruntime-web" in tables["webgl"].source and "docs/webgl-operators.md" in tables["webgl"].source
