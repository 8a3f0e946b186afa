"""Kind ``segcnn``: a batch-normalised CNN on short segments, probabilities averaged per track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from genreflow.core.config import ConfigError
from genreflow.core.errors import GenreflowError
from genreflow.kinds import register_kind
from genreflow.kinds.base import TrainContext
from genreflow.kinds.logmel import LogMelFrontEnd, LogMelKind, band_limit, segment_windows
from genreflow.kinds.segcnn.config import (
    SegCnnConfig,
    check_against_project,
    check_segment,
    segment_frames,
)

#: segcnn's windows in front-end version 1, when ``features`` held them: those defaults
V1_SEGMENT = {"segment_seconds": 3.0, "segment_overlap": 0.5}


@dataclass(kw_only=True)
class SegCnnFrontEnd(LogMelFrontEnd):
    """The log-mel front-end and the run's windows (``train.segcnn.segment_*``).

    Version 1 (bundles trained before the windows were segcnn's settings) kept them in
    ``features``; :meth:`upgrade` takes them from there, so those bundles serve as trained.
    """

    VERSION: ClassVar[int] = 2
    version: int = 2
    segment_seconds: float
    segment_overlap: float

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            check_segment(self.segment_seconds, self.segment_overlap)
        except ConfigError as exc:
            raise GenreflowError(f"front_end.{exc}; retrain the model "
                                 "(`genreflow train segcnn`)") from None

    @classmethod
    def upgrade(cls, raw: dict) -> dict:
        if raw.get("version") != 1:
            return raw
        features = raw.get("features") if isinstance(raw.get("features"), dict) else {}
        return {**raw, **{k: features.get(k, v) for k, v in V1_SEGMENT.items()},
                "version": cls.VERSION}

    @property
    def frames(self) -> tuple[int, int]:
        """``(width, hop)`` of the windows, in frames."""
        return segment_frames(self.features, self.segment_seconds, self.segment_overlap)


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
    """Overlapping ``train.segcnn.segment_seconds`` windows; random crops for training."""

    name = "segcnn"
    Config = SegCnnConfig
    FrontEnd = SegCnnFrontEnd
    keras_modules = ("genreflow.kinds.segcnn.layers",)

    def check_project(self, mcfg: SegCnnConfig, cfg) -> None:
        check_against_project(mcfg, cfg)

    def front_end_of(self, fs, mcfg: SegCnnConfig, **extra) -> SegCnnFrontEnd:
        return super().front_end_of(fs, mcfg, segment_seconds=mcfg.segment_seconds,
                                    segment_overlap=mcfg.segment_overlap, **extra)

    def window_frames(self, fe: SegCnnFrontEnd) -> int:
        return fe.frames[0]

    def windows(self, spec, fe: SegCnnFrontEnd):
        return segment_windows(spec, *fe.frames)

    def build(self, ctx: TrainContext, mcfg: SegCnnConfig, input_shape):
        net = build_segcnn(input_shape, len(ctx.features.classes), mcfg)
        return net, net

    def fit_data(self, ctx: TrainContext, mcfg: SegCnnConfig, fe: SegCnnFrontEnd):
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.models.layers import RandomCrops

        for name in ("band_limit", "mp3"):
            if getattr(mcfg, name) and not mcfg.crops_per_clip:
                raise ConfigError(f"{name}: needs crops_per_clip > 0 (the random-crop trainer)")
        fs = ctx.features
        width = self.window_frames(fe)

        def all_segments(split: str):
            f = fs.splits[split]
            wins = [self.windows(x, fe) for x in f.x]
            x = (np.concatenate(wins) if wins
                 else np.zeros((0, fs.cfg.n_mels, width), np.float32))
            return x[..., None], np.repeat(f.y, [len(w) for w in wins])

        val = all_segments("val")
        if mcfg.crops_per_clip:
            tr = fs.splits["train"]
            return {"x": RandomCrops(tr.x, tr.y, width, mcfg.crops_per_clip,
                                     ctx.batch_size, ctx.seed,
                                     band_limit=band_limit(fs, mcfg.band_limit),
                                     alt=mp3_copies(fs, mcfg.mp3))}, val
        x, y = all_segments("train")
        return {"x": x, "y": y, "batch_size": ctx.batch_size, "shuffle": True}, val
