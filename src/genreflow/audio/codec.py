"""Lossy copies of audio: encode with libsndfile and decode back (codec augmentation).

An MP3 copy of a clip keeps its length and loudness but loses what the encoder judged
inaudible (quiet high partials, fine time structure), as the MP3s users send do. The
``features`` stage log-mels one copy of every training clip (``features.mp3_copies``) and
segment models draw a share of their training crops from it (``train.segcnn.mp3``).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import soundfile as sf

from genreflow.audio.decode import decode, fit_length
from genreflow.core.config import ConfigError

BLOCK = 1 << 15  # libsndfile crashes on one long write into a compressed format: write blocks
#: libsndfile's MP3 ``compression_level`` range drawn for the copies: 0.1 is about 68 kbit/s,
#: 0.9 about 30 kbit/s on 22.05 kHz mono (its default, about 48 kbit/s, lies inside).
MP3_LEVELS = (0.1, 0.9)


def encode(y: np.ndarray, sr: int, fmt: str, subtype: str | None = None, **options) -> bytes:
    """``y`` (mono, or ``(n, channels)``) as the bytes of a ``fmt`` file (``options`` go to
    :class:`soundfile.SoundFile`, e.g. ``compression_level``)."""
    buf = io.BytesIO()
    channels = 1 if y.ndim == 1 else y.shape[1]
    with sf.SoundFile(buf, "w", sr, channels, format=fmt, subtype=subtype, **options) as f:
        for i in range(0, len(y), BLOCK):
            f.write(y[i:i + BLOCK])
    return buf.getvalue()


def mp3_level(key: str) -> float:
    """The compression level of ``key``'s copy: spread over :data:`MP3_LEVELS`, fixed per clip
    (so the features stage gives the same bytes every run)."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64
    lo, hi = MP3_LEVELS
    return lo + (hi - lo) * u


def mp3_copy(y: np.ndarray, sr: int, level: float) -> np.ndarray:
    """Mono ``y`` through an MP3 encoder and back through genreflow's one decoder (as a
    user's MP3 is read), at ``y``'s length."""
    z, _ = decode(encode(y, sr, "MP3", compression_level=level), name="MP3 copy")
    return fit_length(z, len(y))


def check_mp3(setting: str) -> None:
    """Refuse ``setting`` at once when this libsndfile cannot write MP3 (before 1.1.0)."""
    try:
        mp3_copy(np.zeros(4410, np.float32), 22050, 0.5)
    except Exception as exc:
        raise ConfigError(
            f"{setting}: this libsndfile ({sf.__libsndfile_version__}) cannot write MP3 "
            f"({exc}); install soundfile>=0.12 from its wheel, or set {setting}: false"
        ) from None
