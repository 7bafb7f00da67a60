"""Exceptions with messages meant for users (one line, naming the problem)."""
from __future__ import annotations


class SerExportError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits non-zero."""

    exit_code = 2


class AudioError(SerExportError):
    """An audio file or waveform that cannot be used (missing, corrupt, NaN/Inf, ...).

    ``problem`` is the message without the file or clip it names (what a report
    lists beside the file), and ``reason`` a short category for counting.
    """

    def __init__(self, message: str, problem: str | None = None, reason: str = "unusable audio") -> None:
        super().__init__(message)
        self.problem = problem or message
        self.reason = reason


class SilentAudioError(AudioError):
    """A clip too quiet to RMS-normalise (its RMS is below ``contract.MIN_RMS``)."""


class DataError(SerExportError):
    """A corpus directory or file name that does not follow its convention."""


class ExportError(SerExportError):
    """The export, simplification or ONNX check failed."""


class LintError(ExportError):
    """The model uses an operator or construct a target onnxruntime-web backend cannot run."""


class ReleaseCheckError(SerExportError):
    """Runtimes disagree beyond tolerance: the release is refused."""

    exit_code = 1


class ToolMissingError(SerExportError):
    """A required external tool (node, npm, the JS harness) is missing."""
