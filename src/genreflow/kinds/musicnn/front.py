"""Kind ``musicnn``'s front-end: raw audio to the network's input patches, and the
band-limited copies the ``embed`` stage adds. The embedding cache keys on this module's
code and on every genreflow module it imports (``encoder.CACHE_ROOTS``).
"""

from __future__ import annotations

import functools

import numpy as np

from genreflow.audio.decode import normalise_loudness, resample
from genreflow.kinds.musicnn.net import SAMPLE_RATE, musicnn_front_end, patches


def clip_patches(y: np.ndarray) -> np.ndarray:
    """The front-end shared by embedding, fine-tuning and serving: ``(n, 187, 96)``.

    Loudness-normalised 16 kHz signal, musicnn's log-mel, non-overlapping 3 s patches
    over real audio (a signal shorter than one patch is repeated to one).
    """
    return patches(musicnn_front_end(normalise_loudness(y)), pad_short=True)


def resampled_copy(y: np.ndarray, rate: int) -> np.ndarray:
    """``y`` (16 kHz) as a recording at ``rate`` reaches the front-end: down to ``rate``
    and back up, which empties the bands above ``rate / 2``."""
    return resample(resample(y, SAMPLE_RATE, rate), rate, SAMPLE_RATE)


def band_limit_copies(share: float, rates: tuple[int, ...] | None = None):
    """The embed stage's augmentation: a training clip gets, with probability ``share``,
    one copy resampled through a common recording rate below musicnn's 16 kHz (8 or
    11.025 kHz, ``keras_parts.LOW_RATES``), less 0-10 % for a resampler's transition band:
    what an 8 or 11 kHz recording is by the time it reaches the front-end. All draws come
    from the clip's digest, so they do not change with the split or seed (and the cache holds)."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    from genreflow.models.layers import LOW_RATES, TRANSITION

    if share <= 0:
        return None
    if rates is None:
        rates = tuple(r for r in LOW_RATES if r < SAMPLE_RATE)

    def augment(digest: str):
        if int(digest[:8], 16) / 16**8 >= share:
            return None
        base = rates[int(digest[8:12], 16) % len(rates)]
        rate = round(base * (1 - TRANSITION + TRANSITION * int(digest[12:20], 16) / 16**8))
        return f"sr{rate}", functools.partial(resampled_copy, rate=rate)

    return augment
