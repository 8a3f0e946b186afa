"""The embed stage: every kind in ``train.models`` that needs embeddings makes them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from genreflow.audio.decode import read_source
from genreflow.core.config import Config
from genreflow.kinds import get_kind


def embed_all(cfg: Config, table: pd.DataFrame, out: Path,
              log: Callable[[str], None] = print) -> dict:
    """Run each kind's ``embed`` on the split manifest ``table`` into ``out/<kind>``; write and
    return ``out/index.json`` (clips and failures per kind that made embeddings). The caller
    checks ``train.models`` first (:func:`genreflow.kinds.check_models`)."""
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    for name in cfg.train.models:
        meta = get_kind(name).embed(cfg, table, out / name,
                                    read_source(cfg.data.dir).get("source", "unknown"), log=log)
        if meta is not None:
            done[name] = {"clips": len(meta["clips"]["clip_id"]), "failed": len(meta["failed"])}
    (out / "index.json").write_text(json.dumps(done, indent=1))
    return done
