"""The trainable part of kind ``musicnn``: the top read by the frozen base's embeddings.

``build_top`` is one head (linear or one hidden layer). With ``narrowband_head`` the top
has two heads, one trained on the original clips and one on their 8 and 11 kHz copies,
and a linear *band detector* on the embedding (originals against copies, fitted once
before training) picks the head for each track: a telephone-band recording is answered
by a head that has seen only such recordings, and wide-band ones lose nothing to it.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _head(x, n_classes: int, cfg, name: str):
    """Logits of one head on the normalised embedding ``x``."""
    import keras
    from keras import layers

    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 else None
    x = layers.Dropout(cfg.dropout, name=f"{name}_dropout")(x)
    if cfg.top == "dense":
        x = layers.Dense(cfg.dense, activation="relu", name=f"{name}_dense",
                         kernel_regularizer=reg)(x)
        x = layers.Dropout(cfg.dropout, name=f"{name}_hidden_dropout")(x)
    return layers.Dense(n_classes, name=f"{name}_logits", kernel_regularizer=reg)(x)


def _normaliser(n_features: int, train_x):
    import keras
    from keras import layers

    inp = keras.Input(shape=(n_features,), name="embedding")
    norm = layers.Normalization(name="embedding_norm")
    if train_x is not None and len(train_x):
        norm.adapt(train_x)
    return inp, norm(inp)


def build_top(n_features: int, n_classes: int, cfg, train_x=None):
    """``(top, top_logits)``: standardise (training-split statistics), then a linear or
    one-hidden-layer softmax; ``top_logits`` shares the layers and stops before the softmax."""
    import keras
    from keras import layers

    inp, x = _normaliser(n_features, train_x)
    logits = _head(x, n_classes, cfg, "genre")
    out = layers.Activation("softmax", name="genre")(logits)
    return keras.Model(inp, out, name="musicnn_top"), keras.Model(inp, logits, name="top_logits")


def fit_detector(wide: np.ndarray, narrow: np.ndarray, l2: float = 0.02,
                 steps: int = 500) -> tuple[np.ndarray, float]:
    """A logistic regression telling band-limited embeddings from originals: ``(w, b)`` with
    ``x @ w + b > 0`` for band-limited. Full-batch gradient descent on standardised inputs
    (deterministic; a fraction of a second for a few hundred tracks)."""
    x = np.concatenate([wide, narrow]).astype(np.float64)
    t = np.concatenate([np.zeros(len(wide)), np.ones(len(narrow))])
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mu) / sd
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - t) / len(t) + 2 * l2 * w)
        b -= 0.5 * float(np.mean(p - t))
    return (w / sd).astype(np.float32), float(b - mu @ (w / sd))


def build_routed(n_features: int, n_classes: int, cfg, train_x, detector):
    """The two-head top. Returns ``(net, heads)``:

    * ``net`` (trained by ``fit``): inputs ``[embedding, narrow]`` where ``narrow`` is 0 for
      an original and 1 for a band-limited copy; the softmax of the chosen head's logits;
    * ``heads``: embedding -> ``[wide logits, narrow logits, detector logit]`` (served; the
      kind's ``aggregate`` picks the head from the track's mean detector logit).
    """
    import keras
    from keras import layers

    inp, x = _normaliser(n_features, train_x)
    wide, narrow = _head(x, n_classes, cfg, "wide"), _head(x, n_classes, cfg, "narrow")
    w, b = detector
    det = layers.Dense(1, name="band_detector", trainable=False)
    logit = det(inp)
    det.set_weights([w[:, None], np.array([b], np.float32)])
    heads = keras.Model(inp, layers.Concatenate(name="heads")([wide, narrow, logit]),
                        name="musicnn_heads")
    flag = keras.Input(shape=(1,), name="narrow")
    chosen = layers.Lambda(lambda t: (1 - t[2]) * t[0] + t[2] * t[1], name="route")(
        [wide, narrow, flag])
    net = keras.Model([inp, flag], layers.Activation("softmax", name="genre")(chosen),
                      name="musicnn_top")
    return net, heads


def routed_probs(outputs: np.ndarray, n_classes: int, mean_logits: bool) -> np.ndarray:
    """One track's probabilities from ``heads`` outputs for its patches: the head the mean
    detector logit picks, then the mean of its logits (linear) or of its softmax (dense)."""
    narrow = float(outputs[:, 2 * n_classes].mean()) > 0
    z = outputs[:, n_classes:2 * n_classes] if narrow else outputs[:, :n_classes]
    return softmax(z.mean(axis=0)) if mean_logits else softmax(z).mean(axis=0)
