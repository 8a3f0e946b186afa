"""The trainable part of kind ``musicnn``: the top that reads the frozen base's embeddings."""

from __future__ import annotations

import numpy as np

from genreflow.models.forward import forward, mean_by_track


def build_top(n_features: int, n_classes: int, cfg, train_x=None, narrow_band: bool = False):
    """``(top, top_logits)``: standardise (training-split statistics), then a linear or
    one-hidden-layer softmax; ``top_logits`` shares the layers and stops before the softmax.

    With ``narrow_band`` the top takes ``[embedding, flag]`` and holds two output layers, one
    for full-band rows (flag 0) and one for narrow-band rows (flag 1): see ``band``.
    """
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras
    from keras import layers

    inp = keras.Input(shape=(n_features,), name="embedding")
    norm = layers.Normalization(name="embedding_norm")
    if train_x is not None and len(train_x):
        norm.adapt(train_x)
    x = layers.Dropout(cfg.dropout)(norm(inp))
    # routed, each top's rows are half of every batch: half the penalty keeps it per sample
    reg = keras.regularizers.L2(cfg.l2 / (2 if narrow_band else 1)) if cfg.l2 else None
    if cfg.top == "dense":
        x = layers.Dense(cfg.dense, activation="relu", name="dense", kernel_regularizer=reg)(x)
        x = layers.Dropout(cfg.dropout)(x)
    inputs = inp
    if narrow_band:
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.models.layers import RouteByBand

        flag = keras.Input(shape=(1,), name="narrow_band")
        inputs = [inp, flag]
        x = RouteByBand(name="route_by_band")([x, flag])
    logits = layers.Dense(n_classes, name="genre_logits", kernel_regularizer=reg,
                          use_bias=not narrow_band)(x)
    out = layers.Activation("softmax", name="genre")(logits)
    return keras.Model(inputs, out, name="musicnn_top"), keras.Model(inputs, logits,
                                                                     name="top_logits")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def frozen_top_data(emb, narrow, top, top_logits, linear: bool):
    """What a top on the frozen base trains on, and how it scores a split's tracks.

    ``emb``: the embed stage's embeddings; ``narrow``: those of the narrow-band view (or None
    for one top). A linear top trains on track means, a dense one on patches; the band-limited
    copies of training clips join both tops' training rows. Tracks are scored as served: per
    patch (routed by the patch's ``narrow_band`` flag), then the mean logits (linear) or the
    mean probabilities (dense). Routed, the validation rows are the full-band ones only, so
    early stopping and the learning rate follow the full-band top as they did without routing.

    Returns ``({split: (x, y)}, track_probs)``.
    """
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    from genreflow.kinds.musicnn.band import training_rows

    def rows(e, split: str):
        with_aug = split == "train" and bool(emb.aug_counts)
        if linear:
            x = [e.track_means(split)] + ([emb.aug_track_means()] if with_aug else [])
            y = [e.y[split]] + ([emb.aug_y] if with_aug else [])
        else:
            x = [e.x[split]] + ([emb.aug_x] if with_aug else [])
            y = [np.repeat(e.y[split], e.counts[split])] + (
                [np.repeat(emb.aug_y, emb.aug_counts)] if with_aug else [])
        return np.concatenate(x), np.concatenate(y)

    data = {}
    for s in emb.ids:
        x, y = rows(emb, s)
        if narrow is None:
            data[s] = (x, y)
        elif s == "train":
            xn, yn = rows(narrow, s)
            data[s] = training_rows(x, xn, y, yn)
        else:  # early stopping and the learning-rate schedule follow the full-band top
            data[s] = training_rows(x, x[:0], y, y[:0])

    def track_probs(split: str) -> np.ndarray:
        x = emb.x[split]
        if not len(emb.ids[split]):
            return np.zeros((0, len(emb.classes)), np.float32)
        inputs = x if narrow is None else [x, emb.also["narrow_band"][split]]
        if linear:
            return softmax(mean_by_track(forward(top_logits, inputs, 4096), emb.counts[split]))
        return mean_by_track(forward(top, inputs, 4096), emb.counts[split])

    return data, track_probs
