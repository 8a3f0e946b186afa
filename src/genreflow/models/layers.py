"""Keras building blocks shared by the model kinds: optimisers, the band router, low-pass
augmentation, random crops. A layer only one kind uses lives in that kind's package.

Importing this module registers genreflow's custom layers with Keras, so saved
models that use them load (``keras.saving.load_model``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from genreflow.core.errors import GenreflowError


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Optimiser by name: sgd, sgd_momentum, adam, adadelta, adagrad, rmsprop."""
    factories = {
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "sgd_momentum": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adadelta": lambda: keras.optimizers.Adadelta(learning_rate),
        "adagrad": lambda: keras.optimizers.Adagrad(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }
    if name not in factories:
        raise GenreflowError(f"optimizer: expected one of {sorted(factories)}, got {name!r}")
    return factories[name]()


def compile_model(model: keras.Model, cfg) -> keras.Model:
    """SGD-family or adaptive optimiser, sparse categorical cross-entropy, accuracy."""
    model.compile(optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@keras.saving.register_keras_serializable(package="genreflow")
class RouteByBand(layers.Layer):
    """``[features (batch, d), flag (batch, 1)]`` to ``[(1 - flag) x, flag x, 1 - flag, flag]``:
    a bias-free dense layer on it is two independent dense layers, one per band."""

    def call(self, inputs):
        x, flag = inputs
        full = 1.0 - flag
        return keras.ops.concatenate([full * x, flag * x, full, flag], axis=-1)


#: Sample rates recordings commonly come at below GTZAN's 22.05 kHz: telephone (8 kHz),
#: 11.025 kHz, wideband (16 kHz). The low-pass augmentation cuts at the band edge of one.
LOW_RATES = (8000, 11025, 16000)
#: A resampler's transition band: the band edge of audio at rate ``r`` lies between
#: ``(1 - TRANSITION) * r / 2`` and ``r / 2``; augmentations draw it uniformly in there.
TRANSITION = 0.1


class BandLimit:
    """Low-pass augmentation on normalised log-mels: the bands above a cutoff are set to the
    front-end's floor, as in audio recorded or resampled at a low rate.

    ``band_hz``: centre frequency of each mel band; ``floor``: the normalised value of the
    floor in each band; a crop is cut with probability ``p`` at half a sample rate drawn
    from ``rates`` (equally likely), less 0-10 % (a resampler's transition band starts
    below the Nyquist frequency). Rates, not a uniform cutoff: measured on the cnn, a
    uniform 3.5-10 kHz cutoff seldom fell near 4 kHz, and real 8 kHz files cost it 12 points.
    """

    def __init__(self, band_hz: np.ndarray, floor: np.ndarray, p: float,
                 rates: tuple[int, ...] = LOW_RATES):
        self.band_hz = np.asarray(band_hz, np.float32)
        self.floor = np.asarray(floor, np.float32)
        self.p, self.rates = p, np.asarray(rates, np.float64)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cut = rng.choice(self.rates, n) / 2 * rng.uniform(1 - TRANSITION, 1.0, n)
        return np.where(rng.random(n) < self.p, cut, np.inf)

    def apply(self, x: np.ndarray, cutoffs: np.ndarray) -> None:
        """In place on ``(batch, n_mels, frames)``."""
        for k, cut in enumerate(cutoffs):
            if np.isfinite(cut):
                high = self.band_hz > cut
                x[k, high, :] = self.floor[high, None]


class RandomCrops(keras.utils.PyDataset):
    """Training batches of random ``width``-frame crops, ``per_clip`` per clip and epoch.

    Every epoch draws new crop positions (seeded), so the segment model sees
    fresh windows each time at a fraction of the cost of all overlapping ones.
    With ``band_limit`` (a :class:`BandLimit`), some crops lose their high bands, as a
    recording sampled at 8-16 kHz does. With ``alt = (x_alt, p)`` (``x_alt`` aligned with
    ``x``, e.g. the clips' MP3 copies), a share ``p`` of the crops is cut from ``x_alt``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, width: int, per_clip: int,
                 batch_size: int, seed: int, band_limit: BandLimit | None = None,
                 alt: tuple[np.ndarray, float] | None = None):
        super().__init__()
        self.band_limit = band_limit
        if alt is not None and alt[0].shape != x.shape:
            raise GenreflowError(f"alternative clips of shape {alt[0].shape} do not match "
                                 f"the clips' {x.shape}")
        self.alt = alt
        if x.shape[-1] < width:
            raise GenreflowError(f"clips of {x.shape[-1]} frames are shorter than a "
                                 f"{width}-frame segment")
        self.x, self.y, self.width, self.per_clip = x, y, width, per_clip
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self._draw()

    def _draw(self) -> None:
        self.clip = np.repeat(np.arange(len(self.x)), self.per_clip)
        self.rng.shuffle(self.clip)
        self.start = self.rng.integers(0, self.x.shape[-1] - self.width + 1, len(self.clip))
        if self.band_limit is not None:
            self.cutoff = self.band_limit.draw(self.rng, len(self.clip))
        if self.alt is not None:  # drawn last: without alt the crops are as before
            self.from_alt = self.rng.random(len(self.clip)) < self.alt[1]

    def __len__(self) -> int:
        return -(-len(self.clip) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        clips, starts = self.clip[sl], self.start[sl]
        use_alt = self.from_alt[sl] if self.alt is not None else np.zeros(len(clips), bool)
        x = np.stack([(self.alt[0] if a else self.x)[c, :, t:t + self.width]
                      for c, t, a in zip(clips, starts, use_alt, strict=True)])
        x = x.astype(np.float32)
        if self.band_limit is not None:
            self.band_limit.apply(x, self.cutoff[sl])
        return x[..., None], self.y[clips]

    def on_epoch_end(self) -> None:
        self._draw()

