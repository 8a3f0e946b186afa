"""Kind ``inception``: a frozen InceptionV3 on spectrogram images with a new top (the paper's).

Embeddings of the frozen base are computed once per clip and cached beside the
features, keyed on every input they depend on (the features' bytes, the weights,
the image size, Keras' version and, for a random base, the seed).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreflow.config import FeaturesConfig
from genreflow.errors import GenreflowError
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
    band_limit: float = 0.3   # share of training clips with an extra copy low-passed as 8, 11 or 16 kHz audio

    def __post_init__(self) -> None:
        super().__post_init__()
        check_share("band_limit", self.band_limit)


def inception_base(cfg: InceptionConfig):
    """Frozen InceptionV3 base (global average pooled), weights from imagenet, a file or none."""
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


def build_top(n_features: int, n_classes: int, cfg: InceptionConfig, train_embeddings=None):
    """The new top on embeddings, standardised with training-split statistics
    (a frozen base without ImageNet weights gives features of about 1e-4)."""
    import keras
    from keras import layers

    inp = keras.Input(shape=(n_features,), name="embedding")
    norm = layers.Normalization(name="embedding_norm")
    if train_embeddings is not None and len(train_embeddings):
        norm.adapt(train_embeddings)
    x = layers.Dropout(cfg.dropout)(norm(inp))
    x = layers.Dense(cfg.dense, activation="relu", name="dense")(x)
    x = layers.Dropout(cfg.dropout)(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="inception_top")


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
    import keras

    from genreflow.keras_parts import LOW_RATES

    feats = sorted(Path(features_dir).glob("*.npz")) + [Path(features_dir) / "stats.json"]
    weights = cfg.weights
    if weights not in ("none", "imagenet"):
        weights = files_digest([Path(weights).expanduser()])
    parts = {"features": files_digest(feats), "weights": weights, "image_size": cfg.image_size,
             "keras": keras.__version__, "band_limit": cfg.band_limit,
             "band_limit_rates": list(LOW_RATES) if cfg.band_limit else None,
             # a random base and the low-passed copies both come from the seed
             "seed": seed if cfg.weights == "none" or cfg.band_limit else None}
    return hashlib.md5(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@register_kind
class Inception(LogMelKind):
    name = "inception"
    Config = InceptionConfig

    def window_frames(self, feat: FeaturesConfig) -> int:
        return feat.clip_frames

    def embeddings(self, ctx: TrainContext, cfg: InceptionConfig, base) -> dict[str, np.ndarray]:
        """Base outputs of every clip, from the cache when its key matches."""
        import keras

        from genreflow.keras_parts import SpectrogramImage

        fs = ctx.features
        path = (Path(ctx.features_dir).resolve().parent / "cache"
                / f"inception_{cache_key(ctx.features_dir, cfg, ctx.seed)}.npz")
        if path.exists():
            with np.load(path) as z:
                return {s: z[s] for s in [*fs.splits, "train_aug"]}
        inp = keras.Input(shape=(*fs.splits["train"].x.shape[1:], 1))
        encoder = keras.Model(inp, base(SpectrogramImage(cfg.image_size)(inp), training=False))
        out = {}
        for s, x in {**{s: f.x for s, f in fs.splits.items()},
                     "train_aug": self.low_passed_copies(ctx, cfg)[0]}.items():
            t0 = time.perf_counter()
            out[s] = (encoder.predict(x[..., None], batch_size=32, verbose=0) if len(x)
                      else np.zeros((0, base.output_shape[-1]), np.float32))
            ctx.log(f"inception embeddings {s}: {len(x)} clips in "
                    f"{time.perf_counter() - t0:.1f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
        return out

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
        import keras

        from genreflow.keras_parts import SpectrogramImage

        fs = ctx.features
        feat = fs.cfg
        base = inception_base(cfg)
        emb = self.embeddings(ctx, cfg, base)
        draw = self._low_pass_draw(ctx, cfg)  # the copies' labels (embeddings may be cached)
        train_y = fs.splits["train"].y
        aug_y = train_y[np.isfinite(draw[1])] if draw else train_y[:0]
        n_classes = len(fs.classes)
        top = build_top(emb["train"].shape[1], n_classes, cfg, train_embeddings=emb["train"])
        inp = keras.Input(shape=(feat.n_mels, feat.clip_frames, 1), name="log_mel")
        servable = keras.Model(
            inp, top(base(SpectrogramImage(cfg.image_size, name="to_image")(inp), training=False)),
            name="inception")

        def track_probs(split: str) -> np.ndarray:
            e = emb[split]
            return (np.asarray(top.predict(e, verbose=0)) if len(e)
                    else np.zeros((0, n_classes), np.float32))

        return Prepared(
            net=top, servable=servable,
            train={"x": np.concatenate([emb["train"], emb["train_aug"]]),
                   "y": np.concatenate([fs.splits["train"].y, aug_y]),
                   "batch_size": ctx.batch_size, "shuffle": True},
            val=(emb["val"], fs.splits["val"].y), track_probs=track_probs,
            labels={s: Labels(ids=v.ids, y=v.y) for s, v in fs.splits.items()},
            classes=list(fs.classes), front_end=self.front_end_of(fs),
            example=fs.splits["val"].x[:1, ..., None].astype(np.float32),
            data_source=fs.meta["data_source"], split_digest=fs.meta.get("split_digest", ""))
