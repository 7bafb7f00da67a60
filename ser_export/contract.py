"""The input contract and label sets: the one source of truth.

Everything that needs the sample rate, the input length, the normalisation, the
front-end parameters or the label order reads it from here.  The export writes
these values into the ONNX metadata and the release manifest, so that the
JavaScript harness and the demo page read them from the model instead of keeping
copies of their own.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Mapping

#: Sample rate of the model input, in Hz.
SAMPLE_RATE = 22050

#: Number of samples per model input (2.1 s at 22050 Hz).
N_SAMPLES = 46305

#: Duration of one model input, in seconds.
DURATION = N_SAMPLES / SAMPLE_RATE

#: Target RMS level of the normalised waveform, in dB of amplitude (0 dB: RMS of 1; -20 dB: RMS of 0.1).
RMS_LEVEL_DB = 0.0

#: The normalisation as the metadata states it: the gain ``sqrt(N * 10**(L/10) / sum(x**2))`` gives
#: an RMS of ``sqrt(10**(L/10)) = 10**(L/20)``, :func:`rms_target` (tests evaluate this string against it).
RMS_FORMULA = "x * sqrt(N * 10**(rms_level_db/10) / sum(x**2)); refuse when rms(x) < min_rms"


def rms_target(rms_level_db: float) -> float:
    """The RMS of a waveform normalised to ``rms_level_db``: ``10 ** (rms_level_db / 20)``.

    The one implementation of the level (dB of amplitude): :func:`ser_export.audio.rms_normalize`,
    the gate's cases and the JS ``rmsNormalize`` (checked equal by the tests) all use it.

    Parameters
    ----------
    rms_level_db : float
        Level in dB relative to an RMS of 1.

    Returns
    -------
    float
        The RMS (1.0 at 0 dB, 0.1 at -20 dB).
    """
    return 10.0 ** (rms_level_db / 20.0)

#: A clip whose RMS is below this (about -120 dBFS) is treated as silence: RMS
#: normalisation would amplify numerical noise by more than a million, so it is
#: refused instead of divided by (almost) zero.
MIN_RMS = 1e-6

#: Names of the ONNX graph input and output (the names the original web app used).
INPUT_NAME = "input"
OUTPUT_NAME = "output"

#: A second graph output: the log-mel features ``(batch, 1, n_mels, n_frames)`` the
#: CNN sees (for display, e.g. the demo page, and for the parity suite).
FEATURES_NAME = "logmel"

#: Default ONNX opset for the release (the highest the legacy exporter writes
#: without ``LayerNormalization``, which onnxruntime-web's WebGL backend lacks).
DEFAULT_OPSET = 13

#: Label sets; the index in each tuple is the logit index.
LABEL_SETS: Mapping[str, tuple[str, ...]] = {
    "emotions7": ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"),
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgusted", "surprised"),
}
DEFAULT_LABEL_SET = "emotions7"

#: Release file names per architecture (the original project's names).
MODEL_FILES: Mapping[str, str] = {
    "alexnet": "voice_emotion_cnn.onnx",
    "resnet18": "voice_emotion_cnn_resnet.onnx",
}

#: Version of the metadata layout written into the ONNX files and the manifest.
CONTRACT_VERSION = 1


#: Field metadata of :class:`FrontEnd`: a field that says how ser_export's own graph computes the
#: features (not part of a declared contract: not in its schema, refused in a contract file).
GRAPH_FIELD = "graph"
#: Field metadata: a field a declared contract must state, although ser_export's models default it.
DECLARE = "declare"


def _declared(default):
    return dataclasses.field(default=default, metadata={DECLARE: True})


def _graph(default):
    return dataclasses.field(default=default, metadata={GRAPH_FIELD: True})


def declared_fields(cls) -> list[tuple[dataclasses.Field, bool]]:
    """``(field, required)`` of each field a declared contract may state, in order (the one rule the
    contract's parser and its JSON schema both follow)."""
    out = []
    for f in dataclasses.fields(cls):
        if f.metadata.get(GRAPH_FIELD):
            continue
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f, no_default or bool(f.metadata.get(DECLARE))))
    return out


def check_choice(name, value, allowed):
    """Raise :class:`ValueError` naming ``name`` unless ``value`` is one of ``allowed`` (every dataclass of a
    front-end or a declared contract checks its fields with it)."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


def check_positive(name, value):
    """Raise :class:`ValueError` naming ``name`` unless ``value`` is a finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, not {value!r}")


@dataclasses.dataclass(frozen=True)
class LogTransform:
    """How power becomes the features' log scale.

    ``power_to_db``: ``librosa.power_to_db(S, ref=..., amin=amin, top_db=top_db)``, ``ref``
    ``"max"`` (each example's maximum) or a number; ``log``/``log10``: ``log(S + eps)``.
    """

    kind: str = "power_to_db"
    ref: str | float = "max"
    amin: float = 1e-10
    top_db: float | None = 80.0
    eps: float = 1e-6

    def __post_init__(self):
        check_choice("kind", self.kind, ("power_to_db", "log", "log10"))
        if isinstance(self.ref, str) and self.ref != "max":
            raise ValueError(f"ref must be \"max\" or a number, not {self.ref!r}")
        check_positive("amin", self.amin)
        check_positive("eps", self.eps)
        if self.top_db is not None:
            check_positive("top_db", self.top_db)

    @property
    def unit(self) -> str:
        """The features' unit: ``"dB"``, ``"ln"`` (natural log of power) or ``"log10"``."""
        return {"power_to_db": "dB", "log": "ln", "log10": "log10"}[self.kind]

    def floor(self, peak: float | None = None) -> float:
        """The lowest value the transform gives (the floor-margin region is measured from it), in :attr:`unit`."""
        if self.kind == "power_to_db":
            if self.top_db is not None and self.ref == "max":
                return -float(self.top_db)
            return 10 * math.log10(self.amin) - (10 * math.log10(self.ref) if isinstance(self.ref, float) else 0.0)
        return math.log(self.eps) if self.kind == "log" else math.log10(self.eps)


#: STFT implementations of ser_export's own graphs (:attr:`FrontEnd.implementation`).
IMPLEMENTATIONS = ("conv2d", "fft")

#: Keys of the ``frontend`` entry of ser_export's ONNX metadata and manifest, in the order written.
METADATA_KEYS = ("sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "window", "center", "pad_mode", "power",
                 "amin", "top_db", "ref", "implementation", "fft_n1", "mel_groups")
#: The metadata's name for ``LogTransform(ref="max")``: the dB scale relative to each example's maximum.
METADATA_REF = "max_per_example"


@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """A mel front-end with librosa's parameter names (``librosa.feature.melspectrogram``).

    The one description of a log-mel front-end: ser_export's own models are built from it
    (their defaults are this release's), and a declared contract (:mod:`ser_export.model_contract`)
    states one.  A declared contract must state ``sr``, ``n_fft``, ``hop_length`` and ``n_mels``;
    the last three fields say how ser_export's graph computes the features and are not part of a
    contract.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    n_fft : int
        FFT size in samples.
    hop_length : int
        Hop between frames in samples.
    n_mels : int
        Number of mel bands.
    win_length : int or None
        Window length in samples (centred inside ``n_fft``); ``None`` means ``n_fft``.
    window : str
        Window name (``scipy.signal.get_window``); periodic.
    center : bool
        Whether frames are centred (the signal is padded by ``n_fft // 2`` both sides).
    pad_mode : {"constant", "reflect", "edge", "wrap", "symmetric"}
        How the centre padding is filled (librosa's default is ``"constant"``).
    power : float
        Exponent of the magnitude spectrogram (2: power).
    fmin, fmax : float
        Lowest and highest mel filter frequencies in Hz; ``fmax=None`` means ``sr / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        Mel filter normalisation.
    log : LogTransform
        How the mel power becomes the features (default: dB relative to each example's
        maximum, ``amin=1e-10``, ``top_db=80``).
    implementation : {"fft", "conv2d"}
        How ser_export's graph computes the STFT: the four-step FFT (what the build uses) or
        the Conv2d DFT basis (the reference).  Both give the same log-mel (the parity suite
        checks it).
    fft_n1 : int
        First-stage size of the four-step FFT (``n_fft = fft_n1 * n2``).
    mel_groups : int
        The FFT front-end projects onto the mel bands in this many groups, each
        over only the bins its bands cover (the same numbers as one dense matrix).
        4, not 8: onnxruntime-web 1.30's WebGPU backend returns wrong values for a
        ``Concat`` of 8 or more inputs, which joins the 8 groups' outputs (found by the
        parity suite's chromium-webgpu runner, first blamed on the groups' 16-column
        ``MatMul``s; the measured operator table pins it on ``Concat``).

    See Also
    --------
    ser_export.frontend.build_frontend : the graph of ser_export's models.
    ser_export.frontend.reference.features_reference : the librosa reference.
    """

    sr: int = _declared(SAMPLE_RATE)
    n_fft: int = _declared(2048)
    hop_length: int = _declared(512)
    n_mels: int = _declared(128)
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    log: LogTransform = LogTransform()
    implementation: str = _graph("fft")
    fft_n1: int = _graph(64)
    mel_groups: int = _graph(4)

    def __post_init__(self):
        for name in ("sr", "n_fft", "hop_length", "n_mels"):
            check_positive(name, getattr(self, name))
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in 1..n_fft ({self.n_fft}), not {self.win_length}")
        check_choice("pad_mode", self.pad_mode, ("constant", "reflect", "edge", "wrap", "symmetric"))
        check_choice("norm", self.norm, ("slaney", None))
        if self.fmax is not None and not self.fmin < self.fmax <= self.sr / 2:
            raise ValueError(f"fmax must be in (fmin, sr/2], not {self.fmax}")
        check_choice("implementation", self.implementation, IMPLEMENTATIONS)
        check_positive("fft_n1", self.fft_n1)
        check_positive("mel_groups", self.mel_groups)

    @property
    def fmax_hz(self) -> float:
        """Upper mel frequency in Hz (``fmax``, or ``sr / 2`` when it is None)."""
        return float(self.sr) / 2.0 if self.fmax is None else float(self.fmax)

    @property
    def n_freqs(self) -> int:
        """Number of one-sided frequency bins, ``1 + n_fft // 2``."""
        return 1 + self.n_fft // 2

    def n_frames(self, n_samples: int = N_SAMPLES) -> int:
        """Number of STFT frames for ``n_samples`` input samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def check_buildable(self) -> None:
        """Raise ``ValueError`` unless ser_export's graph (and its metadata layout) can hold this
        front-end: the periodic Hann window over ``n_fft``, power 2, constant or reflect padding,
        Slaney mels, dB relative to each example's maximum."""
        problems = []
        if self.pad_mode not in ("constant", "reflect"):
            problems.append(f"pad_mode must be 'constant' or 'reflect', not {self.pad_mode!r}")
        if self.window != "hann":
            problems.append(f"only the periodic 'hann' window is implemented, not {self.window!r}")
        if self.win_length not in (None, self.n_fft):
            problems.append(f"only win_length = n_fft is implemented, not {self.win_length}")
        if self.power != 2.0:
            problems.append(f"only power=2.0 (power spectrogram) is implemented, not {self.power}")
        if self.htk or self.norm != "slaney":
            problems.append("only Slaney mels (htk=False, norm='slaney') are implemented")
        if self.log.kind != "power_to_db" or self.log.ref != "max" or self.log.top_db is None:
            problems.append(f"only dB relative to each example's maximum with a top_db is implemented, not {self.log}")
        if problems:
            raise ValueError("; ".join(problems))

    # ----------------------------------------------- ser_export's metadata ---
    def to_dict(self) -> dict:
        """The ``frontend`` entry of ser_export's ONNX metadata and manifest (:data:`METADATA_KEYS`).

        ``amin`` and ``top_db`` are the log transform's; ``ref`` is :data:`METADATA_REF`.
        A front-end the graph cannot build is a ``ValueError`` (:meth:`check_buildable`).
        """
        self.check_buildable()
        values = {"amin": self.log.amin, "top_db": self.log.top_db, "ref": METADATA_REF}
        return {k: values[k] if k in values else getattr(self, k) for k in METADATA_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FrontEnd":
        """The one parser of the metadata layout (:meth:`to_dict`); a missing key takes the default."""
        unknown = set(data) - set(METADATA_KEYS)
        if unknown:
            raise ValueError(f"unknown front-end parameters: {sorted(unknown)}")
        data = dict(data)
        ref = data.pop("ref", METADATA_REF)
        if ref != METADATA_REF:
            raise ValueError(f"only ref={METADATA_REF!r} is implemented, not {ref!r}")
        default = LogTransform()
        log = LogTransform("power_to_db", "max", data.pop("amin", default.amin), data.pop("top_db", default.top_db))
        out = cls(**data, log=log)
        out.check_buildable()
        return out


def labels_for(label_set: str) -> tuple[str, ...]:
    """Return the labels of ``label_set`` in logit order."""
    try:
        return tuple(LABEL_SETS[label_set])
    except KeyError:
        raise ValueError(
            f"unknown label set {label_set!r}; choose one of {sorted(LABEL_SETS)}"
        ) from None


def input_contract(frontend: FrontEnd | None = None) -> dict:
    """The input/output contract as plain data (for metadata and the manifest)."""
    frontend = frontend or FrontEnd()
    return {
        "contract_version": CONTRACT_VERSION,
        "input_name": INPUT_NAME,
        "input_shape": ["batch", N_SAMPLES],
        "input_dtype": "float32",
        "sample_rate": SAMPLE_RATE,
        "n_samples": N_SAMPLES,
        "duration_s": round(DURATION, 6),
        "channels": "mono",
        "normalization": {
            "kind": "rms",
            "rms_level_db": RMS_LEVEL_DB,
            "min_rms": MIN_RMS,
            "formula": RMS_FORMULA,
        },
        "output_name": OUTPUT_NAME,
        "output_shape": ["batch", "n_labels"],
        "output_kind": "logits",
        "features_name": FEATURES_NAME,
        "features_shape": ["batch", 1, frontend.n_mels, frontend.n_frames(N_SAMPLES)],
        "features_unit": "dB relative to each example's maximum, in [-top_db, 0]",
    }


def dumps_canonical(data) -> str:
    """JSON with sorted keys and no whitespace variation (stable across runs)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
