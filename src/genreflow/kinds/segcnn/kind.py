"""Kind ``segcnn``: a batch-normalised CNN on short segments, probabilities averaged per track."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from genreflow.core.config import ConfigError, FeaturesConfig
from genreflow.kinds import register_kind
from genreflow.kinds.base import KindConfig, TrainContext, check_share, check_whole
from genreflow.kinds.logmel import LogMelKind, band_limit, segment_windows


@dataclass
class SegCnnConfig(KindConfig):
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dense: int = 128
    dropout: float = 0.5
    spec_augment: bool = True
    crops_per_clip: int = 6   # random segments per clip and epoch (0 = all overlapping ones)
    band_limit: float = 0.3   # share of training crops low-passed as 8, 11 or 16 kHz audio
    mp3: float = 0.0          # share of training crops cut from the clip's MP3 copy
    lr_plateau: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_whole("crops_per_clip", self.crops_per_clip)
        check_share("band_limit", self.band_limit)
        check_share("mp3", self.mp3)


def build_segcnn(input_shape: tuple[int, int], n_classes: int, cfg: SegCnnConfig):
    """SpecAugment masks, conv/BN/ReLU/pool blocks, global average pooling (fast on CPU)."""
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    import keras
    from keras import layers

    from genreflow.kinds.segcnn.layers import SpecAugment

    inp = keras.Input(shape=(*input_shape, 1), name="log_mel")
    x = SpecAugment(name="spec_augment")(inp) if cfg.spec_augment else inp
    for i, f in enumerate(cfg.filters):
        x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D((2, 2), name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(cfg.dropout)(x)
    x = layers.Dense(cfg.dense, activation="relu", name="dense")(x)
    out = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inp, out, name="segcnn")


def mp3_copies(fs, p: float):
    """``(train clips' MP3 copies, p)`` for :class:`~genreflow.models.layers.RandomCrops`
    (None when ``p`` is 0); refused when the features hold no copies."""
    if not p:
        return None
    copies = fs.splits["train"].mp3
    if copies is None:
        raise ConfigError(f"mp3: {p} needs MP3 copies of the training clips; set "
                          "features.mp3_copies: true and run `dvc repro features`")
    return copies, p


@register_kind
class SegCnn(LogMelKind):
    """Overlapping ``features.segment_seconds`` windows; random crops for training."""

    name = "segcnn"
    Config = SegCnnConfig
    keras_modules = ("genreflow.kinds.segcnn.layers",)

    def check_project(self, mcfg: SegCnnConfig, cfg) -> None:
        """``mp3`` crops come from the features' MP3 copies (``features.mp3_copies``)."""
        if mcfg.mp3 and not cfg.features.mp3_copies:
            raise ConfigError(f"train.segcnn.mp3: {mcfg.mp3} needs MP3 copies of the training "
                              "clips; set features.mp3_copies: true")

    def window_frames(self, feat: FeaturesConfig) -> int:
        return feat.segment_frames

    def windows(self, spec, feat: FeaturesConfig):
        return segment_windows(spec, feat.segment_frames, feat.segment_hop_frames)

    def build(self, ctx: TrainContext, mcfg: SegCnnConfig, input_shape):
        net = build_segcnn(input_shape, len(ctx.features.classes), mcfg)
        return net, net

    def fit_data(self, ctx: TrainContext, mcfg: SegCnnConfig):

        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.models.layers import RandomCrops

        fs, feat = ctx.features, ctx.features.cfg

        def all_segments(split: str):
            f = fs.splits[split]
            wins = [self.windows(x, feat) for x in f.x]
            x = (np.concatenate(wins) if wins
                 else np.zeros((0, feat.n_mels, feat.segment_frames), np.float32))
            return x[..., None], np.repeat(f.y, [len(w) for w in wins])

        val = all_segments("val")
        for name in ("band_limit", "mp3"):
            if getattr(mcfg, name) and not mcfg.crops_per_clip:
                raise ConfigError(f"{name}: needs crops_per_clip > 0 (the random-crop trainer)")
        if mcfg.crops_per_clip:
            tr = fs.splits["train"]
            return {"x": RandomCrops(tr.x, tr.y, feat.segment_frames, mcfg.crops_per_clip,
                                     ctx.batch_size, ctx.seed,
                                     band_limit=band_limit(fs, mcfg.band_limit),
                                     alt=mp3_copies(fs, mcfg.mp3))}, val
        x, y = all_segments("train")
        return {"x": x, "y": y, "batch_size": ctx.batch_size, "shuffle": True}, val
