"""The feature store: the features stage's output on disk (``<split>.npz``, ``stats.json``,
``meta.json``), written by the stage and read, normalised with the train statistics, by the
log-mel kinds and their served front-end."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genreflow.audio.decode import LOUDNESS_DBFS
from genreflow.audio.spectrum import FLOOR_DB
from genreflow.core.config import FeaturesConfig
from genreflow.core.errors import MissingInputError
from genreflow.models.splits import SPLITS


@dataclass
class SplitFeatures:
    """Clip-level log-mels of one split: ``x`` is ``(n, n_mels, frames)`` in dB; ``mp3``, the
    same for each clip's MP3 copy (training split, with ``features.mp3_copies``), else None."""

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    mp3: np.ndarray | None = None


def fit_normaliser(train_x: np.ndarray) -> dict[str, list[float]]:
    """Per-mel-band mean and standard deviation over the training clips only."""
    x = train_x.astype(np.float32)
    mean = x.mean(axis=(0, 2))
    std = x.std(axis=(0, 2)) + 1e-6
    return {"mean": mean.tolist(), "std": std.tolist()}


def normalise(x: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    """Apply the train-split band statistics to ``(..., n_mels, frames)`` arrays."""
    mean = np.asarray(stats["mean"], np.float32)[:, None]
    std = np.asarray(stats["std"], np.float32)[:, None]
    return ((x.astype(np.float32) - mean) / std).astype(np.float32)


def write_features(feats: dict[str, SplitFeatures], classes: list[str], failed: list[dict],
                   cfg: FeaturesConfig, data_source: str, out_dir: Path,
                   split_digest: str = "") -> dict:
    """Save ``<split>.npz``, ``stats.json`` (train-only normaliser) and ``meta.json``
    (``split_digest``: :func:`genreflow.models.splits.split_digest` of the manifest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, f in feats.items():
        extra = {} if f.mp3 is None else {"mp3": f.mp3}
        np.savez(out_dir / f"{split}.npz", x=f.x, y=f.y, ids=f.ids, **extra)
    stats = fit_normaliser(feats["train"].x)
    (out_dir / "stats.json").write_text(json.dumps(stats))
    meta = {
        "data_source": data_source,
        "split_digest": split_digest,
        "loudness_dbfs": LOUDNESS_DBFS,
        "floor_db": FLOOR_DB,
        "classes": classes,
        "features": asdict(cfg),
        "clip_frames": cfg.clip_frames,
        "counts": {s: int(len(f.y)) for s, f in feats.items()},
        "failed": failed,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


@dataclass
class FeatureSet:
    """What training reads: normalised clip-level log-mels per split plus metadata."""

    splits: dict[str, SplitFeatures]
    classes: list[str]
    stats: dict[str, list[float]]
    meta: dict

    @property
    def cfg(self) -> FeaturesConfig:
        return FeaturesConfig.from_saved(self.meta["features"])


def load_features(feat_dir: Path) -> FeatureSet:
    """Read the features stage output, normalised with the stored train statistics."""
    feat_dir = Path(feat_dir)
    if not (feat_dir / "meta.json").exists():
        raise MissingInputError(f"{feat_dir}: no features; run `dvc repro features` first")
    meta = json.loads((feat_dir / "meta.json").read_text())
    stats = json.loads((feat_dir / "stats.json").read_text())
    splits = {}
    for split in SPLITS:
        with np.load(feat_dir / f"{split}.npz") as z:
            splits[split] = SplitFeatures(
                x=normalise(z["x"], stats), y=z["y"], ids=z["ids"],
                mp3=normalise(z["mp3"], stats) if "mp3" in z.files else None)
    return FeatureSet(splits=splits, classes=meta["classes"], stats=stats, meta=meta)
