"""Stage 3, features: log-mel spectrograms of every clip per split, for the feature store
(:mod:`genreflow.models.featurestore`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from genreflow.audio.codec import check_mp3, mp3_copy, mp3_level
from genreflow.audio.decode import decode
from genreflow.audio.refusal import AudioError
from genreflow.audio.spectrum import clip_log_mel
from genreflow.core.config import FeaturesConfig
from genreflow.core.parallel import parallel_map
from genreflow.core.safe_text import printable
from genreflow.models.featurestore import SplitFeatures
from genreflow.models.splits import SPLITS


def _one(args: tuple[str, FeaturesConfig, float | None]):
    """``(log-mel, the log-mel of its MP3 copy or None)`` of one clip (a copy when given an
    MP3 level), or a message when the clip cannot be read."""
    path, cfg, mp3_level = args
    try:
        y, _ = decode(path, cfg.sample_rate)
        copy = None
        if mp3_level is not None:
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
