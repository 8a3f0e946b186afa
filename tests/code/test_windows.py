"""Model windows cover real audio only: no padding to the training length."""

from __future__ import annotations

import numpy as np
import pytest

from genreflow.audio.decode import normalise_loudness
from genreflow.core.errors import GenreflowError
from genreflow.kinds.logmel import segment_windows, whole_windows


def _spec(frames: int) -> np.ndarray:
    return np.tile(np.arange(frames, dtype=np.float32), (3, 1))  # value = frame index


def test_segments_cover_every_real_frame_and_end_aligned():
    w = segment_windows(_spec(25), width=10, hop=5)
    starts = [int(x[0, 0]) for x in w]
    assert starts == [0, 5, 10, 15]  # 15 + 10 == 25: the last window ends at the last frame
    w = segment_windows(_spec(28), width=10, hop=5)
    assert [int(x[0, 0]) for x in w] == [0, 5, 10, 15, 18]  # one more, aligned to the end
    assert all(x.max() < 28 for x in w)  # nothing but real frames
    w = segment_windows(_spec(26), width=10, hop=5)  # 1 frame left: the training windows
    assert [int(x[0, 0]) for x in w] == [0, 5, 10, 15]
    with pytest.raises(GenreflowError, match="fewer than one 10-frame window"):
        segment_windows(_spec(9), width=10, hop=5)


def test_whole_clip_windows_tile_a_short_signal_and_split_a_long_one():
    short = whole_windows(_spec(4), width=10)
    assert short.shape == (1, 3, 10)
    assert list(short[0, 0]) == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # repeated, never silence
    long = whole_windows(_spec(25), width=10)
    assert [int(x[0, 0]) for x in long] == [0, 10, 15]
    # a clip a few frames longer than the training length gets the training window only
    assert [int(x[0, 0]) for x in whole_windows(_spec(12), width=10)] == [0]


def test_loudness_normalisation_makes_gain_irrelevant():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(22050)).astype(np.float32)
    quiet = y * 10 ** (-12 / 20)  # 12 dB quieter
    assert np.allclose(normalise_loudness(y), normalise_loudness(quiet), atol=1e-6)
    rms = np.sqrt(np.mean(normalise_loudness(y) ** 2))
    assert 20 * np.log10(rms) == pytest.approx(-20.0, abs=1e-3)
    silence = np.zeros(100, np.float32)
    assert np.array_equal(normalise_loudness(silence), silence)
