"""Parity suite: PyTorch, onnxruntime-python and onnxruntime-web/-node against librosa.

Running is separate from comparing: :mod:`parity.runners` produce outputs,
:mod:`parity.judge` holds every pass/fail rule and judges them against tolerances (data, from
``ser_export/tolerances.json``), :mod:`parity.report` writes JSON and JUnit, and
:mod:`parity.gate` wires them into ``python -m ser_export verify``.
"""
