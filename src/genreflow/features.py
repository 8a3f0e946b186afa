"""Stage 3, features: cached log-mel spectrograms per split, normalised with train statistics."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genreflow.audio import LOUDNESS_DBFS, AudioError, decode
from genreflow.config import FeaturesConfig
from genreflow.errors import MissingInputError
from genreflow.parallel import parallel_map
from genreflow.safe_text import printable
from genreflow.spectrum import FLOOR_DB, clip_log_mel
from genreflow.split import SPLITS


@dataclass
class SplitFeatures:
    """Clip-level log-mels of one split: ``x`` is ``(n, n_mels, frames)`` in dB; ``mp3``, the
    same for each clip's MP3 copy (training split, with ``features.mp3_copies``), else None."""

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    mp3: np.ndarray | None = None


def _one(args: tuple[str, FeaturesConfig, float | None]):
    """``(log-mel, the log-mel of its MP3 copy or None)`` of one clip (a copy when given an
    MP3 level), or a message when the clip cannot be read."""
    path, cfg, mp3_level = args
    try:
        y, _ = decode(path, cfg.sample_rate)
        copy = None
        if mp3_level is not None:
            from genreflow.codec import mp3_copy

            copy = clip_log_mel(mp3_copy(y, cfg.sample_rate, mp3_level), cfg).astype(np.float16)
        return clip_log_mel(y, cfg).astype(np.float16), copy
    except AudioError as exc:
        return str(exc)
    except Exception as exc:  # a clip must never stop the stage
        return f"{path}: {type(exc).__name__}: {exc}"


def compute_features(
    manifest: pd.DataFrame,
    cfg: FeaturesConfig,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, SplitFeatures], list[str], list[dict]]:
    """Log-mel every clip of the manifest, using ``cfg.workers`` processes.

    Returns per-split features, the class names (sorted genres) and the clips
    that failed (reported, skipped).
    """
    classes = sorted(manifest["genre"].unique())
    index = {g: i for i, g in enumerate(classes)}
    from genreflow.codec import check_mp3, mp3_level

    if cfg.mp3_copies:
        check_mp3("features.mp3_copies")
    copy = (manifest["split"] == "train") & cfg.mp3_copies
    jobs = [(p, cfg, mp3_level(c) if k else None)
            for p, c, k in zip(manifest["path"], manifest["clip_id"], copy, strict=True)]
    results = parallel_map(_one, jobs, cfg.workers, desc="features", chunksize=4, min_jobs=5)

    failed = []
    out: dict[str, SplitFeatures] = {}
    for split in SPLITS:
        rows = [i for i, s in enumerate(manifest["split"]) if s == split]
        good = []
        for i in rows:
            if isinstance(results[i], str):
                failed.append({"clip_id": manifest["clip_id"].iloc[i], "reason": results[i]})
                log(printable(f"skipped {manifest['clip_id'].iloc[i]}: {results[i]}"))
            else:
                good.append(i)
        empty = np.zeros((0, cfg.n_mels, cfg.clip_frames), np.float16)
        x = np.stack([results[i][0] for i in good]) if good else empty
        mp3 = None
        if cfg.mp3_copies and split == "train":  # the copies made above, aligned with x
            mp3 = np.stack([results[i][1] for i in good]) if good else empty
        out[split] = SplitFeatures(
            x=x,
            y=np.array([index[manifest["genre"].iloc[i]] for i in good], dtype=np.int64),
            ids=np.array([manifest["clip_id"].iloc[i] for i in good]),
            mp3=mp3,
        )
    return out, classes, failed


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
    (``split_digest``: :func:`genreflow.split.split_digest` of the manifest)."""
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
        "segment_frames": cfg.segment_frames,
        "segment_hop_frames": cfg.segment_hop_frames,
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
        return FeaturesConfig(**self.meta["features"])


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
