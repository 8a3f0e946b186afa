"""The three splits and a split's identity, shared by the features, the kinds, training,
registration and the report."""

from __future__ import annotations

import hashlib

import pandas as pd

SPLITS = ("train", "val", "test")


def split_digest(manifest: pd.DataFrame) -> str:
    """Identity of a split: an MD5 over its sorted ``clip_id:split`` rows.

    Training runs carry it as a tag, so that ``register`` compares only models
    trained on the same split (a model of another split may have trained on
    this split's validation clips).
    """
    rows = sorted(f"{c}:{s}" for c, s in zip(manifest["clip_id"], manifest["split"], strict=True))
    return hashlib.md5("\n".join(rows).encode()).hexdigest()
