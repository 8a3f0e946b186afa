"""Kind ``inception``: a frozen InceptionV3 on spectrogram images with a new top (the paper's).

Embeddings of the frozen base are computed once per clip and cached beside the
features, keyed on every input they depend on (the features' bytes, the weights,
the image size, Keras' version and, for a random base, the seed).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreflow.core.config import FeaturesConfig
from genreflow.core.errors import GenreflowError
from genreflow.kinds import register_kind
from genreflow.kinds.base import KindConfig, Labels, Prepared, TrainContext, check_share
from genreflow.kinds.logmel import LogMelKind, band_limit

INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 + INCEPTION_NOTOP_FILE)


@dataclass
class InceptionConfig(KindConfig):
    optimizer: str = "sgd"
    learning_rate: float = 1e-4
    weights: str = "none"     # none | imagenet | path of INCEPTION_NOTOP_FILE
    image_size: int = 139     # InceptionV3 needs >= 75
    dense: int = 256
    dropout: float = 0.3
    band_limit: float = 0.6   # share of training clips with an extra copy low-passed as 8, 11 or 16 kHz audio
    narrow_band: bool = True  # a second top for clips with nothing above 6 kHz (logmel_band)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_share("band_limit", self.band_limit)


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


def files_digest(paths: list[Path]) -> str:
    """MD5 over the bytes of ``paths`` (in order)."""
    h = hashlib.md5()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def cache_key(features_dir: Path, cfg: InceptionConfig, seed: int) -> str:
    """Everything the embeddings depend on."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras

    from genreflow.models.layers import LOW_RATES

    feats = sorted(Path(features_dir).glob("*.npz")) + [Path(features_dir) / "stats.json"]
    weights = cfg.weights
    if weights not in ("none", "imagenet"):
        weights = files_digest([Path(weights).expanduser()])
    parts = {"features": files_digest(feats), "weights": weights, "image_size": cfg.image_size,
             "keras": keras.__version__, "band_limit": cfg.band_limit,
             "band_limit_rates": list(LOW_RATES) if cfg.band_limit else None,
             "narrow_band": cfg.narrow_band,
             # a random base and the low-passed copies both come from the seed
             "seed": seed if cfg.weights == "none" or cfg.band_limit else None}
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@register_kind
class Inception(LogMelKind):
    name = "inception"
    Config = InceptionConfig

    def window_frames(self, feat: FeaturesConfig) -> int:
        return feat.clip_frames

    def embeddings(self, ctx: TrainContext, cfg: InceptionConfig, base,
                   inputs) -> dict[str, np.ndarray]:
        """Base outputs of every clip, from the cache when its key matches (``inputs()``: what
        :meth:`embedded_inputs` gives, built only when the cache misses)."""
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        from genreflow.models.layers import SpectrogramImage

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
            ctx.log(f"inception embeddings {s}: {len(x)} clips in "
                    f"{time.perf_counter() - t0:.1f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
        return out

    def embedded_inputs(self, ctx: TrainContext, cfg: InceptionConfig) -> dict[str, np.ndarray]:
        """Every input the base embeds: the splits' clips, the low-passed copies of training
        clips (``train_aug``) and, with ``narrow_band``, the training clips' narrow-band view."""
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.kinds.logmel_band import BandRouter

        fs = ctx.features
        inputs = {**{s: f.x for s, f in fs.splits.items()},
                  "train_aug": self.low_passed_copies(ctx, cfg)[0]}
        if cfg.narrow_band:
            inputs["train_narrow"] = BandRouter.of(fs).narrow_view(fs.splits["train"].x)
        return inputs

    @staticmethod
    def _low_pass_draw(ctx: TrainContext, cfg: InceptionConfig):
        """``(BandLimit, cutoff per training clip)`` of the seeded draw (``inf`` = no copy),
        or ``None`` without ``band_limit``."""
        low_pass = band_limit(ctx.features, cfg.band_limit)
        if low_pass is None:
            return None
        n = len(ctx.features.splits["train"].y)
        return low_pass, low_pass.draw(np.random.default_rng(ctx.seed), n)

    def low_passed_copies(self, ctx: TrainContext, cfg: InceptionConfig
                          ) -> tuple[np.ndarray, np.ndarray]:
        """A ``band_limit`` share of the training clips, low-passed, and their labels: extra
        training rows, as a recording sampled at 8-16 kHz looks."""
        tr = ctx.features.splits["train"]
        draw = self._low_pass_draw(ctx, cfg)
        if draw is None:
            return tr.x[:0], tr.y[:0]
        low_pass, cutoffs = draw
        chosen = np.isfinite(cutoffs)
        x = np.array(tr.x[chosen], np.float32)
        low_pass.apply(x, cutoffs[chosen])
        return x, tr.y[chosen]

    def prepare(self, ctx: TrainContext, cfg: InceptionConfig) -> Prepared:
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        from genreflow.kinds.logmel_band import BandRouter
        from genreflow.models.layers import SpectrogramImage

        fs = ctx.features
        feat = fs.cfg
        base = inception_base(cfg)
        # built at most once: for the embeddings (when not cached) and the routing flags
        inputs = functools.cache(lambda: self.embedded_inputs(ctx, cfg))
        emb = self.embeddings(ctx, cfg, base, inputs)
        draw = self._low_pass_draw(ctx, cfg)  # the copies' labels (embeddings may be cached)
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
            classes=list(fs.classes), front_end={**self.front_end_of(fs), "narrow_band": routed},
            example=fs.splits["val"].x[:1, ..., None].astype(np.float32),
            data_source=fs.meta["data_source"], split_digest=fs.meta.get("split_digest", ""))

    def load_servable(self, path: Path):
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import genreflow.kinds.logmel_band  # noqa: F401  (registers its flag layer)

        return super().load_servable(path)
