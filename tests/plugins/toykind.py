"""A model kind from outside genreflow, for the tests: a logistic regression on a clip's mean
log-mel. It is all a new kind needs: this module, its ``train.toy`` section and its name in
``train.plugins`` (tests/model/test_kind_matrix.py runs it through every stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from genreflow.kinds import register_kind
from genreflow.kinds.base import KindConfig, TrainContext
from genreflow.kinds.logmel import LogMelKind


@dataclass
class ToyConfig(KindConfig):
    optimizer: str = "adam"
    learning_rate: float = 0.01
    dropout: float = 0.0


@register_kind
class Toy(LogMelKind):
    """Whole clips, averaged over time, then one softmax layer."""

    name = "toy"
    Config = ToyConfig

    def build(self, ctx: TrainContext, mcfg: ToyConfig, input_shape):
        import keras  # deferred: Keras import cost, as in genreflow's kinds
        from keras import layers

        inp = keras.Input(shape=(*input_shape, 1), name="log_mel")
        x = layers.AveragePooling2D((1, input_shape[1]), name="mean_over_time")(inp)
        x = layers.Dropout(mcfg.dropout)(layers.Flatten()(x))
        out = layers.Dense(len(ctx.features.classes), activation="softmax", name="genre")(x)
        net = keras.Model(inp, out, name="toy")
        return net, net
