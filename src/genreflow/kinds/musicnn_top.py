"""The trainable part of kind ``musicnn``: the top that reads the frozen base's embeddings."""

from __future__ import annotations

import numpy as np


def build_top(n_features: int, n_classes: int, cfg, train_x=None):
    """``(top, top_logits)``: standardise (training-split statistics), then a linear or
    one-hidden-layer softmax; ``top_logits`` shares the layers and stops before the softmax."""
    import keras
    from keras import layers

    inp = keras.Input(shape=(n_features,), name="embedding")
    norm = layers.Normalization(name="embedding_norm")
    if train_x is not None and len(train_x):
        norm.adapt(train_x)
    x = layers.Dropout(cfg.dropout)(norm(inp))
    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    if cfg.top == "dense":
        x = layers.Dense(cfg.dense, activation="relu", name="dense", kernel_regularizer=reg)(x)
        x = layers.Dropout(cfg.dropout)(x)
    logits = layers.Dense(n_classes, name="genre_logits", kernel_regularizer=reg)(x)
    out = layers.Activation("softmax", name="genre")(logits)
    return keras.Model(inp, out, name="musicnn_top"), keras.Model(inp, logits, name="top_logits")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
