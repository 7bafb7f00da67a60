"""verify's stream options (--streams, --stream-seconds, --long-seconds) and the check that a stream check
compares something: one runner alone, or no stream at all, is "could not check" (exit 2), never a pass."""
import os
from pathlib import Path

import pytest
import silero_vad

from parity.stream_check import StreamCheck
from ser_export.cli import _stream_check, build_parser, main
from tests.e2e import ROOT

DATA = Path(os.path.dirname(silero_vad.__file__)) / "data"
CONTRACT = ROOT / "parity" / "contracts" / "silero_vad.toml"


def _verify_args(*extra: str):
    return build_parser().parse_args(["verify", str(DATA / "silero_vad.onnx"), "--contract", str(CONTRACT), *extra])


def test_the_options_not_given_are_the_stream_checks_defaults():
    got, default = _stream_check(_verify_args()), StreamCheck()
    assert (got.streams, got.seconds, got.long_seconds) == (default.streams, default.seconds, default.long_seconds)
    got = _stream_check(_verify_args("--streams", "3", "--stream-seconds", "10", "--long-seconds", "0"))
    assert (got.streams, got.seconds, got.long_seconds) == (3, (10.0, 10.0), None)
    assert _stream_check(_verify_args("--stream-seconds", "0.5,2.5")).seconds == (0.5, 2.5)


@pytest.mark.parametrize("value", ["4,1", "0", "-1", "a,b", "1,2,3", "", "1,4000"])
def test_a_wrong_stream_seconds_is_one_line_naming_the_option(value, capsys):
    assert main(["verify", str(DATA / "silero_vad.onnx"), "--contract", str(CONTRACT), "--stream-seconds",
                 value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --stream-seconds {value!r}: expected MIN,MAX (or one length) in seconds, 0 < MIN <= MAX"]


@pytest.mark.parametrize("option, value, line", [
    ("--streams", "0", "--streams 0: at least 1 stream is needed"),
    ("--streams", "-3", "--streams -3: at least 1 stream is needed"),
    ("--long-seconds", "-5", "--long-seconds -5: expected seconds > 0 (0: no long stream)")])
def test_no_stream_to_check_is_refused_in_one_line(option, value, line, capsys):
    assert main(["verify", str(DATA / "silero_vad.onnx"), "--contract", str(CONTRACT), option, value]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {line}"]
    with pytest.raises(ValueError, match="at least 1 stream" if option == "--streams" else "expected a positive"):
        StreamCheck(streams=int(value)) if option == "--streams" else StreamCheck(long_seconds=float(value))


def test_the_baseline_alone_is_not_a_pass(capsys):
    """No --torch and one runtime: the baseline is the only runner, no stage could be judged."""
    code = main(["verify", str(DATA / "silero_vad.onnx"), "--contract", str(CONTRACT), "--runtimes",
                 "onnxruntime-python", "--streams", "1", "--long-seconds", "0"])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.strip().splitlines() == [
        "error: only onnxruntime-python can run streams: nothing to compare it with (name --torch "
        "FILE or a second runtime): not checked"], err
    assert "PASSED" not in out
