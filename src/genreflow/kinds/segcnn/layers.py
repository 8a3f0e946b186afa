"""Kind ``segcnn``'s Keras layer. Importing this module registers it with Keras, so that a
saved segcnn loads (the kind's ``keras_modules``)."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="genreflow")
class SpecAugment(layers.Layer):
    """Random frequency and time masks (training only) on ``(batch, mels, frames, 1)``."""

    def __init__(self, freq_mask: int = 16, time_mask: int = 24, **kwargs):
        super().__init__(**kwargs)
        self.freq_mask = freq_mask
        self.time_mask = time_mask
        self.seed_gen = keras.random.SeedGenerator(1234)

    def _mask(self, x, axis: int, width: int):
        ops = keras.ops
        size = ops.shape(x)[axis]
        batch = ops.shape(x)[0]
        w = keras.random.randint((batch, 1), 0, width + 1, seed=self.seed_gen)
        start = keras.random.randint((batch, 1), 0, size, seed=self.seed_gen)
        pos = ops.arange(size)[None, :]
        keep = ops.logical_or(pos < start, pos >= start + w)
        keep = ops.cast(keep, x.dtype)
        shape = [batch, 1, 1, 1]
        shape[axis] = size
        return x * ops.reshape(keep, shape)

    def call(self, x, training=None):
        if not training:
            return x
        return self._mask(self._mask(x, 1, self.freq_mask), 2, self.time_mask)

    def get_config(self) -> dict:
        return {**super().get_config(), "freq_mask": self.freq_mask, "time_mask": self.time_mask}
