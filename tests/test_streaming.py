"""ser_export.streaming: the chunking rule every Python runner uses (the edges: an empty stream, a stream of
exactly one chunk, a bad chunk or context)."""
import numpy as np
import pytest

from ser_export.streaming import n_chunks, stream_windows


def test_an_empty_stream_is_one_chunk_of_zeros():
    assert n_chunks(0, 512) == 1
    w = stream_windows(np.zeros(0, np.float32), 512, 64)
    assert w.shape == (1, 576) and w.dtype == np.float32 and not w.any()


def test_windows_carry_the_context_and_pad_the_last_chunk():
    y = np.arange(1, 1025, dtype=np.float32)  # exactly two chunks: no padded third
    w = stream_windows(y, 512, 64)
    assert w.shape == (2, 576) and n_chunks(1024, 512) == 2 and n_chunks(1025, 512) == 3
    assert not w[0, :64].any() and np.array_equal(w[1, :64], y[448:512]) and np.array_equal(w[1, 64:], y[512:])
    assert np.array_equal(stream_windows(y[:700], 512, 0)[1], np.r_[y[512:700], np.zeros(324, np.float32)])


@pytest.mark.parametrize("chunk", [0, -512])
def test_a_chunk_that_is_not_positive_is_refused(chunk):
    with pytest.raises(ValueError, match=f"^chunk must be positive, got {chunk}$"):
        stream_windows(np.ones(10, np.float32), chunk, 0)


def test_a_negative_context_is_refused():
    with pytest.raises(ValueError, match="^context must be >= 0, got -1$"):
        stream_windows(np.ones(10, np.float32), 512, -1)
