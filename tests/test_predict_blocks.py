"""``predict`` on long files: read in blocks and classified in bounded batches, with the windows and numbers
of the whole file in memory (byte for byte), memory that does not grow with the file's length, and
segments (runs of one verdict or emotion) in its text output.  On the committed release's model."""
import numpy as np
import pytest
import soundfile as sf

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from ser_export.predict import Prediction, format_prediction, predict_file, segments
from tests.e2e import ROOT

MODEL = ROOT / "saved_models" / "voice_emotion_cnn.onnx"
N = 46305


@pytest.fixture(scope="module")
def recording():
    """~21 s at 22.05 kHz: speech, digital silence, noise and speech again, not a multiple of a window."""
    speaker = make_speakers(2, 9)[1]
    speech = np.concatenate([synthesize(speaker, e, clip_rng(9, 1, i, 0))
                             for i, e in enumerate(["angry", "sad", "happy", "neutral"])])
    noise = 0.1 * np.random.default_rng(0).standard_normal(50000)
    return np.concatenate([speech, np.zeros(2 * N + 3000), noise, speech[:70001]]).astype(np.float32)


def _write(path, y, sr, channels, subtype):
    import librosa

    y = librosa.resample(y, orig_sr=22050, target_sr=sr) if sr != 22050 else y
    frames = np.stack([y * (0.9 + 0.2 * c) for c in range(channels)], axis=1)
    sf.write(str(path), frames, sr, subtype=subtype)
    return path


def _same(a: Prediction, b: Prediction) -> None:
    assert a.to_dict() == b.to_dict()
    assert a.window_probabilities.tobytes() == b.window_probabilities.tobytes()   # NaN rows included
    assert (a.verdicts, a.window_starts_s, a.speech_fractions, a.ood_scores, a.duration_s) == \
        (b.verdicts, b.window_starts_s, b.speech_fractions, b.ood_scores, b.duration_s)
    assert a.probabilities.tobytes() == b.probabilities.tobytes()


@pytest.mark.parametrize("sr, channels, subtype", [(44100, 2, "PCM_16"), (16000, 1, "PCM_16"), (22050, 1, "FLOAT")])
def test_blocks_and_batches_give_the_whole_files_windows_and_numbers(tmp_path, recording, sr, channels, subtype):
    """Blocks of 1001 frames (hundreds of reads) and batches of 4 windows (the last batch of one window: the
    OOD score's BLAS kernel differs for one row) against the whole file in memory classified in one run."""
    path = _write(tmp_path / "talk.wav", recording, sr, channels, subtype)
    whole = predict_file(path, MODEL, block_frames=None, batch_windows=None)
    assert len(whole.verdicts) == 10 and {"silent", "no_speech", "classified"} <= set(whole.verdicts)
    assert sum(v != "silent" for v in whole.verdicts) % 4 == 1
    _same(predict_file(path, MODEL, block_frames=1001, batch_windows=4), whole)
    _same(predict_file(path, MODEL), whole)   # the defaults


def test_the_model_and_the_vad_run_in_batches_of_at_most_batch_windows(tmp_path, recording, monkeypatch):
    import ser_export.predict as predict
    import ser_export.vad as vad

    sizes = {"model": [], "vad": []}
    load = predict.load_session

    class Recorder:
        def __init__(self, session):
            self._s = session

        def __getattr__(self, name):
            return getattr(self._s, name)

        def run(self, names, feeds):
            sizes["model"].append(next(iter(feeds.values())).shape[0])
            return self._s.run(names, feeds)

    def recording_load(path):
        session, meta = load(path)
        return Recorder(session), meta

    frame_probabilities = vad.VoiceActivity.frame_probabilities

    def recording_frames(self, windows, sr):
        sizes["vad"].append(len(windows))
        return frame_probabilities(self, windows, sr)

    monkeypatch.setattr(predict, "load_session", recording_load)
    monkeypatch.setattr(vad.VoiceActivity, "frame_probabilities", recording_frames)
    path = _write(tmp_path / "talk.wav", recording, 22050, 1, "FLOAT")
    pred = predict_file(path, MODEL, batch_windows=4)
    kept = sum(v != "silent" for v in pred.verdicts)
    assert sizes["model"] == sizes["vad"] == [4] * (kept // 4) + ([kept % 4] if kept % 4 else [])
    sizes["model"].clear()
    predict_file(path, MODEL)   # the default bound: what the command runs
    assert sizes["model"] and max(sizes["model"]) <= predict.BATCH_WINDOWS <= 64


def test_memory_does_not_grow_with_the_length_of_the_file(tmp_path, monkeypatch):
    """tracemalloc's peak over predict on a 2-minute and an 8-minute 16 kHz file (silence with a noise burst
    every 15 s, so that the model and the VAD run), read with predict's default blocks and classified in
    batches of 4: the same within 2 MiB (the whole file in memory would add ~60 MiB).  The model and the
    VAD are loaded, and predict run once, before tracing (imports, and the 1 GiB buffer reserved to read
    a release file, are a larger, constant peak)."""
    import tracemalloc

    import ser_export.predict as predict
    import ser_export.vad as vad
    from ser_export.postprocess import postprocessing_of

    loaded = predict.load_session(MODEL)
    voice = vad.VoiceActivity(postprocessing_of(loaded[1]).vad, near=MODEL)
    monkeypatch.setattr(predict, "load_session", lambda path: loaded)
    monkeypatch.setattr(vad, "VoiceActivity", lambda params, near=None: voice)

    def write(minutes):
        path = tmp_path / f"{minutes}.wav"
        rng = np.random.default_rng(minutes)
        with sf.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(minutes * 4):
                block = np.zeros(15 * 16000, np.float32)
                block[:40000] = 0.1 * rng.standard_normal(40000)
                f.write(block)
        return path

    paths = {minutes: write(minutes) for minutes in (2, 8)}
    predict_file(paths[2], MODEL, batch_windows=4)
    peaks = []
    for minutes, path in paths.items():
        tracemalloc.start()
        pred = predict_file(path, MODEL, batch_windows=4)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert sum(v != "silent" for v in pred.verdicts) >= minutes * 4
    assert peaks[1] - peaks[0] < 2 << 20, f"peak {peaks[0] / 2**20:.1f} MiB at 2 min, {peaks[1] / 2**20:.1f} MiB at 8"


def _prediction(verdicts, tops, duration_s):
    labels = ("angry", "sad")
    probs = np.array([[np.nan, np.nan] if v == "silent" else [0.9, 0.1] if t == "angry" else [0.2, 0.8]
                      for v, t in zip(verdicts, tops)])
    return Prediction(labels=labels, probabilities=np.array([0.5, 0.5]), window_probabilities=probs,
                      window_starts_s=[round(i * 2.1, 3) for i in range(len(verdicts))], verdicts=verdicts,
                      speech_fractions=[None] * len(verdicts), ood_scores=[None] * len(verdicts),
                      duration_s=duration_s, window_s=2.1)


def test_segments_are_runs_of_one_emotion_or_verdict_ending_at_the_recording():
    pred = _prediction(["classified", "classified", "classified", "silent", "silent", "no_speech", "uncertain",
                        "classified"], ["angry", "angry", "sad", None, None, None, None, "sad"], 16.0)
    got = [(s.start_s, s.end_s, s.label, s.windows) for s in segments(pred)]
    assert got == [(0.0, 4.2, "angry", 2), (4.2, 6.3, "sad", 1), (6.3, 10.5, "silent", 2),
                   (10.5, 12.6, "no_speech", 1), (12.6, 14.7, "uncertain", 1), (14.7, 16.0, "sad", 1)]
    text = format_prediction("talk.wav", pred)
    assert text.endswith("  segments:\n"
                         "         0.0 -      4.2 s  angry  (2 windows)\n"
                         "         4.2 -      6.3 s  sad\n"
                         "         6.3 -     10.5 s  silent  (2 windows)\n"
                         "        10.5 -     12.6 s  no speech\n"
                         "        12.6 -     14.7 s  uncertain\n"
                         "        14.7 -     16.0 s  sad"), text
    assert "per window" not in text
