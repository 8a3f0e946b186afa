"""Kind ``musicnn``'s narrow-band route: a second linear top for patches with nothing above 6 kHz.

An 8 or 11 kHz recording reaches musicnn's 16 kHz front-end with its bands above 4 or
5.5 kHz empty, and the top trained on full-band clips reads it poorly. With ``narrow_band``
the kind trains two independent tops in one model: the full-band top on the clips as they
are (and their band-limited copies), the narrow-band top on the same clips with every band
above 6 kHz emptied (a recording at 12 kHz; the copies too). Each 3 s patch is routed by
what it holds: a patch whose mean log-mel over the mel bands wholly above 6 kHz is below
``NARROW_LEVEL`` is read by the narrow-band top. Such a patch is, to musicnn, the same as
its 6 kHz-limited version, so the narrow-band top sees what it was trained on.

Importing this module registers its ``NarrowBand`` layer with Keras (saved servables use it;
the routing layer is ``keras_parts.RouteByBand``).
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers

from genreflow.kinds.musicnn.front import clip_patches, resampled_copy
from genreflow.kinds.musicnn.net import N_MELS, SAMPLE_RATE

#: the narrow-band view: the clip as a recording at this rate reaches the front-end
NARROW_RATE = 12000
#: a patch whose mean log-mel (musicnn's log10(1 + 10^4 mel)) over the bands wholly above
#: NARROW_RATE / 2 is below this counts as narrow-band. On the four shared GTZAN genres, 17 of
#: the originals' 3,860 patches fall below it (1 % are below 2.5e-3), and 2,040 of the 2,050
#: patches of their 8 kHz copies (validation and test clips).
NARROW_LEVEL = 1e-3


@functools.cache
def first_high_band() -> int:
    """Index of the first of musicnn's 96 mel bands whose lower edge is at NARROW_RATE / 2 or above."""
    # deferred: librosa import (see docs/benchmarks.md, Import cost)
    import librosa

    lower = librosa.mel_frequencies(N_MELS + 2, fmin=0.0, fmax=SAMPLE_RATE / 2)[:-2]
    return int(np.argmax(lower >= NARROW_RATE / 2))


def narrow_patches(y: np.ndarray) -> np.ndarray:
    """The narrow-band view's patches of a 16 kHz signal (every band above 6 kHz emptied)."""
    return clip_patches(resampled_copy(y, NARROW_RATE))


def narrow_flags(patches: np.ndarray) -> np.ndarray:
    """``(n, 1)`` float32: 1 for a narrow-band patch, else 0 (numpy twin of :class:`NarrowBand`)."""
    level = np.asarray(patches, np.float32)[..., first_high_band():].mean(axis=(1, 2))
    return (level < NARROW_LEVEL).astype(np.float32)[:, None]


@keras.saving.register_keras_serializable(package="genreflow")
class NarrowBand(layers.Layer):
    """``(batch, frames, mels)`` log-mel patches to ``(batch, 1)``: 1 where narrow-band."""

    def __init__(self, first_band: int, level: float = NARROW_LEVEL, **kwargs):
        super().__init__(**kwargs)
        self.first_band, self.level = int(first_band), float(level)

    def call(self, patch):
        ops = keras.ops
        mean = ops.mean(patch[:, :, self.first_band:], axis=(1, 2))
        return ops.cast(mean < self.level, patch.dtype)[:, None]

    def get_config(self) -> dict:
        return {**super().get_config(), "first_band": self.first_band, "level": self.level}


def training_rows(full: np.ndarray, narrow: np.ndarray, y_full: np.ndarray,
                  y_narrow: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Rows for the two tops: ``([embeddings, flags], labels)``, full-band rows flagged 0."""
    x = np.concatenate([full, narrow]).astype(np.float32)
    flags = np.concatenate([np.zeros(len(full)), np.ones(len(narrow))]).astype(np.float32)
    return [x, flags[:, None]], np.concatenate([y_full, y_narrow])
