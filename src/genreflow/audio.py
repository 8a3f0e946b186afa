"""Audio I/O shared by every stage, the served model and ``genreflow predict``.

One decoder (soundfile/libsndfile: wav, au, flac, ogg, mp3) and one
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

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".au", ".flac", ".ogg", ".mp3")
CLIP_RE = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})$")
SOURCE_FILE = "SOURCE.json"


class AudioError(GenreflowError, ValueError):
    """Audio that cannot be decoded or is unusable."""


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


def decode(source: str | Path | bytes, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a file path or raw bytes to mono float32, optionally resampled.

    Raises :class:`AudioError` with the reason when the data is not audio.
    """
    name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        y, sr = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for bad data
        y, sr = _decode_fallback(source, name, exc)
    if y.ndim == 2:
        y = y.mean(axis=1)
    if y.size == 0:
        raise AudioError(f"{name}: no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if sample_rate is not None and sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
        sr = sample_rate
    return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def _decode_fallback(source: str | Path | bytes, name: str, exc: Exception) -> tuple[np.ndarray, int]:
    """Try audioread (ffmpeg/gstreamer, if installed) before giving up."""
    if isinstance(source, bytes | bytearray):
        raise AudioError(f"{name}: not a readable audio file ({exc})") from None
    try:
        import librosa

        y, sr = librosa.load(str(source), sr=None, mono=True)
        return y[:, None], int(sr)
    except Exception:
        raise AudioError(f"{name}: not a readable audio file ({exc})") from None


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad ``y`` to exactly ``n`` samples."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


def log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape ``(n_mels, frames)``, float32.

    The same transform as ``librosa.feature.melspectrogram`` followed by
    ``power_to_db(ref=1.0, amin=1e-10, top_db=None)``, with the filter bank
    built once per process (10x faster on long clips).
    """
    import librosa

    stft = librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, center=True)
    power = np.square(np.abs(stft), dtype=np.float32)
    mel = _mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ power
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)


LOUDNESS_DBFS = -20.0  # every signal is scaled to this RMS before any front-end


def normalise_loudness(y: np.ndarray, target_dbfs: float = LOUDNESS_DBFS) -> np.ndarray:
    """``y`` scaled to an RMS of ``target_dbfs``: the same input whatever the recording gain.

    Digital silence is returned unchanged (the input contract refuses it).
    """
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms < 1e-8:
        return y
    return (y * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def signal_log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """The front-end of the log-mel kinds: loudness-normalised log-mel of the real signal."""
    return log_mel(normalise_loudness(y), cfg)


def clip_log_mel(y: np.ndarray, cfg: FeaturesConfig) -> np.ndarray:
    """Training features of one clip: :func:`signal_log_mel` of at most ``clip_seconds``,
    shape ``(n_mels, clip_frames)`` (a shorter clip is zero-padded; ``validate`` keeps only
    clips of at least the contract's minimum)."""
    n = int(round(cfg.clip_seconds * cfg.sample_rate))
    spec = log_mel(fit_length(normalise_loudness(y[:n]), n), cfg)
    return spec[:, : cfg.clip_frames]
