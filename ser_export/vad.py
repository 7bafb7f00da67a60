"""Voice activity: does a model window hold speech?  (Silero VAD, run with onnxruntime.)

Before any window is classified, Silero VAD (https://github.com/snakers4/silero-vad, MIT
licence; its ONNX file ships inside the PyPI wheel ``silero-vad``, and a release carries a
copy) scores every 32 ms frame of it.  The steps, the same in Python (here) and in
JavaScript (``js_harness/lib/postprocess.mjs``):

1. the model window (RMS-normalised, at the model's rate) is scaled by ``gain_db``
   (to about -20 dBFS: Silero was trained on recordings at natural levels, and a
   fixed level makes the decision independent of how loud the file was);
2. it is resampled to 16 kHz by :func:`resample_poly_kaiser` (a Kaiser-windowed sinc
   evaluated at exact rational positions, so both languages compute the same numbers);
3. Silero runs frame by frame (512 samples, each with the previous 64 as context, the
   state carried over, both zero at the window's start, as ``silero_vad.OnnxWrapper``
   does); the last partial frame is zero-padded: each window is a stream cut by the one
   chunking rule (:func:`ser_export.streaming.stream_windows`), driven by the contract
   :meth:`VadParams.stream_contract` makes (the one the release gate checks the VAD by);
4. the window holds speech when at least ``min_speech_fraction`` of its frames have a
   speech probability of at least ``threshold``.

The parameters are data (:class:`VadParams`), written into each model's metadata
(``postprocessing.vad``) and read by both sides.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import SerExportError
from .io import sha256_file
from .stream_contract import Constant, Decision, Reference, Score, Signal, State, StreamContract
from .streaming import stream_windows

#: The Silero VAD file a release carries (the wheel's default ONNX model, opset 16).
VAD_FILE = "silero_vad.onnx"

#: The Silero file's tensors (silero_vad.onnx: inputs ``input [batch, samples]``, ``state [2, batch, 128]``,
#: ``sr`` int64; outputs ``output [batch, 1]`` and ``stateN``).
SIGNAL, STATE, STATE_OUT, RATE, SCORE = "input", "state", "stateN", "sr", "output"
STATE_SHAPE = (2, "batch", 128)

#: Where the file comes from and under which licence (the manifest and model card say it).
VAD_SOURCE = "silero-vad (PyPI), silero_vad/data/silero_vad.onnx"
VAD_LICENSE = "MIT (Silero Team)"


@dataclasses.dataclass(frozen=True)
class VadParams:
    """How a window is judged to hold speech (see the module docstring).

    Parameters
    ----------
    sha256 : str
        Checksum of the Silero ONNX file these parameters were chosen with.
    sample_rate : int
        Silero's rate in Hz (16000).
    frame_length : int
        Samples per Silero frame at ``sample_rate`` (512: 32 ms).
    context : int
        Samples of the previous frame prepended to each frame (64).
    gain_db : float
        Gain applied to the RMS-normalised model window before the VAD, in dB.
    threshold : float
        A frame is speech when its probability is at least this.
    min_speech_fraction : float
        A window holds speech when at least this fraction of its frames are speech.
    resampler : dict
        ``zeros``, ``rolloff`` and ``beta`` of :func:`resample_poly_kaiser`.
    """

    sha256: str
    sample_rate: int = 16000
    frame_length: int = 512
    context: int = 64
    gain_db: float = -20.0
    threshold: float = 0.5
    min_speech_fraction: float = 0.05
    resampler: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"zeros": 32, "rolloff": 0.97, "beta": 8.6})

    def to_dict(self) -> dict:
        return {"file": VAD_FILE, **dataclasses.asdict(self), "resampler": dict(self.resampler)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "VadParams":
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise SerExportError(f"postprocessing.vad: {exc}") from None

    def stream_contract(self) -> StreamContract:
        """The release's VAD as a streaming model (contract version 2), made from these parameters alone.

        ``frame_length`` samples per chunk at ``sample_rate`` with ``context`` samples carried, the state zero
        at the start, ``sr`` a constant, the speech probability a score decided at ``>= threshold`` (no
        hysteresis: a frame is speech exactly when :func:`speech_fraction` counts it).  The manifest records
        it (``vad.contract``), :class:`VoiceActivity` streams by it and the release gate runs its stream
        stages (:mod:`parity.stream_judge`) by it.  ``silero_vad.jit`` keeps its own state: ``model(chunk, sr)``.
        """
        return StreamContract(
            version=2, name="silero-vad", targets=("wasm",),
            signal=Signal(SIGNAL, self.sample_rate, self.frame_length, self.context),
            states=(State(STATE, STATE_OUT, STATE_SHAPE),),
            constants=(Constant(RATE, "int64", self.sample_rate),),
            scores=(Score(SCORE, Decision(self.threshold)),),
            reference=Reference(drive="self", arguments=(self.sample_rate,)))

    def n_frames(self, n_samples: int, sr: int) -> int:
        """Frames Silero scores in a window of ``n_samples`` at ``sr`` Hz."""
        return -(-resampled_length(n_samples, sr, self.sample_rate) // self.frame_length)


def packaged_vad_path() -> Path:
    """The Silero ONNX file inside the installed ``silero-vad`` wheel.

    Found without importing the package: ``import silero_vad`` runs ``torch.set_num_threads(1)``
    (in its ``model.py``), which would halve training speed and change its arithmetic.
    """
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SerExportError("the silero-vad package is not installed (pip install silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))).resolve() / "data" / VAD_FILE
    if not path.is_file():
        raise SerExportError(f"{path}: the silero-vad package holds no {VAD_FILE}")
    return path


def find_vad_file(sha256: str, near: str | os.PathLike | None = None) -> Path:
    """The Silero file with checksum ``sha256``: beside ``near`` (a model file) if there, else the wheel's.

    The copy beside a model is a release file: it is read like one (a regular file inside the
    model's folder, never through a symlink out of it) and skipped when it is not that.
    """
    from .export.model_file import ReleaseFileError, read_release_file

    if near is not None:
        beside = Path(near).parent / VAD_FILE
        if os.path.lexists(beside):
            try:
                if hashlib.sha256(read_release_file(beside, beside.parent)).hexdigest() == sha256:
                    return beside
            except ReleaseFileError:
                pass
    packaged = packaged_vad_path()
    if sha256_file(packaged) == sha256:
        return packaged
    raise SerExportError(f"no {VAD_FILE} with sha256 {sha256[:12]}... beside the model or in the silero-vad "
                         f"package (the model was built with another silero-vad release)")


# ------------------------------------------------------------------ resampling ---
def resampled_length(n_samples: int, sr_from: int, sr_to: int) -> int:
    """``ceil(n_samples * sr_to / sr_from)`` in integers."""
    g = math.gcd(int(sr_from), int(sr_to))
    up, down = sr_to // g, sr_from // g
    return -(-n_samples * up // down)


@functools.lru_cache(maxsize=8)
def kaiser_sinc_table(sr_from: int, sr_to: int, zeros: int = 32, rolloff: float = 0.97,
                      beta: float = 8.6) -> tuple[np.ndarray, int, int, int]:
    """Polyphase filter of :func:`resample_poly_kaiser`: ``(table, half, up, down)``.

    ``table[p, i]`` weighs input sample ``centre - half + 1 + i`` for an output whose
    position in input samples is ``centre + p / up``.
    """
    g = math.gcd(int(sr_from), int(sr_to))
    up, down = sr_to // g, sr_from // g
    cutoff = rolloff * min(1.0, sr_to / sr_from)
    half = math.ceil(zeros / cutoff)
    p = np.arange(up, dtype=np.float64)[:, None] / up
    i = np.arange(2 * half, dtype=np.float64)[None, :]
    d = p + (half - 1) - i                       # t - k
    u = d / half
    inside = np.abs(u) < 1
    window = np.where(inside, np.i0(beta * np.sqrt(np.clip(1 - u * u, 0, None))) / np.i0(beta), 0.0)
    table = cutoff * np.sinc(cutoff * d) * window
    return table, half, up, down


def resample_poly_kaiser(y: np.ndarray, sr_from: int, sr_to: int, zeros: int = 32, rolloff: float = 0.97,
                         beta: float = 8.6) -> np.ndarray:
    """Band-limited resampling by a Kaiser-windowed sinc at exact rational positions.

    Output sample ``j`` sits at input position ``t = j * sr_from / sr_to`` (``centre =
    floor(t)``, ``frac = t - centre``, both from integers); it is the sum over the
    ``2 * half`` input samples ``k`` around it (zero outside the signal) of
    ``x[k] * c * sinc(c * (t - k)) * I0(beta * sqrt(1 - ((t - k) / half)**2)) / I0(beta)``
    with ``c = rolloff * min(1, sr_to / sr_from)`` and ``half = ceil(zeros / c)``.

    The sums are evaluated in float64 as one polyphase filter (:func:`scipy.signal.upfirdn`,
    15x faster than summing tap by tap: 0.15 s vs 2.2 s for 64 model windows); JavaScript
    sums tap by tap, and the two agree to float32 rounding.

    Parameters
    ----------
    y : np.ndarray [shape=(..., n)]
        Signals at ``sr_from`` Hz.
    sr_from, sr_to : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(n * sr_to / sr_from)), dtype=float32]
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    if sr_from == sr_to:
        return y.astype(np.float32)
    from scipy.signal import upfirdn

    table, half, up, down = kaiser_sinc_table(int(sr_from), int(sr_to), zeros, rolloff, beta)
    n_out = resampled_length(n, sr_from, sr_to)
    # The same sum as a polyphase FIR: upfirdn gives z[j] = sum_k x[k] h[j * down - k * up], so
    # h[m] = table[p, i] with m = p + (2 * half - 1 - i) * up weighs x[k] at t - k = (m - half * up) / up.
    # That is the sum for t - half: starting the signal ``lead = down * s - half`` zeros later and
    # dropping the first ``up * s`` outputs (s = ceil(half / down)) makes it the sum for t.
    h = np.empty(2 * half * up, dtype=np.float64)
    h[np.arange(up)[:, None] + (2 * half - 1 - np.arange(2 * half))[None, :] * up] = table
    s = -(-half // down)
    lead = down * s - half
    x = np.zeros(y.shape[:-1] + (lead + n,), dtype=np.float64)
    x[..., lead:] = y
    z = upfirdn(h, x, up, down, axis=-1)[..., up * s:up * s + n_out]
    out = np.zeros(y.shape[:-1] + (n_out,), dtype=np.float32)
    out[..., :z.shape[-1]] = z
    return out


# ------------------------------------------------------------------- Silero ---
class VoiceActivity:
    """Silero VAD in onnxruntime: frame speech probabilities and window decisions.

    Parameters
    ----------
    params : VadParams
    path : path-like, optional
        The Silero ONNX file (default: the one with ``params.sha256`` from :func:`find_vad_file`).
    """

    def __init__(self, params: VadParams, path: str | os.PathLike | None = None, near=None) -> None:
        from .ortsession import cpu_session

        self.params = params
        self.path = Path(path) if path is not None else find_vad_file(params.sha256, near)
        self.session = cpu_session(str(self.path), threads=1)

    def vad_input(self, windows: np.ndarray, sr: int) -> np.ndarray:
        """Model windows ``(b, n)`` at ``sr`` -> Silero's input ``(b, m)`` at 16 kHz (float32)."""
        p = self.params
        gain = 10.0 ** (p.gain_db / 20.0)
        return resample_poly_kaiser(np.asarray(windows, np.float64) * gain, sr, p.sample_rate,
                                    **p.resampler)

    def frame_probabilities(self, windows: np.ndarray, sr: int) -> np.ndarray:
        """Speech probability of every frame.

        Parameters
        ----------
        windows : np.ndarray [shape=(b, n)]
            RMS-normalised model windows at ``sr`` Hz.

        Returns
        -------
        np.ndarray [shape=(b, n_frames), dtype=float32]
        """
        windows = np.atleast_2d(np.asarray(windows, np.float32))
        p = self.params
        b = windows.shape[0]
        if b == 0:
            return np.zeros((0, p.n_frames(windows.shape[-1], sr)), np.float32)
        x = self.vad_input(windows, sr)
        if x.shape[1] == 0:
            return np.zeros((b, 0), np.float32)
        contract = self.params.stream_contract()  # chunk, context, names and initial state: the contract's
        sig, (state_decl,), (rate,) = contract.signal, contract.states, contract.constants
        chunks = np.stack([stream_windows(row, sig.chunk, sig.context) for row in x])  # (b, k, context + chunk)
        state = np.full([b if isinstance(d, str) else d for d in state_decl.shape], state_decl.init, np.float32)
        feeds = {rate.name: np.array(rate.value, dtype=rate.dtype)}
        out = np.zeros(chunks.shape[:2], np.float32)
        for f in range(chunks.shape[1]):
            prob, state = self.session.run([SCORE, state_decl.output], {
                sig.name: np.ascontiguousarray(chunks[:, f]), state_decl.name: state, **feeds})
            out[:, f] = prob[:, 0]
        return out


def speech_fraction(frame_probs: np.ndarray, threshold: float) -> np.ndarray:
    """Fraction of frames with probability at least ``threshold``, per window: ``(b,)``."""
    frame_probs = np.asarray(frame_probs)
    if frame_probs.shape[-1] == 0:
        return np.zeros(frame_probs.shape[:-1])
    return np.mean(frame_probs >= threshold, axis=-1)


def is_speech(frame_probs: np.ndarray, params: VadParams) -> np.ndarray:
    """The VAD's decision per window: ``(b,)`` bool."""
    return speech_fraction(frame_probs, params.threshold) >= params.min_speech_fraction
