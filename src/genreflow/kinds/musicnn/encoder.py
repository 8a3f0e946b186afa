"""Kind ``musicnn``'s frozen base as the ``embed`` stage runs it: every embedding of a patch,
and its narrow-band flag. With ``front`` and ``band``, the code the embedding cache keys on."""

from __future__ import annotations

from genreflow.kinds.musicnn.net import build_musicnn, set_trainable_from

#: the modules whose code computes the cached embeddings (and everything they import)
CACHE_ROOTS = ("genreflow.kinds.musicnn.encoder", "genreflow.kinds.musicnn.front",
               "genreflow.kinds.musicnn.band", "genreflow.kinds.embedding_cache")


def frozen(variant: str):
    """The pretrained network, frozen, with every embedding as an output (a dict), and
    ``narrow_band``: 1 for a patch with nothing above 6 kHz (``band``)."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

    from genreflow.kinds.musicnn.band import NarrowBand, first_high_band

    net = build_musicnn(variant)
    set_trainable_from(net, None)
    flag = NarrowBand(first_high_band(), name="narrow_band")(net.input)
    return keras.Model(net.input, {**net.output, "narrow_band": flag}, name=net.name)


def base_model(variant: str, layer: str):
    """The frozen pretrained network with one output: ``layer``'s embedding per patch."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

    net = frozen(variant)
    return keras.Model(net.input, net.output[layer], name=f"{variant.lower()}_{layer}")
