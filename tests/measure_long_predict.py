"""Figures of ``predict`` on a long file: maximum RSS and wall time (``/usr/bin/time -v``).

A ``--minutes``-long 44.1 kHz stereo 16-bit WAV is generated in a temporary folder (written block by
block: speech of several emotions, pauses of digital silence and noise, repeated), then

- ``python -m ser_export predict FILE --json``: the file read in blocks, the windows classified in
  batches (what the command does), and, with ``--whole-file``,
- the same through ``predict_file(FILE, block_frames=None, batch_windows=None)``: the whole file in
  memory and every window in one run (what ``predict`` did before it read in blocks),

each under ``/usr/bin/time -v``; the two JSON outputs are compared.  ``--check-windows`` also compares
the SHA-256 of every model window (start and samples) read block by block with that of
``model_windows(load_audio(FILE))``, without the model (a few GB for an hour).  The file is deleted at the end.

    python -m tests.measure_long_predict --minutes 10 --whole-file
    python -m tests.measure_long_predict --minutes 60 --check-windows

Timing figures go to the console and the docs, never into a test's assertion.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WHOLE = ("import json, sys; from ser_export.predict import predict_file; "
         "p = predict_file(sys.argv[1], block_frames=None, batch_windows=None); "
         "print(json.dumps({'file': sys.argv[1], **p.to_dict()}, indent=2))")


def pattern_44k_stereo() -> np.ndarray:
    """~31 s of 44.1 kHz stereo frames (n, 2): speech, a pause, speech, noise, speech."""
    import librosa

    from ser_export.data.synthetic import clip_rng, make_speakers, synthesize

    speakers = make_speakers(2, 9)
    parts = []
    for i, emotion in enumerate(["angry", "sad", "happy", "neutral", "fearful", "surprised"]):
        parts.append(0.3 * synthesize(speakers[i % 2], emotion, clip_rng(9, i % 2, i, 0)))
        parts.append(np.zeros(22050 * (i % 3)) if i % 2 else 0.02 * np.random.default_rng(i).standard_normal(11025))
    y = librosa.resample(np.concatenate(parts).astype(np.float32), orig_sr=22050, target_sr=44100)
    return np.stack([y, 0.7 * y], axis=1).astype(np.float32)


def write_wav(path: Path, minutes: float) -> None:
    import soundfile as sf

    block = pattern_44k_stereo()
    total = int(minutes * 60 * 44100)
    with sf.SoundFile(str(path), "w", 44100, 2, subtype="PCM_16") as f:
        written = 0
        while written < total:
            part = block[:total - written]
            f.write(part)
            written += part.shape[0]


def timed(cmd: list[str], out: Path) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` with stdout to ``out``: max RSS (MiB) and wall seconds."""
    with open(out, "w") as stdout:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=stdout, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = int(wall.group(1) or 0), int(wall.group(2)), float(wall.group(3))
    return {"max_rss_mib": rss / 1024, "wall_s": 3600 * h + 60 * m + s}


def window_digests(wav: Path) -> tuple[str, str]:
    """SHA-256 of the release model's windows of ``wav``: block by block, and from the whole file."""
    import hashlib

    from ser_export.audio import load_audio, model_windows
    from ser_export.longaudio import BlockWindows
    from ser_export.predict import default_model_path, load_session

    meta = load_session(default_model_path())[1]
    sr, n, norm = int(meta["sample_rate"]), int(meta["input_length"]), meta["normalization"]

    def digest(items) -> str:
        h = hashlib.sha256()
        for start, window in items:
            h.update(str(start).encode())
            h.update(b"silent" if window is None else window.tobytes())
        return h.hexdigest()

    blocks = digest(BlockWindows(wav, sr, n, norm["rms_level_db"], norm["min_rms"]))
    starts, windows = model_windows(load_audio(wav, sr), n, norm["rms_level_db"], norm["min_rms"])
    return blocks, digest(zip(starts, windows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--whole-file", action="store_true", help="also measure the whole file in memory")
    ap.add_argument("--check-windows", action="store_true", help="compare the windows with the whole file's")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="long_predict_") as tmp:
        wav = Path(tmp) / f"long_{args.minutes:g}min_44k_stereo.wav"
        write_wav(wav, args.minutes)
        print(f"{wav.name}: {wav.stat().st_size / 1e6:.0f} MB")
        runs = {"blocks": timed([sys.executable, "-m", "ser_export", "predict", str(wav), "--json"],
                                Path(tmp) / "blocks.json")}
        if args.whole_file:
            runs["whole file"] = timed([sys.executable, "-c", WHOLE, str(wav)], Path(tmp) / "whole.json")
        results = {k: json.loads((Path(tmp) / f"{k.split()[0]}.json").read_text()) for k in runs}
        n = len(results["blocks"]["windows"])
        for name, fig in runs.items():
            print(f"{name:>10}: max RSS {fig['max_rss_mib']:7.0f} MiB, wall {fig['wall_s']:6.1f} s ({n} windows)")
        if args.whole_file:
            print(f"same JSON: {results['blocks'] == results['whole file']}")
        if args.check_windows:
            blocks, whole = window_digests(wav)
            print(f"windows' SHA-256: {blocks[:16]}... block by block, {whole[:16]}... whole file: "
                  f"{'the same' if blocks == whole else 'DIFFERENT'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
