"""Running a Keras model on many inputs: batched, through a compiled (optionally frozen) graph."""

from __future__ import annotations

import weakref

import numpy as np


def forward(model, x: np.ndarray | list[np.ndarray], batch: int = 64, *,
            frozen: bool = False) -> np.ndarray:
    """Softmax outputs of ``model`` for ``x`` in batches, through a compiled graph (one
    trace per model and input shape; faster than eager calls, see docs/benchmarks.md,
    Forward pass).

    ``frozen`` is for a model whose weights no longer change (a loaded bundle): its weights
    become graph constants, so TensorFlow's graph optimiser folds each batch normalisation
    into the convolution before it, which saves work on every call (outputs equal to float32
    rounding). Training code must not freeze: the next epoch would not be seen.
    """
    if isinstance(x, list):  # a model with several inputs: eager calls on aligned batches
        return np.concatenate([np.asarray(model([a[i:i + batch] for a in x], training=False))
                               for i in range(0, len(x[0]), batch)])
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    call = _compiled(model, frozen)
    return np.concatenate([np.asarray(call(x[i:i + batch]))
                           for i in range(0, len(x), batch)])


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model, frozen: bool):
    """``model(x, training=False)`` as a graph that accepts any batch size (cached per model
    and mode, without keeping the model alive)."""
    # deferred: TensorFlow import (see docs/benchmarks.md, Import cost)
    import tensorflow as tf

    calls = _COMPILED.setdefault(model, {})
    if frozen not in calls:
        ref = weakref.ref(model)
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        graph = tf.function(lambda x: ref()(x, training=False), input_signature=[spec])
        if frozen:
            # deferred: TensorFlow import (see docs/benchmarks.md, Import cost)
            from tensorflow.python.framework.convert_to_constants import (
                convert_variables_to_constants_v2,
            )

            constant = convert_variables_to_constants_v2(graph.get_concrete_function())
            # called through a tf.function of its own: calling the frozen function directly
            # binds its arguments by a failing path first, building error text on every call
            graph = tf.function(lambda x: constant(x)[0], input_signature=[spec])
        calls[frozen] = graph
    return calls[frozen]


def mean_by_track(probs: np.ndarray, counts: list[int]) -> np.ndarray:
    """Average consecutive rows of ``probs``: ``counts[i]`` rows belong to track ``i``."""
    bounds = np.cumsum([0, *counts])
    return np.stack([probs[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True)])
