"""Kinds that read genreflow's own cached log-mel features (the ``features`` stage).

One front-end for training and serving: loudness-normalised signal, log-mel at
``features.sample_rate``, band statistics of the training split. Windows cover
real audio only (no padding to the training length).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from genreflow.audio.decode import LOUDNESS_DBFS
from genreflow.audio.spectrum import FLOOR_DB, LogMelStream
from genreflow.core.config import FeaturesConfig, flatten
from genreflow.core.errors import GenreflowError
from genreflow.kinds.base import (
    FrontEnd,
    KindConfig,
    Labels,
    ModelKind,
    Prepared,
    TrainContext,
    WindowStream,
)
from genreflow.models.featurestore import normalise
from genreflow.models.forward import forward, mean_by_track


def whole_windows(spec: np.ndarray, width: int) -> np.ndarray:
    """Clip-length windows over ``(n_mels, frames)``: ``(n, n_mels, width)``.

    Longer signals give consecutive windows, plus one aligned to the end when at least
    half a window would be left unseen (so a clip of the training length plus a few frames
    gets exactly the training input); a shorter signal is tiled (repeated) to one window:
    the model sees only real audio, never silence padding.
    """
    frames = spec.shape[-1]
    if frames < width:
        spec = np.tile(spec, (1, -(-width // frames)))[:, :width]
        frames = width
    starts = list(range(0, frames - width + 1, width))
    if frames - (starts[-1] + width) >= width / 2:
        starts.append(frames - width)
    return np.stack([spec[:, s:s + width] for s in starts])


def segment_windows(spec: np.ndarray, width: int, hop: int) -> np.ndarray:
    """Overlapping ``width``-frame windows over real frames, plus one aligned to the end when
    at least half a hop would be left unseen."""
    frames = spec.shape[-1]
    if frames < width:
        raise GenreflowError(f"the signal gives {frames} frames, fewer than one "
                             f"{width}-frame window")
    starts = list(range(0, frames - width + 1, hop))
    if frames - (starts[-1] + width) >= hop / 2:
        starts.append(frames - width)
    return np.stack([spec[:, s:s + width] for s in starts])


def band_floor(fs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centre Hz, normalised floor, train std in dB)`` of each mel band of a feature set."""
    # deferred: librosa import (see docs/benchmarks.md, Import cost)
    import librosa

    feat = fs.cfg
    hz = librosa.mel_frequencies(feat.n_mels + 2, fmax=feat.sample_rate / 2)[1:-1]
    mean, std = np.asarray(fs.stats["mean"]), np.asarray(fs.stats["std"])
    return hz, (FLOOR_DB - mean) / std, std


def band_limit(fs, p: float):
    """The :class:`~genreflow.models.layers.BandLimit` of a feature set (None when ``p`` is 0)."""
    if not p:
        return None
    # deferred: Keras import (see docs/benchmarks.md, Import cost)
    from genreflow.models.layers import BandLimit

    hz, floor, _ = band_floor(fs)
    return BandLimit(hz, floor, p)


@dataclass(kw_only=True)
class LogMelFrontEnd(FrontEnd):
    """The log-mel kinds' front-end: the features' settings, the training split's band
    statistics, the log-mel floor and the loudness the signal is normalised to."""

    features: FeaturesConfig
    stats: dict
    floor_db: float = FLOOR_DB
    loudness_dbfs: float = LOUDNESS_DBFS

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.features, dict):  # read back from JSON
            try:
                self.features = FeaturesConfig.from_saved(self.features)
            except TypeError as exc:
                raise GenreflowError(f"front_end.features: {exc}; retrain the model "
                                     "(`genreflow train KIND`)") from None
        elif not isinstance(self.features, FeaturesConfig):
            raise GenreflowError(f"front_end.features: expected a mapping, got "
                                 f"{type(self.features).__name__}; retrain the model "
                                 "(`genreflow train KIND`)")

    def logged_params(self) -> dict[str, Any]:
        return flatten(self.features, "features.")


class LogMelKind(ModelKind):
    """Base of the kinds fed by ``artifacts/features``; subclasses define the network and,
    unless they read whole clips, the windows. Windows are a function of the front-end, the
    same one in training and in the bundle."""

    FrontEnd = LogMelFrontEnd

    def window_frames(self, fe: LogMelFrontEnd) -> int:
        """Frames of one model input: a whole clip by default."""
        return fe.features.clip_frames

    def windows(self, spec: np.ndarray, fe: LogMelFrontEnd) -> np.ndarray:
        """Model inputs ``(n, n_mels, w)`` for one normalised log-mel."""
        return whole_windows(spec, self.window_frames(fe))

    def track_probs(self, model, x_clips: np.ndarray, fe: LogMelFrontEnd) -> np.ndarray:
        """Track probabilities: the mean over each clip's windows."""
        if len(x_clips) == 0:
            return np.zeros((0, model.output_shape[-1]), np.float32)
        per_track = [self.windows(x, fe) for x in x_clips]
        probs = forward(model, np.concatenate(per_track)[..., None])
        return mean_by_track(probs, [len(w) for w in per_track])

    # --------------------------------------------------------------------- training
    def build(self, ctx: TrainContext, mcfg: KindConfig, input_shape: tuple[int, int]):
        """``(net, servable)``: the Keras model to fit and the one to serve."""
        raise NotImplementedError

    def fit_data(self, ctx: TrainContext, mcfg: KindConfig,
                 fe: LogMelFrontEnd) -> tuple[dict, tuple]:
        """Training kwargs and validation data for inputs cut as the run's front-end ``fe``
        cuts them: whole clips by default; with a ``band_limit`` setting, a share of them
        low-passed afresh every epoch."""
        fs = ctx.features
        tr, va = fs.splits["train"], fs.splits["val"]
        low_pass = band_limit(fs, getattr(mcfg, "band_limit", 0.0))
        if low_pass is not None:
            # deferred: Keras import (see docs/benchmarks.md, Import cost)
            from genreflow.models.layers import RandomCrops

            return ({"x": RandomCrops(tr.x, tr.y, tr.x.shape[-1], 1, ctx.batch_size, ctx.seed,
                                      band_limit=low_pass)}, (va.x[..., None], va.y))
        return ({"x": tr.x[..., None], "y": tr.y, "batch_size": ctx.batch_size, "shuffle": True},
                (va.x[..., None], va.y))

    def prepare(self, ctx: TrainContext, mcfg: KindConfig) -> Prepared:
        fs = ctx.features
        fe = self.front_end_of(fs, mcfg)
        input_shape = (fs.cfg.n_mels, self.window_frames(fe))
        net, servable = self.build(ctx, mcfg, input_shape)
        train, val = self.fit_data(ctx, mcfg, fe)
        return Prepared(
            net=net, servable=servable, train=train, val=val,
            track_probs=lambda s: self.track_probs(net, fs.splits[s].x, fe),
            labels={s: Labels(ids=v.ids, y=v.y) for s, v in fs.splits.items()},
            classes=list(fs.classes), front_end=fe,
            example=self.windows(fs.splits["val"].x[0] if len(fs.splits["val"].y)
                                 else fs.splits["train"].x[0], fe)[:1, ..., None]
            .astype(np.float32),
            data_source=fs.meta["data_source"], split_digest=fs.meta.get("split_digest", ""))

    def front_end_of(self, fs, mcfg: KindConfig, **extra) -> LogMelFrontEnd:
        """The front-end of the feature set ``fs`` for a run with settings ``mcfg`` (a
        subclass adds its own fields from them, or as ``extra``)."""
        return self.FrontEnd(sample_rate=fs.cfg.sample_rate, features=fs.cfg, stats=fs.stats,
                             floor_db=fs.meta.get("floor_db", FLOOR_DB),
                             loudness_dbfs=fs.meta.get("loudness_dbfs", LOUDNESS_DBFS), **extra)

    # ---------------------------------------------------------------------- serving
    def window_stream(self, front_end: LogMelFrontEnd) -> LogMelWindows:
        return LogMelWindows(self, front_end)

    def audio_windows(self, y: np.ndarray, front_end: LogMelFrontEnd) -> np.ndarray:
        stream = self.window_stream(front_end)
        stream.feed(y)
        return stream.windows()


class LogMelWindows(WindowStream):
    """The log-mel kinds' front-end while the file is decoded: every frame's spectrum as soon
    as its samples arrive; loudness, floor, training statistics and windows at the end."""

    def __init__(self, kind: LogMelKind, front_end: LogMelFrontEnd):
        super().__init__(kind, front_end)
        self.log_mel = LogMelStream(front_end.features)

    def feed(self, block: np.ndarray) -> None:
        self.log_mel.feed(block)

    def windows(self) -> np.ndarray:
        fe = self.front_end
        spec = self.log_mel.normalised(fe.floor_db, fe.loudness_dbfs)
        return self.kind.windows(normalise(spec, fe.stats), fe)[..., None]
