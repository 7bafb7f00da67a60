"""The one way this project makes an onnxruntime-python session: CPU only, threads stated.

Every caller states ``threads`` (the intra-op pool): onnxruntime's default is one thread per
physical core, so a session made without it computes with a machine-dependent number of threads,
and some CPU kernels split their sums by thread.  The inter-op pool is one thread (sessions run
their nodes one after another, onnxruntime's default execution mode, which has no use for more).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx
    import onnxruntime

#: Errors only: stdout and stderr stay for results and one-line errors.
LOG_ERRORS_ONLY = 3


def cpu_session(model: "str | os.PathLike | bytes | onnx.ModelProto", *, threads: int, optimize: bool = True,
                log_severity: int = LOG_ERRORS_ONLY) -> "onnxruntime.InferenceSession":
    """An onnxruntime-python session of ``model`` on the CPU execution provider.

    Parameters
    ----------
    model : path-like, bytes or onnx.ModelProto
        The model file, its bytes, or the model.
    threads : int
        Intra-op threads (``SessionOptions.intra_op_num_threads``), >= 1; inter-op threads are 1.
    optimize : bool
        ``False``: no graph optimisation (``ORT_DISABLE_ALL``; every tensor stays as exported).
    log_severity : int
        onnxruntime's log level (0 verbose .. 4 fatal); default errors only.

    Returns
    -------
    onnxruntime.InferenceSession
    """
    import onnxruntime as ort

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, not {threads!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = log_severity
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not isinstance(model, (bytes, str, os.PathLike)):
        model = model.SerializeToString()
    elif not isinstance(model, bytes):
        model = os.fspath(model)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
