"""The log-mel front-end shared by training (the ``features`` stage) and serving.

:class:`LogMelStream` takes a signal in blocks of any size, so that a served request's
spectrogram is computed while the rest of its file is still being decoded; the whole-signal
functions (:func:`log_mel`, :func:`signal_log_mel`, :func:`clip_log_mel`) feed it one block.
Frames are independent of how the signal was cut (tested), so training and serving see the
same numbers.

Loudness normalisation is a gain: in dB it is an offset, added once the whole signal's
level is known (``10 log10(g^2 M) = 10 log10 M + 20 log10 g``), which is what lets the
spectrogram start before the last block arrives.
"""

from __future__ import annotations

import functools

import numpy as np

from genreflow.audio.decode import LOUDNESS_DBFS
from genreflow.core.config import FeaturesConfig

FLOOR_DB = -70.0  # log-mel floor of the log-mel kinds (after loudness normalisation)
AMIN_DB = -100.0  # power_to_db's amin of 1e-10: the bottom of an unfloored log-mel
STFT_BLOCK = 64  # frames per FFT call: 0.5 MB of scratch that stays in cache, any clip length
# pocketfft threads per call. One: more threads made the STFT of a clip slower (its FFT calls
# are small, and the hand-offs between threads cost more than they share out); the served
# request already overlaps decoding with the spectrogram, and under load the server's
# workers and the features stage's processes keep every core busy (see docs/benchmarks.md,
# Front-end threads).
FFT_THREADS = 1


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (``scipy.signal.get_window("hann", n_fft)``, librosa's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _power_frames(frames: np.ndarray, out: np.ndarray) -> None:
    """``|rfft(frame * hann)|^2`` of ``frames`` ``(n, n_fft)`` into ``out`` ``(bins, n)``.

    In float32, in blocks of :data:`STFT_BLOCK` frames whose transposes stay in cache while
    ``out`` is written (C-contiguous, as the mel filter bank's sparse product wants it).
    """
    # deferred: SciPy import (see docs/benchmarks.md, Import cost)
    import scipy.fft

    n_fft = frames.shape[1]
    win, bins = _hann(n_fft), n_fft // 2 + 1
    scratch = np.empty((STFT_BLOCK, n_fft), np.float32)
    for s in range(0, len(frames), STFT_BLOCK):
        n = len(frames[s:s + STFT_BLOCK])
        np.multiply(frames[s:s + n], win, out=scratch[:n])
        spec = scipy.fft.rfft(scratch[:n], axis=-1, workers=FFT_THREADS)  # complex64
        parts = spec.view(np.float32).reshape(n, bins, 2)  # (re, im) pairs
        np.square(parts, out=parts)
        np.add(parts[..., 0], parts[..., 1], out=out[:, s:s + n].T)


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``|STFT|^2`` as float32, shape ``(n_fft // 2 + 1, 1 + len(y) // hop_length)``.

    The same frames as ``librosa.stft(y, n_fft, hop_length, center=True)`` (periodic Hann
    window, centred frames, zero padding), computed in float32 with pocketfft and without
    librosa's per-call checks: about twice as fast; the log-mel differs from librosa's by
    float32 rounding (< 0.01 dB above the floor; the cached features are float16).
    """
    y = np.asarray(y, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::hop_length]
    out = np.empty((n_fft // 2 + 1, len(frames)), np.float32)
    _power_frames(frames, out)
    return out


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int):
    """The (Slaney) mel filter bank as a sparse matrix: each FFT bin feeds at most two filters,
    so ~2,000 of its 131,000 entries are non-zero: a sparse product skips the zeros (see
    docs/benchmarks.md, Mel filter bank; the result differs by float32 rounding, < 1e-5 dB)."""
    # deferred: librosa import (see docs/benchmarks.md, Import cost)
    import librosa
    import scipy.sparse

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    return scipy.sparse.csr_array(basis)


class LogMelStream:
    """The log-mel of a signal fed in blocks: :meth:`feed` as samples arrive, :meth:`finish`
    once they have all come. Each centred frame is computed as soon as its samples are in;
    the result does not depend on where the blocks were cut.
    """

    def __init__(self, cfg: FeaturesConfig):
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.basis = mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels)
        self.samples = 0          # samples fed
        self.energy = 0.0         # their sum of squares (for the loudness gain)
        self._tail = np.zeros(self.n_fft // 2, np.float32)  # centred: zero padding in front
        self._tail_at = 0         # where _tail starts in the padded signal
        self._frames_done = 0
        self._parts: list[np.ndarray] = []  # log10 of mel power, (n_mels, frames) each

    def feed(self, block: np.ndarray) -> None:
        """Take the next samples (mono float32) and compute every frame they complete."""
        block = np.asarray(block, dtype=np.float32).ravel()
        self.samples += len(block)
        self.energy += float(np.einsum("i,i->", block, block))
        self._tail = np.concatenate([self._tail, block])
        self._compute(None)

    def _compute(self, last: int | None) -> None:
        """Frames up to the last complete one (or up to frame ``last``, exclusive)."""
        k = (self._tail_at + len(self._tail) - self.n_fft) // self.hop + 1 - self._frames_done
        if last is not None:
            k = min(k, last - self._frames_done)
        if k <= 0:
            return
        start = self._frames_done * self.hop - self._tail_at
        frames = np.lib.stride_tricks.sliding_window_view(
            self._tail[start:start + (k - 1) * self.hop + self.n_fft], self.n_fft)[::self.hop]
        power = np.empty((self.n_fft // 2 + 1, k), np.float32)
        _power_frames(frames, power)
        mel = np.asarray(self.basis @ power)
        self._parts.append(np.log10(np.maximum(mel, np.float32(1e-30), out=mel), out=mel))
        self._frames_done += k
        drop = self._frames_done * self.hop - self._tail_at
        self._tail, self._tail_at = self._tail[drop:], self._tail_at + drop

    def gain_db(self, loudness_dbfs: float = LOUDNESS_DBFS) -> float:
        """The gain in dB that brings what was fed so far to an RMS of ``loudness_dbfs``
        (0 for digital silence, which the input contract refuses), as
        :func:`~genreflow.audio.decode.normalise_loudness` would scale it."""
        level = np.sqrt(self.energy / self.samples) if self.samples else 0.0
        if level < 1e-8:
            return 0.0
        return float(loudness_dbfs - 20 * np.log10(level))

    def normalised(self, floor_db: float = FLOOR_DB, loudness_dbfs: float = LOUDNESS_DBFS,
                   pad_to: int | None = None) -> np.ndarray:
        """:meth:`finish` for the log-mel kinds: brought to ``loudness_dbfs`` (measured on
        what was fed, before any ``pad_to`` silence), floored."""
        return self.finish(self.gain_db(loudness_dbfs), floor_db, pad_to)

    def finish(self, gain_db: float = 0.0, floor_db: float = AMIN_DB,
               pad_to: int | None = None) -> np.ndarray:
        """The log-mel in dB of everything fed, ``(n_mels, 1 + samples // hop)`` float32:
        ``gain_db`` added, values below ``floor_db`` raised to it. ``pad_to`` appends digital
        silence up to that many samples first (not counted in :meth:`gain_db`)."""
        samples = max(self.samples, pad_to or 0)
        if samples > self.samples:
            self._tail = np.concatenate([self._tail, np.zeros(samples - self.samples,
                                                              np.float32)])
        self._tail = np.concatenate([self._tail, np.zeros(self.n_fft // 2, np.float32)])
        self._compute(1 + samples // self.hop)
        spec = np.concatenate(self._parts, axis=1)
        spec *= np.float32(10.0)
        spec += np.float32(gain_db)
        return np.maximum(spec, np.float32(max(floor_db, AMIN_DB)), out=spec)


def log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape ``(n_mels, frames)``, float32: the transform of
    ``librosa.feature.melspectrogram`` then ``power_to_db(ref=1.0, amin=1e-10, top_db=None)``."""
    stream = LogMelStream(cfg)
    stream.feed(y)
    return stream.finish()


def signal_log_mel(y: np.ndarray, cfg: FeaturesConfig, floor_db: float = FLOOR_DB,
                   loudness_dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """The front-end of the log-mel kinds: loudness-normalised, floored log-mel of the real
    signal (the bundle records both numbers it was trained with). Below the floor lies what
    differs between copies of one song (quantisation noise of a quiet 16-bit file,
    resampler residue)."""
    stream = LogMelStream(cfg)
    stream.feed(y)
    return stream.normalised(floor_db, loudness_dbfs)


def clip_log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Training features of one clip: :func:`signal_log_mel` of at most ``clip_seconds``,
    shape ``(n_mels, clip_frames)`` (a shorter clip is padded with silence after its loudness
    is measured; ``validate`` keeps only clips of at least the contract's minimum)."""
    n = int(round(cfg.clip_seconds * cfg.sample_rate))
    stream = LogMelStream(cfg)
    stream.feed(y[:n])
    return stream.normalised(pad_to=n)[:, : cfg.clip_frames]
