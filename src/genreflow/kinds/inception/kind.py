"""Kind ``inception``: a frozen InceptionV3 on spectrogram images with a new top (the paper's).

Embeddings of the frozen base are computed once per clip and cached beside the features
(``embed``); this module trains the top on them and builds the servable model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from genreflow.kinds import register_kind
from genreflow.kinds.base import Labels, Prepared, TrainContext
from genreflow.kinds.inception.config import InceptionConfig
from genreflow.kinds.inception.embed import (
    CACHE_ROOTS,
    embedded_inputs,
    embeddings,
    inception_base,
    low_pass_draw,
)
from genreflow.kinds.logmel import LogMelFrontEnd, LogMelKind


@dataclass(kw_only=True)
class InceptionFrontEnd(LogMelFrontEnd):
    """The log-mel front-end, and whether the model routes narrow-band clips (a flag layer of
    the saved model; kept for the record)."""

    narrow_band: bool = False


def build_top(n_features: int, n_classes: int, cfg: InceptionConfig, train_embeddings=None,
              narrow_band: bool = False):
    """The new top on embeddings, standardised with training-split statistics
    (a frozen base without ImageNet weights gives features of about 1e-4).

    With ``narrow_band`` it takes ``[embedding, flag]`` and each dense layer is two, one for
    full-band clips (flag 0) and one for narrow-band clips (flag 1): see ``logmel_band``.
    """
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras
    from keras import layers

    from genreflow.models.layers import RouteByBand

    inp = keras.Input(shape=(n_features,), name="embedding")
    flag = keras.Input(shape=(1,), name="narrow_band") if narrow_band else None
    norm = layers.Normalization(name="embedding_norm")
    if train_embeddings is not None and len(train_embeddings):
        norm.adapt(train_embeddings)

    def dense(x, units: int, activation: str, name: str):
        if flag is not None:
            x = RouteByBand(name=f"{name}_route")([x, flag])
        return layers.Dense(units, activation=activation, use_bias=flag is None, name=name)(x)

    x = layers.Dropout(cfg.dropout)(norm(inp))
    x = layers.Dropout(cfg.dropout)(dense(x, cfg.dense, "relu", "dense"))
    out = dense(x, n_classes, "softmax", "genre")
    return keras.Model(inp if flag is None else [inp, flag], out, name="inception_top")


@register_kind
class Inception(LogMelKind):
    name = "inception"
    Config = InceptionConfig
    FrontEnd = InceptionFrontEnd
    keras_modules = ("genreflow.kinds.inception.layers", "genreflow.kinds.logmel_band")
    cache_roots = CACHE_ROOTS

    def prepare(self, ctx: TrainContext, cfg: InceptionConfig) -> Prepared:
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        from genreflow.kinds.inception.layers import SpectrogramImage
        from genreflow.kinds.logmel_band import BandRouter

        fs = ctx.features
        feat = fs.cfg
        base = inception_base(cfg)
        # built at most once: for the embeddings (when not cached) and the routing flags
        inputs = functools.cache(lambda: embedded_inputs(ctx, cfg))
        emb = embeddings(ctx, cfg, base, inputs)
        draw = low_pass_draw(ctx, cfg)  # the copies' labels (embeddings may be cached)
        train_y = fs.splits["train"].y
        aug_y = train_y[np.isfinite(draw[1])] if draw else train_y[:0]
        n_classes = len(fs.classes)
        routed = cfg.narrow_band
        top = build_top(emb["train"].shape[1], n_classes, cfg, train_embeddings=emb["train"],
                        narrow_band=routed)
        inp = keras.Input(shape=(feat.n_mels, feat.clip_frames, 1), name="log_mel")
        head = base(SpectrogramImage(cfg.image_size, name="to_image")(inp), training=False)
        if routed:  # the flag is part of the model: served clips are routed as trained
            router = BandRouter.of(fs)
            head = [head, router.layer()(inp)]
            flags = {s: router.flags(x) for s, x in inputs().items()}
        servable = keras.Model(inp, top(head), name="inception")

        def rows(*names: str):
            e = np.concatenate([emb[s] for s in names])
            return [e, np.concatenate([flags[s] for s in names])] if routed else e

        def track_probs(split: str) -> np.ndarray:
            return (np.asarray(top.predict(rows(split), verbose=0)) if len(emb[split])
                    else np.zeros((0, n_classes), np.float32))

        train = ("train", "train_aug") + (("train_narrow",) if routed else ())
        return Prepared(
            net=top, servable=servable,
            # routed, the training rows double and each top gets about half of every batch:
            # with SGD, twice the steps of half the gradient, so each top learns per epoch as
            # one top did (a doubled batch halved that: seed 0 stopped at epoch 44, val 0.36)
            train={"x": rows(*train),
                   "y": np.concatenate([train_y, aug_y] + ([train_y] if routed else [])),
                   "batch_size": ctx.batch_size, "shuffle": True},
            val=(rows("val"), fs.splits["val"].y), track_probs=track_probs,
            labels={s: Labels(ids=v.ids, y=v.y) for s, v in fs.splits.items()},
            classes=list(fs.classes), front_end=self.front_end_of(fs, cfg, narrow_band=routed),
            example=fs.splits["val"].x[:1, ..., None].astype(np.float32),
            data_source=fs.meta["data_source"], split_digest=fs.meta.get("split_digest", ""))
