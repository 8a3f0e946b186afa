"""Kind ``inception``'s Keras layer. Importing this module registers it with Keras, so that a
saved inception model loads (the kind's ``keras_modules``)."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="genreflow")
class SpectrogramImage(layers.Layer):
    """Normalised log-mel ``(batch, mels, frames, 1)`` to an RGB-like image in [-1, 1]."""

    def __init__(self, image_size: int = 139, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size

    def call(self, x):
        ops = keras.ops
        x = ops.image.resize(x, (self.image_size, self.image_size))
        x = ops.clip(x / 3.0, -1.0, 1.0)
        return ops.repeat(x, 3, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": self.image_size}
