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
from typing import Mapping

#: Sample rate of the model input, in Hz.
SAMPLE_RATE = 22050

#: Number of samples per model input (2.1 s at 22050 Hz).
N_SAMPLES = 46305

#: Duration of one model input, in seconds.
DURATION = N_SAMPLES / SAMPLE_RATE

#: Target RMS level of the normalised waveform, in dB (0 dB: RMS of 1).
RMS_LEVEL_DB = 0.0

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


@dataclasses.dataclass(frozen=True)
class FrontendParams:
    """Parameters of the log-mel front-end, with librosa's names.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    n_fft : int
        FFT size (and window length) in samples.
    hop_length : int
        Hop between frames in samples.
    n_mels : int
        Number of mel bands (Slaney scale and normalisation, as librosa's default).
    fmin, fmax : float
        Lowest and highest mel filter frequencies in Hz; ``fmax=None`` means ``sr / 2``.
    window : str
        Window name; only the periodic ``"hann"`` window is implemented.
    center : bool
        Whether frames are centred (the signal is padded by ``n_fft // 2`` both sides).
    pad_mode : {"constant", "reflect"}
        How the centre padding is filled (librosa's default is ``"constant"``).
    power : float
        Exponent of the magnitude spectrogram (2: power).
    amin : float
        Floor of the power before the logarithm.
    top_db : float
        Dynamic range kept below each example's maximum, in dB.
    ref : str
        Reference of the dB scale: ``"max_per_example"``, the maximum of each clip.
    implementation : {"conv2d", "fft"}
        How the STFT is computed: the Conv2d DFT basis (the reference) or the
        four-step FFT.  Both give the same log-mel (the parity suite checks it).
    fft_n1 : int
        First-stage size of the four-step FFT (``n_fft = fft_n1 * n2``).
    mel_groups : int
        The FFT front-end projects onto the mel bands in this many groups, each
        over only the bins its bands cover (the same numbers as one dense matrix).
        4, not 8: onnxruntime-web 1.30's WebGPU backend returns wrong values for a
        ``Concat`` of 8 or more inputs, which joins the 8 groups' outputs (found by the
        parity suite's chromium-webgpu runner, first blamed on the groups' 16-column
        ``MatMul``s; the measured operator table pins it on ``Concat``).
    """

    sr: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    amin: float = 1e-10
    top_db: float = 80.0
    ref: str = "max_per_example"
    implementation: str = "conv2d"
    fft_n1: int = 64
    mel_groups: int = 4

    def __post_init__(self) -> None:
        if self.pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {self.pad_mode!r}")
        if self.window != "hann":
            raise ValueError(f"only the periodic 'hann' window is implemented, not {self.window!r}")
        if self.power != 2.0:
            raise ValueError(f"only power=2.0 (power spectrogram) is implemented, not {self.power}")
        if self.ref != "max_per_example":
            raise ValueError(f"only ref='max_per_example' is implemented, not {self.ref!r}")
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("n_fft, hop_length and n_mels must be positive")

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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "FrontendParams":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown front-end parameters: {sorted(unknown)}")
        return cls(**dict(data))


def labels_for(label_set: str) -> tuple[str, ...]:
    """Return the labels of ``label_set`` in logit order."""
    try:
        return tuple(LABEL_SETS[label_set])
    except KeyError:
        raise ValueError(
            f"unknown label set {label_set!r}; choose one of {sorted(LABEL_SETS)}"
        ) from None


def input_contract(frontend: FrontendParams | None = None) -> dict:
    """The input/output contract as plain data (for metadata and the manifest)."""
    frontend = frontend or FrontendParams()
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
            "formula": "x * sqrt(N * 10**(rms_level_db/10) / sum(x**2)); refuse when rms(x) < min_rms",
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
