"""Kind ``musicnn``: the MSD-trained musicnn network (Pons & Serra 2019), frozen, with a new top.

Embeddings of the frozen base are computed once per clip by the ``embed`` stage
(3 s patches at 16 kHz, the network's own front-end) and kept in
``artifacts/embeddings/musicnn/``; training the top reads only those, so changing the
top's settings never recomputes them. Served, the model is base + top on the raw
audio's patches; probabilities are averaged over a track's patches. With
``trainable_from`` the last blocks are fine-tuned on patches computed from audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from genreflow.core.cachekey import cache_key, files_digest
from genreflow.core.config import ConfigError
from genreflow.kinds import register_kind, settings
from genreflow.kinds.base import (
    FrontEnd,
    KindConfig,
    Labels,
    ModelKind,
    Prepared,
    TrainContext,
    check_share,
)
from genreflow.kinds.embedding_cache import embed_manifest, load_embeddings
from genreflow.kinds.musicnn.encoder import CACHE_ROOTS, base_model, frozen
from genreflow.kinds.musicnn.front import band_limit_copies, clip_patches
from genreflow.kinds.musicnn.net import (
    BLOCKS,
    SAMPLE_RATE,
    VARIANTS,
    set_trainable_from,
    weights_dir,
)
from genreflow.kinds.musicnn.top import build_top, frozen_top_data, softmax
from genreflow.models.forward import forward, mean_by_track

LAYERS = ("penultimate", "max_pool", "mean_pool", "taggram")
NARROW_VIEW = "narrow"  # the embed stage's subfolder for the narrow-band view
TOPS = ("linear", "dense")


@dataclass
class MusicnnConfig(KindConfig):
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    variant: str = "MSD_musicnn"        # MSD_musicnn | MTT_musicnn
    layer: str = "penultimate"          # the embedding the top reads
    top: str = "linear"                 # linear | dense
    dense: int = 128                    # units of the dense top
    dropout: float = 0.0                # on the top's input (and hidden layer)
    l2: float = 0.02                    # L2 penalty on the top's weights (per weight, per sample)
    band_limit: float = 0.5             # share of training clips with one extra 8/11 kHz copy
    narrow_band: bool = True            # a second top for patches with nothing above 6 kHz
    trainable_from: str | None = None   # a block to fine-tune from (null = frozen base)
    lr_plateau: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()

        for name, value, allowed in (("variant", self.variant, VARIANTS),
                                     ("layer", self.layer, LAYERS), ("top", self.top, TOPS)):
            if value not in allowed:
                raise ConfigError(f"{name}: expected one of {allowed}, got {value!r}")
        if self.l2 < 0:
            raise ConfigError(f"l2: expected a number >= 0, got {self.l2!r}")
        check_share("band_limit", self.band_limit)
        if self.trainable_from is not None and self.trainable_from not in BLOCKS[1:]:
            raise ConfigError(f"trainable_from: expected null or one of {BLOCKS[1:]}, "
                              f"got {self.trainable_from!r}")

    @property
    def routed(self) -> bool:
        """Whether narrow-band patches get their own top: only over a frozen base."""
        return self.narrow_band and self.trainable_from is None


@dataclass(kw_only=True)
class MusicnnFrontEnd(FrontEnd):
    """musicnn's own front-end (16 kHz, 3 s patches: ``front``) before the frozen base of
    ``variant``; ``aggregate``: how a track's patch outputs are combined."""

    AGGREGATES: ClassVar[tuple[str, ...]] = ("mean_logits", "mean_probs")
    variant: str
    layer: str
    aggregate: str = "mean_probs"
    narrow_band: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aggregate not in self.AGGREGATES:
            raise ConfigError(f"front_end.aggregate: expected one of {self.AGGREGATES}, "
                              f"got {self.aggregate!r}")


@register_kind
class Musicnn(ModelKind):
    name = "musicnn"
    Config = MusicnnConfig
    FrontEnd = MusicnnFrontEnd
    keras_modules = ("genreflow.kinds.musicnn.band",)
    cache_roots = CACHE_ROOTS
    embed_params = ("variant", "layer", "band_limit", "narrow_band", "trainable_from")

    def embed(self, cfg, manifest: pd.DataFrame, out_dir: Path, data_source: str,
              log=print) -> dict:
        """The ``embed`` stage for this kind: per-patch embeddings of every clip."""
        mcfg: MusicnnConfig = settings(cfg.train, self.name)

        key = self._key(mcfg)
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.kinds.musicnn import band

        clip_key = self.cache_key(mcfg)
        common = dict(key=key, output=mcfg.layer, sample_rate=self._rate(),
                      encoder=lambda: frozen(mcfg.variant), data_source=data_source,
                      workers=cfg.features.workers, log=log)
        meta = embed_manifest(manifest, out_dir, cache_key=clip_key, patches_of=clip_patches,
                              augment=band_limit_copies(mcfg.band_limit),
                              also=("narrow_band",), **common)
        if mcfg.routed:  # a fine-tuned base is not routed: no view
            log(f"embeddings: the narrow-band view (through {band.NARROW_RATE} Hz)")
            embed_manifest(manifest, out_dir / NARROW_VIEW, patches_of=band.narrow_patches,
                           cache_key=self.cache_key(mcfg, view=band.NARROW_RATE), **common)
        return meta

    def cache_key(self, mcfg: MusicnnConfig, view: int | None = None,
                  src: str | Path | None = None) -> str:
        """The per-clip embedding cache's key: the code of :data:`CACHE_ROOTS` and what it
        imports (in the source tree ``src``, default the running one), the variant's weights
        and, for the narrow-band view, its rate. Not the top's settings nor this module: a
        change to the top never embeds the clips again."""
        index = next(weights_dir(mcfg.variant).glob("*.index"))
        inputs = {"variant": mcfg.variant, "weights": files_digest([index]), "view": view}
        return cache_key(self.cache_roots, inputs, src)

    @staticmethod
    def _key(cfg: MusicnnConfig) -> dict:
        """What the embed stage's output depends on among the kind's settings."""
        return {"variant": cfg.variant, "layer": cfg.layer, "band_limit": cfg.band_limit,
                "narrow_band": cfg.routed}

    @staticmethod
    def _rate() -> int:
        return SAMPLE_RATE

    def prepare(self, ctx: TrainContext, cfg: MusicnnConfig) -> Prepared:
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras

        emb = load_embeddings(ctx.embeddings_dir / self.name)
        if emb.key != self._key(cfg):
            raise ConfigError(f"train.musicnn: the embeddings were made with {emb.key}, but "
                              f"params.yaml asks for {self._key(cfg)}; "
                              "run `dvc repro embed` (or `genreflow embed`) first")
        n_classes = len(emb.classes)
        base = base_model(cfg.variant, cfg.layer)
        linear = cfg.top == "linear" and cfg.trainable_from is None
        routed = cfg.routed
        top, top_logits = build_top(emb.x["train"].shape[1], n_classes, cfg, emb.x["train"],
                                    narrow_band=routed)
        patch = keras.Input(base.input_shape[1:], name="patch")
        head_input = base(patch)
        if routed:
            # deferred: Keras import (see docs/benchmarks.md, Import cost)
            from genreflow.kinds.musicnn.band import NarrowBand, first_high_band

            head_input = [head_input, NarrowBand(first_high_band(), name="narrow_band")(patch)]
        # A linear top commutes with the mean over patches: it is trained on each track's mean
        # embedding and served as the softmax of its patches' mean logits (the same number).
        servable = keras.Model(patch, (top_logits if linear else top)(head_input),
                               name="musicnn")
        labels = {s: Labels(ids=emb.ids[s], y=emb.y[s]) for s in emb.ids}

        if cfg.trainable_from is None:
            net = top
            narrow = load_embeddings(ctx.embeddings_dir / self.name / NARROW_VIEW) if routed else None
            data, track_probs = frozen_top_data(emb, narrow, top, top_logits, linear)
        else:
            set_trainable_from(base, cfg.trainable_from)
            net = servable
            spectra = emb.patches_from_audio(clip_patches, self._rate(), ctx.log)
            data = {s: (np.concatenate(p), np.repeat(emb.y[s], [len(q) for q in p]))
                    for s, p in spectra.items()}

            def track_probs(split: str) -> np.ndarray:
                p = spectra[split]
                return mean_by_track(forward(servable, np.concatenate(p), 64),
                                     [len(q) for q in p])
        x_tr, y_tr = data["train"]
        return Prepared(
            net=net, servable=servable,
            # routed, a batch holds rows of both tops: twice the rows, the same for each top
            train={"x": x_tr, "y": y_tr, "batch_size": ctx.batch_size * (2 if routed else 1),
                   "shuffle": True},
            val=data["val"], track_probs=track_probs, labels=labels, classes=emb.classes,
            front_end=MusicnnFrontEnd(sample_rate=self._rate(), variant=cfg.variant,
                                      layer=cfg.layer, narrow_band=routed,
                                      aggregate="mean_logits" if linear else "mean_probs"),
            example=np.zeros((1, *base.input_shape[1:]), np.float32),
            data_source=emb.data_source, split_digest=emb.split_digest)

    def audio_windows(self, y: np.ndarray, front_end: MusicnnFrontEnd) -> np.ndarray:
        return clip_patches(y)

    def aggregate(self, outputs: np.ndarray, front_end: MusicnnFrontEnd) -> np.ndarray:
        if front_end.aggregate == "mean_logits":
            return softmax(outputs.mean(axis=0))
        return outputs.mean(axis=0)
