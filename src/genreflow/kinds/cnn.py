"""Kind ``cnn``: the paper's custom CNN on whole-clip log-mels."""

from __future__ import annotations

from dataclasses import dataclass, field

from genreflow.kinds import register_kind
from genreflow.kinds.base import KindConfig, TrainContext, check_share
from genreflow.kinds.logmel import LogMelKind


@dataclass
class CnnConfig(KindConfig):
    optimizer: str = "sgd"
    learning_rate: float = 1e-3
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dense: int = 128
    dropout: float = 0.3
    band_limit: float = 0.3   # share of training clips low-passed as 8, 11 or 16 kHz audio, per epoch

    def __post_init__(self) -> None:
        super().__post_init__()
        check_share("band_limit", self.band_limit)


def build_cnn(input_shape: tuple[int, int], n_classes: int, cfg: CnnConfig):
    """Conv/ReLU/max-pool blocks, dense, softmax.

    The clip is first averaged 4x along time (frames of ~93 ms), about the
    resolution of the spectrogram images the paper trained on.
    """
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras
    from keras import layers

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


@register_kind
class Cnn(LogMelKind):
    """Whole 30 s clips; a shorter signal is tiled to one clip, a longer one gives several."""

    name = "cnn"
    Config = CnnConfig

    def build(self, ctx: TrainContext, mcfg: CnnConfig, input_shape):
        net = build_cnn(input_shape, len(ctx.features.classes), mcfg)
        return net, net
