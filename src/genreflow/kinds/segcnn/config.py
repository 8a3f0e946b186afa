"""Kind ``segcnn``'s settings (``train.segcnn``), its windows among them, and their rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genreflow.core.config import ConfigError, FeaturesConfig
from genreflow.kinds.base import KindConfig, check_share, check_whole

if TYPE_CHECKING:
    from genreflow.core.config import Config


@dataclass
class SegCnnConfig(KindConfig):
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    dense: int = 128
    dropout: float = 0.5
    spec_augment: bool = True
    segment_seconds: float = 3.0  # the model sees windows of this length...
    segment_overlap: float = 0.5  # ...overlapping by this fraction (served clips, evaluation)
    crops_per_clip: int = 6   # random segments per clip and epoch (0 = all overlapping ones)
    band_limit: float = 0.3   # share of training crops low-passed as 8, 11 or 16 kHz audio
    mp3: float = 0.0          # share of training crops cut from the clip's MP3 copy
    lr_plateau: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_segment(self.segment_seconds, self.segment_overlap)
        check_whole("crops_per_clip", self.crops_per_clip)
        check_share("band_limit", self.band_limit)
        check_share("mp3", self.mp3)


def check_segment(seconds: Any, overlap: Any) -> None:
    """A window length in seconds above 0 and an overlap in [0, 1), else a
    :class:`ConfigError` naming the setting."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(f"segment_seconds: expected a positive number of seconds, "
                          f"got {seconds!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap < 1:
        raise ConfigError(f"segment_overlap: expected 0 <= x < 1, got {overlap!r}")


def segment_frames(feat: FeaturesConfig, seconds: float, overlap: float) -> tuple[int, int]:
    """``(width, hop)``: frames of one window ``seconds`` long on the log-mel of ``feat``, and
    between the starts of two windows overlapping by ``overlap``."""
    width = max(1, int(round(seconds * feat.sample_rate / feat.hop_length)))
    return width, max(1, int(round(width * (1 - overlap))))


def check_against_project(mcfg: SegCnnConfig, cfg: Config) -> None:
    """What segcnn's settings need of the rest of ``params.yaml``: a window fits in a clip of
    the features and in every clip the input contract accepts; ``mp3`` crops need the
    features' MP3 copies."""
    seconds = mcfg.segment_seconds
    if seconds > cfg.features.clip_seconds:
        raise ConfigError(f"train.segcnn.segment_seconds ({seconds}) must not exceed "
                          f"features.clip_seconds ({cfg.features.clip_seconds})")
    if cfg.audio.min_seconds < seconds:
        raise ConfigError(f"audio.min_seconds ({cfg.audio.min_seconds}) must be at least "
                          f"train.segcnn.segment_seconds ({seconds}): every accepted clip "
                          "needs one whole window")
    if mcfg.mp3 and not cfg.features.mp3_copies:
        raise ConfigError(f"train.segcnn.mp3: {mcfg.mp3} needs MP3 copies of the training "
                          "clips; set features.mp3_copies: true")
