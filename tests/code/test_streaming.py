"""Block-wise decoding and the streamed front-end give what the whole-signal paths give."""

import threading

import numpy as np
import pytest

from genreflow.audio.decode import AudioStream, decode, read_ahead, resample
from genreflow.audio.spectrum import (
    AMIN_DB,
    FLOOR_DB,
    LogMelStream,
    clip_log_mel,
    mel_basis,
    power_spectrogram,
    signal_log_mel,
)
from genreflow.core.config import FeaturesConfig


def _reference_db(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """The log-mel of the whole signal without the stream: power, filter bank, dB."""
    power = power_spectrogram(y, cfg.n_fft, cfg.hop_length)
    mel = np.asarray(mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power)
    return np.maximum(10 * np.log10(np.maximum(mel, 1e-30)), AMIN_DB)


def _cuts(n: int, sizes: list[int]) -> list[int]:
    """Block boundaries for a signal of ``n`` samples, cycling through ``sizes``."""
    out, at, i = [0], 0, 0
    while at < n:
        at = min(n, at + sizes[i % len(sizes)])
        out.append(at)
        i += 1
    return out


@pytest.mark.parametrize("samples", [1, 100, 2047, 2048, 2049, 22050 + 17])
@pytest.mark.parametrize("sizes", [[1 << 20], [1], [0, 2048, 1, 511], [513, 4096, 7]])
def test_log_mel_stream_does_not_depend_on_the_cuts(samples, sizes):
    cfg = FeaturesConfig()
    y = (0.2 * np.random.default_rng(samples).standard_normal(samples)).astype(np.float32)
    if sizes == [1] and samples > 4096:
        sizes = [1, 3, 5000]  # sample by sample only at the start: keep the test fast
    stream = LogMelStream(cfg)
    bounds = _cuts(samples, sizes)
    for a, b in zip(bounds, bounds[1:], strict=False):
        stream.feed(y[a:b])
    got = stream.finish()
    ref = _reference_db(y, cfg)
    assert got.shape == ref.shape == (cfg.n_mels, 1 + samples // cfg.hop_length)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    assert stream.samples == samples


def test_loudness_is_an_offset_measured_on_the_real_signal():
    cfg = FeaturesConfig(clip_seconds=3.0)
    t = np.arange(2 * cfg.sample_rate) / cfg.sample_rate
    y = (0.1 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    full = signal_log_mel(y, cfg)
    np.testing.assert_allclose(signal_log_mel(0.25 * y, cfg), full, atol=1e-3)  # 12 dB quieter
    clip = clip_log_mel(y, cfg)
    assert clip.shape == (cfg.n_mels, cfg.clip_frames)
    # the padding is silence after the gain was measured: the real frames are unchanged ...
    inside = (len(y) - cfg.n_fft // 2) // cfg.hop_length
    np.testing.assert_allclose(clip[:, :inside], full[:, :inside], atol=1e-3)
    # ... and the padded frames are the floor
    first_silent = (len(y) + cfg.n_fft // 2) // cfg.hop_length + 1
    assert np.all(clip[:, first_silent:] == FLOOR_DB)


def test_streamed_resampling_is_one_shot_resampling(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(1)
    y = (0.3 * rng.standard_normal((int(4.2 * AudioStream.BLOCK), 2))).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, y, 44100, subtype="FLOAT")
    got, sr = decode(path, 22050)
    ref = resample(y.mean(axis=1), 44100, 22050)
    assert sr == 22050 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6)
    stream = AudioStream(path)
    assert sum(len(b) for b in stream.blocks()) == stream.frames == len(y)


def test_read_ahead_keeps_order_and_raises_the_producers_error():
    assert list(read_ahead(iter(range(100)), depth=2)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad block")

    got = []
    with pytest.raises(ValueError, match="bad block"):
        for item in read_ahead(failing()):
            got.append(item)
    assert got == [1]


def test_read_ahead_stops_and_closes_the_producer_when_the_caller_stops():
    closed = threading.Event()
    made = []

    def endless():
        try:
            i = 0
            while True:
                made.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    for item in read_ahead(endless(), depth=2):
        if item == 3:
            break
    assert closed.wait(5), "the producer was not closed"
    assert threading.active_count() == before  # the thread has ended
    assert len(made) <= 3 + 2 + 2  # it stopped near the queue's depth, not after millions
