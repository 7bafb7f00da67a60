"""``python -m ser_export predict`` on good and bad files (through the real CLI)."""
import json
import re

import numpy as np
import pytest

from ser_export.data.synthetic import clip_rng, make_speakers, synthesize
from tests.conftest import write_wav
from tests.e2e import ROOT, run_cli


@pytest.fixture(scope="module")
def model(quick_release):
    return str(quick_release["out"] / "voice_emotion_cnn_resnet.onnx")


def test_long_stereo_44k_file_is_windowed(model, tmp_path):
    speaker = make_speakers(2, 9)[1]
    speech = np.concatenate([synthesize(speaker, e, clip_rng(9, 1, i, 0)) for i, e in enumerate(["angry", "sad"])])
    stereo = np.stack([speech, 0.5 * speech], axis=1)
    import librosa

    stereo44 = librosa.resample(stereo.T, orig_sr=22050, target_sr=44100).T
    path = write_wav(tmp_path / "talk.wav", stereo44, sr=44100, subtype="PCM_16")
    proc = run_cli("predict", str(path), "--model", model, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["windows"]) == 3  # 5.6 s -> two full windows and a 1.4 s tail
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    text = run_cli("predict", str(path), "--model", model)
    assert text.returncode == 0 and "segments:" in text.stdout and "per window" not in text.stdout


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"), ("empty", "empty"), ("corrupt", "not a readable audio file"),
    ("text", "not a readable audio file"), ("nan", "non-finite"), ("silent", "silent"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(model, tmp_path, case, message):
    path = tmp_path / "in.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40)
    elif case == "text":
        path.write_text("hello")
    elif case == "nan":
        write_wav(path, np.array([0.1, np.inf, np.nan] * 1000))
    elif case == "silent":
        write_wav(path, np.zeros(50000))
    proc = run_cli("predict", str(path), "--model", model)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_missing_or_bad_model(tmp_path):
    wav = write_wav(tmp_path / "a.wav", np.random.default_rng(0).standard_normal(30000) * 0.1)
    proc = run_cli("predict", str(wav), "--model", str(tmp_path / "none.onnx"))
    assert proc.returncode != 0 and "model file not found" in proc.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    proc = run_cli("predict", str(wav), "--model", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"error: {bad}: not an ONNX model (truncated or corrupt")


def test_model_outside_its_folder_is_refused(tmp_path):
    """predict reads a model through the same guard as verify: a symlink out of its folder, a
    directory, external data outside the model's folder."""
    import shutil

    import onnx

    from ser_export.export.model_file import ReleaseFileError, open_model

    release = tmp_path / "release"
    release.mkdir()
    (tmp_path / "outside.onnx").write_bytes(b"x")
    (release / "link.onnx").symlink_to(tmp_path / "outside.onnx")
    (release / "dir.onnx").mkdir()
    with pytest.raises(ReleaseFileError, match="is a symlink to .*outside"):
        open_model(release / "link.onnx")
    with pytest.raises(ReleaseFileError, match="is a directory"):
        open_model(release / "dir.onnx")
    shutil.copy(ROOT / "saved_models" / "voice_emotion_cnn.onnx", release / "m.onnx")
    model = onnx.load(str(release / "m.onnx"))
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../outside.onnx"
    onnx.save(model, str(release / "m.onnx"))
    wav = write_wav(tmp_path / "a.wav", np.random.default_rng(0).standard_normal(30000) * 0.1)
    proc = run_cli("predict", str(wav), "--model", str(release / "m.onnx"))
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: {release / 'm.onnx'}: external data of {t.name!r} ('../outside.onnx'): points outside the "
        f"model's folder")


@pytest.mark.parametrize("arch_file", ["voice_emotion_cnn.onnx", "voice_emotion_cnn_resnet.onnx"])
def test_noise_chord_and_clicks_are_no_speech_never_a_confident_emotion(quick_release, tmp_path, arch_file):
    from tests.nonspeech import write_nonspeech

    model = str(quick_release["out"] / arch_file)
    for name, path in write_nonspeech(tmp_path).items():
        proc = run_cli("predict", str(path), "--model", model, "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["speech"] is False and result["verdict"] == "no_speech" and result["top"] is None, name
        assert result["probabilities"] is None and len(result["no_speech_windows_start_s"]) == 2, name
        assert all(w["probabilities"] is None and w["top"] is None for w in result["windows"]), name
        text = run_cli("predict", str(path), "--model", model)
        assert text.returncode == 0 and "no speech detected" in text.stdout, (name, text.stdout)


def test_a_long_file_says_which_windows_were_skipped(model, tmp_path):
    from tests.nonspeech import nonspeech_waves

    speaker = make_speakers(2, 9)[0]
    speech = np.concatenate([synthesize(speaker, e, clip_rng(9, 0, i, 1)) for i, e in enumerate(["happy", "sad"])])
    y = np.concatenate([0.2 * speech[:2 * 46305], np.zeros(46305), nonspeech_waves()["white_noise"][:46305]])
    path = write_wav(tmp_path / "mixed.wav", y, sr=22050, subtype="FLOAT")
    result = json.loads(run_cli("predict", str(path), "--model", model, "--json").stdout)
    verdicts = [w["verdict"] for w in result["windows"]]
    assert verdicts[2:] == ["silent", "no_speech"], verdicts
    assert result["silent_windows_start_s"] == [4.2] and result["no_speech_windows_start_s"] == [6.3]
    assert result["speech"] is True and all(v in ("classified", "uncertain") for v in verdicts[:2])
    assert result["calibrated"] is True
    text = run_cli("predict", str(path), "--model", model).stdout
    assert "skipped: 1 silent, 1 without speech" in text, text
    assert re.search(r"\n +4\.2 - +6\.3 s  silent\n +6\.3 - +8\.4 s  no speech$", text), text


@pytest.mark.parametrize("variant", ["fp16", "int8"])
def test_a_variant_gives_the_parents_decisions_within_its_class(quick_release, tmp_path, variant):
    from ser_export import tolerances

    speaker = make_speakers(2, 0)[1]
    y = np.concatenate([synthesize(speaker, e, clip_rng(9, 1, i, 0)) for i, e in enumerate(("happy", "sad", "angry"))])
    wav = write_wav(tmp_path / "a.wav", y)
    parent = run_cli("predict", str(wav), "--model", str(quick_release["out"] / "voice_emotion_cnn.onnx"), "--json")
    child = run_cli("predict", str(wav), "--model", str(quick_release["out"] / "voice_emotion_cnn.onnx"),
                    "--variant", variant, "--json")
    assert parent.returncode == 0 and child.returncode == 0, child.stderr
    a, b = json.loads(parent.stdout), json.loads(child.stdout)
    assert [w["start_s"] for w in a["windows"]] == [w["start_s"] for w in b["windows"]]
    bound = tolerances.for_class(variant)["logits_max_abs"]
    for wa, wb in zip(a["windows"], b["windows"]):
        if wa["probabilities"] and wb["probabilities"]:
            keys = sorted(wa["probabilities"])
            pa, pb = (np.array([w["probabilities"][k] for k in keys]) for w in (wa, wb))
            assert np.abs(pa - pb).max() <= bound  # calibrated probabilities move less than logits


def test_a_missing_variant_is_one_line(tmp_path, quick_release):
    import shutil

    shutil.copy(quick_release["out"] / "voice_emotion_cnn.onnx", tmp_path / "m.onnx")
    wav = write_wav(tmp_path / "a.wav", np.random.default_rng(0).normal(0, 0.1, 22050 * 3))
    proc = run_cli("predict", str(wav), "--model", str(tmp_path / "m.onnx"), "--variant", "int8")
    assert proc.returncode != 0 and "no int8 variant beside m.onnx" in proc.stderr and len(proc.stderr.splitlines()) == 1
