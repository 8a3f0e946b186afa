"""Audio I/O shared by every stage, the served model and ``genreflow predict``.

One decoder (soundfile/libsndfile: wav, au, flac, ogg, mp3, aiff) and one
log-mel transform, so that training and serving see identical inputs.
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from genreflow.config import FeaturesConfig
from genreflow.errors import GenreflowError, MissingInputError
from genreflow.quiet import quiet_c_stderr

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
CLIP_RE = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})$")
SOURCE_FILE = "SOURCE.json"


class AudioError(GenreflowError, ValueError):
    """Audio that cannot be decoded or is refused by the input contract.

    ``reason`` is a stable class (see :data:`genreflow.contract.REASONS`); the message
    is one line, ``"<file or row>: <reason>: <detail>"``.
    """

    def __init__(self, message: str, reason: str = "not_audio", detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail if detail is not None else message


def refused(where: str, reason: str, detail: str) -> AudioError:
    """An :class:`AudioError` with the one-line message ``where: reason: detail``."""
    return AudioError(f"{where}: {reason}: {detail}", reason, detail)


@dataclass(frozen=True)
class Clip:
    """One audio file in GTZAN's layout: ``<genre>/<genre>.000NN.<ext>``."""

    clip_id: str
    genre: str
    path: Path


def find_clips(data_dir: str | Path, genres: list[str] | None = None) -> list[Clip]:
    """All audio clips under ``data_dir/<genre>/``, sorted by id."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingInputError(
            f"{data_dir}: no such data folder; run `genreflow data get` or `genreflow data synth`"
        )
    clips = []
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if genres is not None and sub.name not in genres:
            continue
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in AUDIO_EXTENSIONS:
                clips.append(Clip(clip_id=f.stem, genre=sub.name, path=f))
    return clips


def read_source(data_dir: str | Path) -> dict:
    """The provenance record written next to the raw audio (``SOURCE.json``)."""
    path = Path(data_dir) / SOURCE_FILE
    if not path.exists():
        return {"source": "unknown", "origin": str(data_dir)}
    return json.loads(path.read_text())


def decode(source: str | Path | bytes, sample_rate: int | None = None, *,
           max_seconds: float | None = None, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a file path or raw bytes to mono float32 (the mean of the channels),
    optionally resampled. One decoder (libsndfile) for every stage and the server.

    With ``max_seconds``, a longer file is refused from its header when the header
    gives a length, else after decoding at most ``max_seconds`` (bounded memory).
    Raises :class:`AudioError` with a reason class: ``empty``, ``not_audio``,
    ``unsupported_format``, ``truncated``, ``non_finite`` or ``too_long``.
    """
    from genreflow.sniff import open_failure, riff_truncated

    is_bytes = isinstance(source, bytes | bytearray)
    name = name or ("<bytes>" if is_bytes else str(source))
    if is_bytes:
        size, head, handle = len(source), bytes(source[:64]), io.BytesIO(source)
    else:
        size = Path(source).stat().st_size
        with open(source, "rb") as fh:
            head = fh.read(64)
        handle = source
    if size == 0:
        raise refused(name, "empty", "the file is empty (0 bytes)")
    if riff_truncated(head, size):
        raise refused(name, "truncated", "the WAV file ends before the length its header gives")
    with quiet_c_stderr():
        try:
            f = sf.SoundFile(handle)
        except Exception as exc:  # libsndfile raises several types for bad data
            raise open_failure(name, head, exc) from None
        with f:
            sr = int(f.samplerate)
            if max_seconds is not None and 0 < f.frames < 2**62 and f.frames > max_seconds * sr:
                raise refused(name, "too_long", f"{f.frames / sr:.1f} s of audio (header), "
                              f"longer than the maximum of {max_seconds:g} s")
            y = _read_mono(f, name, None if max_seconds is None else int(max_seconds * sr) + 1)
    if y.size == 0:
        raise refused(name, "empty", "the file holds no audio samples")
    if max_seconds is not None and len(y) > max_seconds * sr:
        raise refused(name, "too_long", f"more than {max_seconds:g} s of audio, the maximum")
    if not np.all(np.isfinite(y)):
        raise refused(name, "non_finite", "the audio contains NaN or infinite samples")
    if sample_rate is not None and sr != sample_rate:
        y, sr = resample(y, sr, sample_rate), sample_rate
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def _read_mono(f: sf.SoundFile, name: str, limit: int | None) -> np.ndarray:
    """Decode block by block into a mono mix, stopping once past ``limit`` frames."""
    parts: list[np.ndarray] = []
    n = 0
    try:
        while limit is None or n <= limit:  # until the end of the data, not the header's count
            block = f.read(1 << 16, dtype="float32", always_2d=True)
            if not len(block):
                break
            parts.append(_mono(block))
            n += len(block)
    except Exception as exc:
        raise refused(name, "truncated", f"decoding stopped after {n} frames: "
                      f"{_clean(str(exc))} (the file is cut short or damaged)") from None
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _mono(block: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``(frames, channels)``, bit for bit ``block.mean(axis=1)``
    (the same sums in the same order) at a twentieth of its time for stereo: numpy's reduction
    over a short, strided axis cost 26 ms per 30 s of 44.1 kHz stereo. Mono blocks pass as they are."""
    channels = block.shape[1]
    if channels == 1:
        return block[:, 0]
    mono = block[:, 0].copy()
    for c in range(1, channels):
        mono += block[:, c]
    mono /= np.float32(channels)
    return mono


def _clean(msg: str) -> str:
    return re.sub(r"Error opening <[^>]*>: |^Error : ", "", msg).strip()


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality; what librosa's ``soxr_hq`` calls)."""
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``y`` to exactly ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (``scipy.signal.get_window("hann", n_fft)``, librosa's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


STFT_BLOCK = 64  # frames per FFT call: 0.5 MB of scratch that stays in cache, any clip length
# pocketfft threads per call. One: on a 2-core Xeon (AVX-512) two threads made the STFT of a
# 30 s clip slower (13.6 against 9.0 ms, thread hand-offs on 20 small calls) and a lone
# served request 59.6 -> 57.2 ms at the median of 5 runs; the server's workers and the
# features stage's processes already keep every core busy under load.
FFT_THREADS = 1


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``|STFT|^2`` as float32, shape ``(n_fft // 2 + 1, 1 + len(y) // hop_length)``.

    The same frames as ``librosa.stft(y, n_fft, hop_length, center=True)`` (periodic Hann
    window, centred frames, zero padding), computed in float32 in small blocks with pocketfft
    and without librosa's per-call checks: about twice as fast; the log-mel differs from
    librosa's by float32 rounding (< 0.01 dB above the floor; the cached features are float16).
    The result is C-contiguous, written block by block (a block's transpose stays in cache):
    the mel filter bank's sparse product would otherwise copy a transposed view first
    (5 ms for a 30 s clip).
    """
    import scipy.fft

    y = np.asarray(y, dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, n_fft // 2), n_fft)[::hop_length]
    win, bins = _hann(n_fft), n_fft // 2 + 1
    out = np.empty((bins, len(frames)), np.float32)
    scratch = np.empty((STFT_BLOCK, n_fft), np.float32)
    for s in range(0, len(frames), STFT_BLOCK):
        n = len(frames[s:s + STFT_BLOCK])
        np.multiply(frames[s:s + n], win, out=scratch[:n])
        spec = scipy.fft.rfft(scratch[:n], axis=-1, workers=FFT_THREADS)  # complex64
        parts = spec.view(np.float32).reshape(n, bins, 2)  # (re, im) pairs
        np.square(parts, out=parts)
        np.add(parts[..., 0], parts[..., 1], out=out[:, s:s + n].T)
    return out


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int):
    """The (Slaney) mel filter bank as a sparse matrix: each FFT bin feeds at most two filters,
    so ~2,000 of its 131,000 entries are non-zero (20x faster than a dense product; the
    result differs by float32 rounding, < 1e-5 dB)."""
    import librosa
    import scipy.sparse

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32)
    return scipy.sparse.csr_array(basis)


def log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape ``(n_mels, frames)``, float32.

    The transform of ``librosa.feature.melspectrogram`` followed by
    ``power_to_db(ref=1.0, amin=1e-10, top_db=None)``, through :func:`power_spectrogram`
    and a filter bank built once per process.
    """
    power = power_spectrogram(y, cfg.n_fft, cfg.hop_length)
    mel = np.asarray(mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power)
    return (10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))).astype(np.float32)


def rms(y: np.ndarray) -> float:
    """Root mean square of a signal (0.0 for an empty one).

    ``np.einsum`` sums the products without a temporary array (a float64 copy of a 30 s clip
    cost 2 ms of page faults per request; relative difference to float64 ~1e-7). Not ``np.dot``:
    that wakes BLAS threads, which keep spinning on the cores TensorFlow needs next (the model's
    forward pass after it took 24 instead of 13 ms)."""
    if not y.size:
        return 0.0
    flat = y.ravel()
    return float(np.sqrt(float(np.einsum("i,i->", flat, flat)) / y.size))


LOUDNESS_DBFS = -20.0  # every signal is scaled to this RMS before any front-end


def normalise_loudness(y: np.ndarray, target_dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """``y`` scaled to an RMS of ``target_dbfs``: the same input whatever the recording gain.

    Digital silence is returned unchanged (the input contract refuses it).
    """
    level = rms(y)
    if level < 1e-8:
        return y
    return (y * np.float32(10 ** (target_dbfs / 20) / level)).astype(np.float32, copy=False)


FLOOR_DB = -70.0  # log-mel floor of the log-mel kinds (after loudness normalisation)


def floored(spec_db: np.ndarray, floor_db: float = FLOOR_DB) -> np.ndarray:
    """Log-mel values below :data:`FLOOR_DB` raised to it: what lies below (quantisation
    noise of a quiet 16-bit file, resampler residue) differs between copies of one song."""
    return np.maximum(spec_db, np.float32(floor_db))


def signal_log_mel(y: np.ndarray, cfg: FeaturesConfig, floor_db: float = FLOOR_DB,
                   loudness_dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """The front-end of the log-mel kinds: loudness-normalised, floored log-mel of the real
    signal (the bundle records both numbers it was trained with)."""
    return floored(log_mel(normalise_loudness(y, loudness_dbfs), cfg), floor_db)


def clip_log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Training features of one clip: :func:`signal_log_mel` of at most ``clip_seconds``,
    shape ``(n_mels, clip_frames)`` (a shorter clip is zero-padded; ``validate`` keeps only
    clips of at least the contract's minimum)."""
    n = int(round(cfg.clip_seconds * cfg.sample_rate))
    spec = floored(log_mel(fit_length(normalise_loudness(y[:n]), n), cfg))
    return spec[:, : cfg.clip_frames]
