"""Keras 3 models: the paper's custom CNN, frozen InceptionV3 transfer, and the segment CNN."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from genreflow.config import ModelConfig
from genreflow.errors import GenreflowError

INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


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


def compile_model(model: keras.Model, cfg: ModelConfig) -> keras.Model:
    """SGD-family or adaptive optimiser, sparse categorical cross-entropy, accuracy."""
    model.compile(optimizer=make_optimizer(cfg.optimizer, cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_cnn(input_shape: tuple[int, int], n_classes: int, cfg: ModelConfig) -> keras.Model:
    """The paper's custom CNN on whole-clip log-mels: conv/ReLU/max-pool blocks, dense, softmax.

    The clip is first averaged 4x along time (frames of ~93 ms), about the
    resolution of the spectrogram images the paper trained on.
    """
    inp = keras.Input(shape=(*input_shape, 1), name="log_mel")
    x = layers.AveragePooling2D((1, 4), name="time_downsample")(inp)
    for i, f in enumerate(cfg.filters):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D((2, 2), name=f"pool{i}")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(cfg.dropout)(x)
    x = layers.Dense(cfg.dense, activation="relu", name="dense")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="cnn")


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


class RandomCrops(keras.utils.PyDataset):
    """Training batches of random ``width``-frame crops, ``per_clip`` per clip and epoch.

    Every epoch draws new crop positions (seeded), so the segment model sees
    fresh windows each time at a fraction of the cost of all overlapping ones.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, width: int, per_clip: int,
                 batch_size: int, seed: int):
        super().__init__()
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

    def __len__(self) -> int:
        return -(-len(self.clip) // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        clips, starts = self.clip[sl], self.start[sl]
        x = np.stack([self.x[c, :, t:t + self.width] for c, t in zip(clips, starts, strict=True)])
        return x[..., None].astype(np.float32), self.y[clips]

    def on_epoch_end(self) -> None:
        self._draw()


def build_segcnn(input_shape: tuple[int, int], n_classes: int, cfg: ModelConfig) -> keras.Model:
    """The stronger model: a batch-normalised CNN on short segments, voted per track.

    SpecAugment masks, global average pooling (few parameters, fast on CPU).
    """
    inp = keras.Input(shape=(*input_shape, 1), name="log_mel")
    x = SpecAugment(name="spec_augment")(inp) if cfg.spec_augment else inp
    for i, f in enumerate(cfg.filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D((2, 2), name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(cfg.dropout)(x)
    x = layers.Dense(cfg.dense, activation="relu", name="dense")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="segcnn")


def inception_base(cfg: ModelConfig) -> keras.Model:
    """Frozen InceptionV3 base (global average pooled), weights from imagenet, a file or none."""
    weights: str | None
    if cfg.weights == "none":
        weights = None
    elif cfg.weights == "imagenet":
        weights = "imagenet"
    else:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise GenreflowError(
                f"train.inception.weights: {path} does not exist; expected 'imagenet', 'none' "
                f"or the path of {INCEPTION_NOTOP_FILE}")
        weights = str(path)
    try:
        base = keras.applications.InceptionV3(
            include_top=False, weights=weights,
            input_shape=(cfg.image_size, cfg.image_size, 3), pooling="avg")
    except Exception as exc:
        if weights != "imagenet":
            raise GenreflowError(f"train.inception.weights: cannot load {weights}: {exc}") from None
        raise GenreflowError(
            "could not download the ImageNet weights for InceptionV3 "
            f"({type(exc).__name__}: {exc}). Offline, fetch {INCEPTION_NOTOP_FILE} on a machine "
            "with internet (https://storage.googleapis.com/tensorflow/keras-applications/"
            f"inception_v3/{INCEPTION_NOTOP_FILE}), then either copy it to ~/.keras/models/ or "
            "set train.inception.weights in params.yaml to its path; or set it to 'none'."
        ) from None
    base.trainable = False
    return base


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


def build_inception(input_shape: tuple[int, int], n_classes: int, cfg: ModelConfig,
                    base: keras.Model | None = None,
                    top: keras.Model | None = None) -> keras.Model:
    """Spectrogram -> image -> frozen InceptionV3 -> top, as one servable model."""
    base = base or inception_base(cfg)
    top = top or build_inception_top(base.output_shape[-1], n_classes, cfg)
    inp = keras.Input(shape=(*input_shape, 1), name="log_mel")
    out = top(base(SpectrogramImage(cfg.image_size, name="to_image")(inp), training=False))
    return keras.Model(inp, out, name="inception")


def build_inception_top(n_features: int, n_classes: int, cfg: ModelConfig,
                        train_embeddings=None) -> keras.Model:
    """The new top trained on cached InceptionV3 embeddings.

    The embeddings are standardised with statistics of the training split
    (a frozen base without ImageNet weights gives features of about 1e-4).
    """
    inp = keras.Input(shape=(n_features,), name="embedding")
    norm = layers.Normalization(name="embedding_norm")
    if train_embeddings is not None and len(train_embeddings):
        norm.adapt(train_embeddings)
    x = layers.Dropout(cfg.dropout)(norm(inp))
    x = layers.Dense(cfg.dense, activation="relu", name="dense")(x)
    x = layers.Dropout(cfg.dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="inception_top")
