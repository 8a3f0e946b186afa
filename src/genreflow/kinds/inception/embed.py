"""Kind ``inception``'s frozen base and its cached embeddings: every clip of the feature set
(and the low-passed copies and narrow-band view of the training clips) through InceptionV3.

The cache (``artifacts/cache/inception_<key>.npz``, beside the features) is keyed by
:func:`genreflow.core.cachekey.cache_key` on this module's code and every genreflow module it
imports (the spectrogram image, the band limit, the narrow-band view, the log-mel front-end
...), plus the features' bytes, the weights, the settings the embeddings read, Keras' version
and, when something is drawn from it, the seed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genreflow.core.cachekey import cache_key as keyed
from genreflow.core.cachekey import files_digest
from genreflow.core.errors import GenreflowError
from genreflow.kinds.base import TrainContext
from genreflow.kinds.inception.config import INCEPTION_NOTOP_FILE, INCEPTION_URL, InceptionConfig
from genreflow.kinds.logmel import band_limit

#: the modules whose code computes the cached embeddings (and everything they import)
CACHE_ROOTS = ("genreflow.kinds.inception.embed",)


def inception_base(cfg: InceptionConfig):
    """Frozen InceptionV3 base (global average pooled), weights from imagenet, a file or none."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

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
            f"with internet ({INCEPTION_URL}), then either copy it to ~/.keras/models/ or "
            "set train.inception.weights in params.yaml to its path; or set it to 'none'."
        ) from None
    base.trainable = False
    return base


def cache_key(features_dir: Path, cfg: InceptionConfig, seed: int,
              src: str | Path | None = None) -> str:
    """Everything the embeddings depend on: the code (of the source tree ``src``, default the
    running one), the features, the weights, the settings they read, Keras, the seed."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

    feats = sorted(Path(features_dir).glob("*.npz")) + [Path(features_dir) / "stats.json"]
    weights = cfg.weights
    if weights not in ("none", "imagenet"):
        weights = files_digest([Path(weights).expanduser()])
    inputs = {"features": files_digest(feats), "weights": weights, "image_size": cfg.image_size,
              "keras": keras.__version__, "band_limit": cfg.band_limit,
              "narrow_band": cfg.narrow_band,
              # a random base and the low-passed copies both come from the seed
              "seed": seed if cfg.weights == "none" or cfg.band_limit else None}
    return keyed(CACHE_ROOTS, inputs, src)


def embeddings(ctx: TrainContext, cfg: InceptionConfig, base, inputs) -> dict[str, np.ndarray]:
    """Base outputs of every clip, from the cache when its key matches (``inputs()``: what
    :func:`embedded_inputs` gives, built only when the cache misses)."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

    from genreflow.kinds.inception.layers import SpectrogramImage

    fs = ctx.features
    path = (Path(ctx.features_dir).resolve().parent / "cache"
            / f"inception_{cache_key(ctx.features_dir, cfg, ctx.seed)}.npz")
    names = [*fs.splits, "train_aug"] + (["train_narrow"] if cfg.narrow_band else [])
    if path.exists():
        with np.load(path) as z:
            return {s: z[s] for s in names}
    inp = keras.Input(shape=(*fs.splits["train"].x.shape[1:], 1))
    encoder = keras.Model(inp, base(SpectrogramImage(cfg.image_size)(inp), training=False))
    out = {}
    for s, x in inputs().items():
        t0 = time.perf_counter()
        out[s] = (encoder.predict(x[..., None], batch_size=32, verbose=0) if len(x)
                  else np.zeros((0, base.output_shape[-1]), np.float32))
        ctx.log(f"inception embeddings {s}: {len(x)} clips in {time.perf_counter() - t0:.1f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def embedded_inputs(ctx: TrainContext, cfg: InceptionConfig) -> dict[str, np.ndarray]:
    """Every input the base embeds: the splits' clips, the low-passed copies of training
    clips (``train_aug``) and, with ``narrow_band``, the training clips' narrow-band view."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    from genreflow.kinds.logmel_band import BandRouter

    fs = ctx.features
    inputs = {**{s: f.x for s, f in fs.splits.items()},
              "train_aug": low_passed_copies(ctx, cfg)[0]}
    if cfg.narrow_band:
        inputs["train_narrow"] = BandRouter.of(fs).narrow_view(fs.splits["train"].x)
    return inputs


def low_pass_draw(ctx: TrainContext, cfg: InceptionConfig):
    """``(BandLimit, cutoff per training clip)`` of the seeded draw (``inf`` = no copy),
    or ``None`` without ``band_limit``."""
    low_pass = band_limit(ctx.features, cfg.band_limit)
    if low_pass is None:
        return None
    n = len(ctx.features.splits["train"].y)
    return low_pass, low_pass.draw(np.random.default_rng(ctx.seed), n)


def low_passed_copies(ctx: TrainContext, cfg: InceptionConfig) -> tuple[np.ndarray, np.ndarray]:
    """A ``band_limit`` share of the training clips, low-passed, and their labels: extra
    training rows, as a recording sampled at 8-16 kHz looks."""
    tr = ctx.features.splits["train"]
    draw = low_pass_draw(ctx, cfg)
    if draw is None:
        return tr.x[:0], tr.y[:0]
    low_pass, cutoffs = draw
    chosen = np.isfinite(cutoffs)
    x = np.array(tr.x[chosen], np.float32)
    low_pass.apply(x, cutoffs[chosen])
    return x, tr.y[chosen]
