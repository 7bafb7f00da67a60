"""Corpus loaders on tiny generated fixture trees named by each corpus's convention."""
import numpy as np
import pytest

from ser_export.contract import labels_for
from ser_export.data.corpora import parse_data_args, scan_corpus
from ser_export.errors import DataError
from tests.conftest import write_wav


def _touch_wavs(root, names):
    for name in names:
        write_wav(root / name, np.full(100, 0.1), subtype="PCM_16")


@pytest.fixture
def ravdess(tmp_path):
    root = tmp_path / "ravdess"
    names = []
    for actor in ("01", "02", "03"):
        for emo in ("01", "02", "03", "04", "05", "06", "07", "08"):
            names.append(f"Actor_{actor}/03-01-{emo}-01-01-01-{actor}.wav")
    names += ["Actor_01/03-02-05-01-01-01-01.wav",   # song: not used
              "Actor_01/01-01-05-01-01-01-01.wav",   # video: not used
              "Actor_02/03-01-05-01-01-01-01.wav",   # actor 01 in Actor_02: broken
              "Actor_01/readme.txt"]
    _touch_wavs(root, [n for n in names if n.endswith(".wav")])
    (root / "Actor_01" / "readme.txt").write_text("hi")
    return root


def test_ravdess_mapping_7_and_8(ravdess):
    utts, report = scan_corpus("ravdess", ravdess, labels_for("emotions7"), "emotions7")
    assert report.used == 24 and len(utts) == 24
    labels = sorted({u.label for u in utts})
    assert labels == sorted(labels_for("emotions7"))
    assert sum(u.label == "neutral" for u in utts) == 6  # calm merged into neutral
    assert {u.speaker for u in utts} == {"01", "02", "03"}
    assert {u.sex for u in utts if u.speaker == "01"} == {"male"}
    assert report.by_reason() == {"name breaks the convention": 1, "not .wav/.flac": 1,
                                  "not used by the convention (song, video or skipped emotion)": 2}
    assert report.files == 28 and report.used == 24
    broken = [s for s in report.skipped if s.reason == "name breaks the convention"]
    assert broken[0].file == "Actor_02/03-01-05-01-01-01-01.wav"
    assert broken[0].detail == "actor 01 in the name but the folder is Actor_02"
    utts8, _ = scan_corpus("ravdess", ravdess, labels_for("ravdess8"), "ravdess8")
    assert sum(u.label == "calm" for u in utts8) == 3 and sum(u.label == "neutral" for u in utts8) == 3


def test_emodb(tmp_path):
    names = ["03a01Fa.wav", "03a01Wa.wav", "08b02Lb.wav", "10a05Ea.wav", "11a02Ab.wav", "13a01Ta.wav",
             "16b10Nc.wav"]
    _touch_wavs(tmp_path, names)
    utts, _ = scan_corpus("emodb", tmp_path, labels_for("emotions7"), "emotions7")
    got = {u.source.rsplit("/", 1)[1]: (u.speaker, u.label) for u in utts}
    assert got["03a01Fa.wav"] == ("03", "happy")
    assert got["03a01Wa.wav"] == ("03", "angry")
    assert got["08b02Lb.wav"] == ("08", "neutral")  # boredom -> neutral
    assert got["10a05Ea.wav"][1] == "disgusted" and got["11a02Ab.wav"][1] == "fearful"
    assert got["13a01Ta.wav"][1] == "sad" and got["16b10Nc.wav"][1] == "neutral"


def test_tess(tmp_path):
    names = ["OAF_back_angry.wav", "OAF_dog_ps.wav", "YAF_chair_fear.wav", "YAF_food_disgust.wav",
             "YAF_late_pleasant_surprised.wav", "OAF_bone_happy.wav"]
    _touch_wavs(tmp_path / "TESS", names)
    utts, _ = scan_corpus("tess", tmp_path, labels_for("emotions7"), "emotions7")
    got = {u.source.rsplit("/", 1)[1]: (u.speaker, u.label) for u in utts}
    assert got["OAF_dog_ps.wav"] == ("OAF", "surprised")
    assert got["YAF_chair_fear.wav"] == ("YAF", "fearful")
    assert got["YAF_food_disgust.wav"][1] == "disgusted"
    assert got["YAF_late_pleasant_surprised.wav"][1] == "surprised"


def test_jl(tmp_path):
    names = ["female1_angry_1a_1.wav", "male2_anxious_3b_2.wav", "female2_excited_1a_1.wav",
             "male1_apologetic_1a_1.wav", "male1_sad_10a_2.wav"]
    _touch_wavs(tmp_path, names)
    utts, report = scan_corpus("jl", tmp_path, labels_for("emotions7"), "emotions7")
    got = {u.source.rsplit("/", 1)[1]: (u.speaker, u.label) for u in utts}
    assert got == {"female1_angry_1a_1.wav": ("female1", "angry"), "male2_anxious_3b_2.wav": ("male2", "fearful"),
                   "female2_excited_1a_1.wav": ("female2", "surprised"), "male1_sad_10a_2.wav": ("male1", "sad")}
    assert [(s.file, s.reason) for s in report.skipped] == [
        ("male1_apologetic_1a_1.wav", "not used by the convention (song, video or skipped emotion)")]


def test_wrong_corpus_for_directory_is_a_clear_error(tmp_path):
    _touch_wavs(tmp_path, ["OAF_back_angry.wav"])
    with pytest.raises(DataError, match="ravdess: no usable audio files.*03-01-EE"):
        scan_corpus("ravdess", tmp_path, labels_for("emotions7"), "emotions7")


def test_missing_directory_and_unknown_corpus(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_corpus("tess", tmp_path / "nope", labels_for("emotions7"), "emotions7")
    with pytest.raises(DataError, match="unknown corpus"):
        scan_corpus("savee", tmp_path, labels_for("emotions7"), "emotions7")


def test_parse_data_args():
    assert parse_data_args(["ravdess=/a", "TESS=/b"]) == {"ravdess": "/a", "tess": "/b"}
    for bad, msg in (["ravdess"], "CORPUS=PATH"), (["foo=/x"], "unknown corpus"), (["jl=/a", "jl=/b"], "twice"):
        with pytest.raises(DataError, match=msg):
            parse_data_args(bad)


def test_unusable_audio_is_skipped_with_its_reason_per_file(tmp_path, rng):
    """Truncated, silent, NaN and non-audio files among good ones: listed one by one, not fatal."""
    good = ["03a01Fa.wav", "03a02Wa.wav"]
    _touch_wavs(tmp_path, good)
    full = write_wav(tmp_path / "full.wav", rng.uniform(-0.5, 0.5, 4000), sr=16000, subtype="PCM_16").read_bytes()
    (tmp_path / "full.wav").unlink()
    (tmp_path / "08a01Fa.wav").write_bytes(full[:3000])                      # truncated
    write_wav(tmp_path / "09a01Fa.wav", np.zeros(4000), sr=16000, subtype="PCM_16")  # silent
    write_wav(tmp_path / "10a01Fa.wav", np.array([0.1, np.nan] * 500), sr=16000)  # NaN
    (tmp_path / "11a01Fa.wav").write_text("not audio")                        # not audio
    utts, report = scan_corpus("emodb", tmp_path, labels_for("emotions7"), "emotions7")
    assert sorted(u.source.rsplit("/", 1)[1] for u in utts) == good
    reasons = {s.file: (s.reason, s.detail) for s in report.skipped}
    assert reasons["08a01Fa.wav"][0] == "truncated" and "declares 8000 bytes" in reasons["08a01Fa.wav"][1]
    assert reasons["09a01Fa.wav"] == ("silent", "RMS 0 < 1e-06")
    assert reasons["10a01Fa.wav"][0] == "non-finite samples"
    assert reasons["11a01Fa.wav"][0] == "unreadable audio"
    assert report.to_dict()["skipped_by_reason"] == {"non-finite samples": 1, "silent": 1, "truncated": 1,
                                                     "unreadable audio": 1}


def test_a_corpus_of_silent_files_is_a_one_line_error(tmp_path):
    for name in ("03a01Fa.wav", "08a01Wa.wav"):
        write_wav(tmp_path / name, np.zeros(4000), sr=16000, subtype="PCM_16")
    with pytest.raises(DataError) as info:
        scan_corpus("emodb", tmp_path, labels_for("emotions7"), "emotions7")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"emodb: no usable audio files under {tmp_path}")
    assert "skipped 2 silent; e.g. 03a01Fa.wav: silent (RMS 0 < 1e-06)" in message


def test_an_empty_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match=r"^jl: no usable audio files under .* \(no files found\)$"):
        scan_corpus("jl", tmp_path, labels_for("emotions7"), "emotions7")
