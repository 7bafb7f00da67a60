"""The build's data (:func:`ser_export.data.gather.gather_data`): the synthetic corpus when no corpus is given,
else every given corpus scanned, in name order, with one summary line each."""
import numpy as np

from ser_export.contract import labels_for
from ser_export.data import synthetic
from ser_export.data.gather import gather_data
from tests.conftest import write_wav

LABELS = labels_for("emotions7")


def test_no_corpus_gives_the_synthetic_one_described():
    spec = synthetic.SyntheticCorpusSpec(n_speakers=2, takes=1, labels=("neutral", "happy"), seed=3)
    got = gather_data({}, ("neutral", "happy"), "emotions7", spec)
    assert len(got.utterances) == 4 and len(got.speakers) == 2 and got.reports == {}
    assert got.description == {
        "name": f"ser_export synthetic emotional speech (synthesis v{synthetic.SYNTH_VERSION}, 2 speakers x 2 "
                f"emotions x 1 takes)",
        "synthetic": True, "spec": {"n_speakers": 2, "takes": 1, "seed": 3, "synth_version": synthetic.SYNTH_VERSION}}


def test_corpora_are_scanned_in_name_order_with_a_line_each(tmp_path):
    for actor in ("01", "02"):
        write_wav(tmp_path / "ravdess" / f"Actor_{actor}" / f"03-01-05-01-01-01-{actor}.wav", np.full(100, 0.1),
                  subtype="PCM_16")
    for name in ("03a05Wa.wav", "08a01Fa.wav"):
        write_wav(tmp_path / "emodb" / name, np.full(100, 0.1), subtype="PCM_16")
    lines = []
    got = gather_data({"ravdess": str(tmp_path / "ravdess"), "emodb": str(tmp_path / "emodb")}, LABELS,
                      "emotions7", synthetic.SyntheticCorpusSpec(), progress=False, log=lines.append)
    assert got.description == {"name": "emodb + ravdess", "synthetic": False} and got.speakers == {}
    assert list(got.reports) == ["emodb", "ravdess"] and [line.split(":")[0] for line in lines] == ["emodb", "ravdess"]
    assert [u.corpus for u in got.utterances] == ["emodb", "emodb", "ravdess", "ravdess"]
    assert sum(r.used for r in got.reports.values()) == 4
