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

import numpy as np
import pandas as pd

from genreflow.audio.decode import LOUDNESS_DBFS
from genreflow.audio.decode import decode as audio_decode
from genreflow.core.config import ConfigError
from genreflow.kinds import register_kind, settings
from genreflow.kinds.base import (
    KindConfig,
    Labels,
    ModelKind,
    Prepared,
    TrainContext,
    check_share,
)
from genreflow.kinds.embedding_cache import code_digest, embed_manifest, file_md5, load_embeddings
from genreflow.kinds.musicnn.front import band_limit_copies, clip_patches
from genreflow.kinds.musicnn.net import (
    BLOCKS,
    SAMPLE_RATE,
    VARIANTS,
    build_musicnn,
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


@register_kind
class Musicnn(ModelKind):
    name = "musicnn"
    Config = MusicnnConfig

    def embed(self, cfg, manifest: pd.DataFrame, out_dir: Path, data_source: str,
              log=print) -> dict:
        """The ``embed`` stage for this kind: per-patch embeddings of every clip."""
        mcfg: MusicnnConfig = settings(cfg.train, self.name)

        key = self._key(mcfg)
        index = next(weights_dir(mcfg.variant).glob("*.index"))
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        from genreflow.kinds.musicnn import band, front, net

        # the front-end's code: resampling and loudness in audio.decode, the network, the
        # patches and copies, the band flag (not this module: a change to the top must not
        # re-embed); comments and docstrings are not part of it
        code = [code_digest(m.__file__) for m in (audio_decode, net, front, band)]
        cache_key = {"variant": mcfg.variant, "weights": file_md5(index), "code": code,
                     "loudness_dbfs": LOUDNESS_DBFS,
                     "front_end": "float32 log10(10000 mel + 1), 187-frame patches, hop 187"}
        common = dict(key=key, output=mcfg.layer, sample_rate=self._rate(),
                      encoder=lambda: frozen(mcfg.variant), data_source=data_source,
                      workers=cfg.features.workers, log=log)
        meta = embed_manifest(manifest, out_dir, cache_key=cache_key, patches_of=clip_patches,
                              augment=band_limit_copies(mcfg.band_limit),
                              also=("narrow_band",), **common)
        if mcfg.routed:  # a fine-tuned base is not routed: no view
            log(f"embeddings: the narrow-band view (through {band.NARROW_RATE} Hz)")
            embed_manifest(manifest, out_dir / NARROW_VIEW, patches_of=band.narrow_patches,
                           cache_key={**cache_key, "view": band.NARROW_RATE}, **common)
        return meta

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
            front_end={"sample_rate": self._rate(), "variant": cfg.variant, "layer": cfg.layer,
                       "aggregate": "mean_logits" if linear else "mean_probs",
                       "narrow_band": routed},
            example=np.zeros((1, *base.input_shape[1:]), np.float32),
            data_source=emb.data_source, split_digest=emb.split_digest)

    def audio_windows(self, y: np.ndarray, front_end: dict) -> np.ndarray:
        return clip_patches(y)

    def load_servable(self, path: Path):
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import genreflow.kinds.musicnn.band  # noqa: F401  (registers its layers)

        return super().load_servable(path)

    def aggregate(self, outputs: np.ndarray, front_end: dict) -> np.ndarray:
        if front_end.get("aggregate") == "mean_logits":
            return softmax(outputs.mean(axis=0))
        return outputs.mean(axis=0)
