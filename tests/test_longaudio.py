"""ser_export.longaudio: a recording read, resampled and cut block by block is the whole file's, byte for byte,
with the same refusals, in memory that does not grow with the recording's length."""
import numpy as np
import pytest
import soundfile as sf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ser_export.audio import WindowCutter, load_audio, model_windows, windows
from ser_export.errors import AudioError
from ser_export.longaudio import BlockWindows, MonoBlocks, StreamResampler

N = 46305  # the release's window, samples at 22050 Hz


def _signal(rng, n_frames, channels):
    t = np.arange(n_frames)[:, None] / 8000.0
    y = 0.3 * np.sin(2 * np.pi * (180 + 40 * np.arange(channels)) * t) + 0.05 * rng.standard_normal((n_frames, channels))
    y[n_frames // 3: n_frames // 3 + n_frames // 5] = 0.0   # digital silence: some windows are None
    return y.astype(np.float32)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       fmt=st.sampled_from([(44100, 2, "PCM_16", "wav"), (16000, 1, "PCM_16", "wav"), (22050, 1, "FLOAT", "wav"),
                            (8000, 1, "PCM_16", "flac"), (48000, 3, "PCM_24", "wav")]),
       seconds=st.floats(0.05, 7.0), n_blocks=st.integers(1, 60))
@example(seed=0, fmt=(44100, 2, "PCM_16", "wav"), seconds=5.0 + 123 / 44100, n_blocks=221)
@example(seed=1, fmt=(8000, 1, "PCM_16", "flac"), seconds=3.0 + 7 / 8000, n_blocks=47)  # soxr one short: padded
def test_block_windows_are_the_whole_files_byte_for_byte(tmp_path_factory, seed, fmt, seconds, n_blocks):
    sr_file, channels, subtype, ext = fmt
    n_frames = max(1, int(seconds * sr_file))
    block_frames = n_frames // n_blocks + 1   # n_blocks reads, the last one partial
    path = tmp_path_factory.mktemp("blocks") / f"a.{ext}"
    sf.write(str(path), _signal(np.random.default_rng(seed), n_frames, channels), sr_file, subtype=subtype)
    y = load_audio(path, sr=22050)
    blocks = MonoBlocks(path, 22050, block_frames=block_frames)
    got = list(blocks)
    assert np.concatenate(got).tobytes() == y.tobytes() and blocks.n_samples == y.size
    starts, ref = model_windows(y, N, 0.0, 1e-4)
    source = BlockWindows(path, 22050, N, 0.0, 1e-4, block_frames=block_frames)
    out = list(source)
    assert [s for s, _ in out] == starts and source.n_samples_total == y.size
    for (_, a), b in zip(out, ref):
        assert (a is None and b is None) or (a is not None and b is not None and a.tobytes() == b.tobytes())


@settings(max_examples=25, deadline=None)
@given(rates=st.sampled_from([(44100, 22050), (8000, 22050), (48000, 22050), (22050, 16000), (44101, 22050)]),
       n=st.integers(0, 30000), cuts=st.lists(st.integers(0, 30000), max_size=6))
def test_the_stream_resampler_is_librosa_on_the_whole_signal(rates, n, cuts):
    import librosa

    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    ref = librosa.resample(x, orig_sr=rates[0], target_sr=rates[1], res_type="soxr_hq") if n else np.zeros(0)
    r = StreamResampler(*rates)
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    parts = [r.process(x[a:b]) for a, b in zip(bounds, bounds[1:])] + [r.process(np.zeros(0, np.float32), last=True)]
    got = np.concatenate(parts)
    assert got.dtype == np.float32 and got.size == int(np.ceil(n * rates[1] / rates[0])) == r.n_out
    assert got.tobytes() == np.asarray(ref, np.float32).tobytes()


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 5 * 97), size=st.integers(1, 97), cuts=st.lists(st.integers(0, 5 * 97), max_size=8))
def test_the_window_cutter_fed_in_pieces_is_the_windows_rule(n, size, cuts):
    y = np.arange(1, n + 1, dtype=np.float32)
    cutter = WindowCutter(size)
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    got = [w for a, b in zip(bounds, bounds[1:]) for w in cutter.feed(y[a:b])] + cutter.finish()
    ref = []
    for i, start in enumerate(range(0, max(n, 1), size)):   # the rule as windows() stated it before the cutter
        chunk = y[start:start + size]
        if chunk.size < size and i > 0 and chunk.size < 0.25 * size:
            break
        ref.append((start, np.pad(chunk, (0, size - chunk.size))))
    assert [s for s, _ in got] == [s for s, _ in ref] == [s for s, _ in windows(y, size)]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, ref))


def _error(fn):
    try:
        fn()
    except AudioError as exc:
        return str(exc)
    raise AssertionError("no AudioError")


@pytest.mark.parametrize("case", ["missing", "empty", "directory", "text", "corrupt", "truncated", "no_samples",
                                  "nan_late", "nan_first_block"])
def test_block_reading_refuses_what_the_whole_file_refuses_with_the_same_line(tmp_path, case):
    path = tmp_path / "in.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40)
    elif case == "truncated":
        sf.write(str(path), np.full(5000, 0.1), 22050, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:-1000])
    elif case == "no_samples":
        sf.write(str(path), np.zeros((0, 1)), 22050, subtype="PCM_16")
    elif case.startswith("nan"):
        y = np.full((9000, 2), 0.1)
        at = 7001 if case == "nan_late" else 3
        y[at, 1], y[at + 500, 0], y[8999] = np.nan, np.inf, np.nan
        sf.write(str(path), y, 44100, subtype="FLOAT")
    whole = _error(lambda: load_audio(path))
    blocks = _error(lambda: list(BlockWindows(path, block_frames=1000)))
    assert blocks == whole and str(path) in whole


def test_a_file_with_nan_late_gives_no_window_before_refusing(tmp_path):
    """The NaN is found before any sample of its block is cut into a window; the windows before it are finite."""
    y = np.full(90000, 0.1)
    y[80000] = np.nan
    path = tmp_path / "late.wav"
    sf.write(str(path), y, 22050, subtype="FLOAT")
    got = []
    with pytest.raises(AudioError, match="1 non-finite samples .* at frame 80000"):
        for item in BlockWindows(path, block_frames=4096):
            got.append(item)
    assert len(got) == 1 and np.all(np.isfinite(got[0][1]))


def test_memory_does_not_grow_with_the_length_of_the_file(tmp_path):
    """tracemalloc's peak over reading, resampling and cutting a 2-minute and an 8-minute 44.1 kHz stereo file
    with 4096-frame blocks: the same within 1 MiB (the whole file in memory would add ~130 MiB)."""
    import tracemalloc

    def write(minutes):
        path = tmp_path / f"{minutes}.wav"
        rng = np.random.default_rng(minutes)
        with sf.SoundFile(str(path), "w", 44100, 2, subtype="PCM_16") as f:
            for _ in range(minutes * 6):
                f.write(0.1 * rng.standard_normal((441000, 2)).astype(np.float32))
        return path

    peaks = []
    for minutes in (2, 8):
        path = write(minutes)
        tracemalloc.start()
        n = sum(1 for _ in BlockWindows(path, block_frames=4096))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        full, tail = divmod(minutes * 60 * 22050, N)
        assert n == full + (tail >= N / 4)
        path.unlink()
    assert peaks[1] - peaks[0] < 1 << 20, f"peak {peaks[0] / 2**20:.1f} MiB at 2 min, {peaks[1] / 2**20:.1f} MiB at 8"
