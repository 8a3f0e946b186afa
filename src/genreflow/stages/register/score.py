"""register's scores: a model's track-level accuracy and loss on one split of the manifest,
from raw audio through the served path, with each track's outcome and the accuracy's
bootstrap interval (:mod:`.interval`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from genreflow.audio.refusal import AudioError
from genreflow.core.config import AudioConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.safe_text import printable
from genreflow.models.splits import split_digest
from genreflow.serving.predictor import GenrePredictor
from genreflow.stages.register.interval import Resampling, accuracy_interval
from genreflow.stages.register.select import Candidate
from genreflow.tracking.store import data_digest

Log = Callable[[str], None]

#: A version records its validation hits as a tag of one character per validation clip
#: (sorted by clip id) up to this many clips; a concurrent ``register`` compares with them
#: track by track. Longer splits record none (the comparison falls back to unpaired).
MAX_HITS_TAG = 5000


@dataclass
class Score:
    """Track-level accuracy and loss of one model on one split, from raw audio: the
    accuracy's bootstrap interval ``lo``..``hi``, and the per-track outcomes it was computed
    from (clip id -> hit, clip id -> loss), so two models scored on the same tracks can be
    compared track by track."""

    accuracy: float
    loss: float
    n_tracks: int
    lo: float | None = None
    hi: float | None = None
    hits: dict[str, bool] = field(default_factory=dict, repr=False)
    losses: dict[str, float] = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        """The numbers (not the per-track outcomes), as ``register.json`` keeps them."""
        return {"accuracy": self.accuracy, "loss": self.loss, "n_tracks": self.n_tracks,
                "accuracy_lo": self.lo, "accuracy_hi": self.hi}

    def text(self) -> str:
        """``0.8000 [0.6000, 1.0000]``: the accuracy and, when known, its interval."""
        if self.lo is None or self.hi is None:
            return f"{self.accuracy:.4f}"
        return f"{self.accuracy:.4f} [{self.lo:.4f}, {self.hi:.4f}]"


@dataclass
class SplitRows:
    """The manifest's validation and test rows, and what makes two models comparable on
    them (``data_digest``, ``split_digest``, ``classes``)."""

    val: pd.DataFrame
    test: pd.DataFrame
    ident: dict[str, str]

    @property
    def val_keys(self) -> list[str]:
        """The validation clips' keys, sorted: the order of a version's hits tag."""
        return sorted(clip_keys(self.val))


def read_split(manifest: Path, data_dir: str | Path) -> SplitRows:
    """The validation and test rows of the split manifest (a one-line error without one)."""
    if not Path(manifest).is_file():
        raise GenreflowError(f"{manifest}: no split manifest; run `dvc repro split` first")
    table = pd.read_csv(manifest)
    ident = {"data_digest": data_digest(data_dir), "split_digest": split_digest(table),
             "classes": ",".join(sorted(table["genre"].unique()))}
    return SplitRows(val=table[table["split"] == "val"], test=table[table["split"] == "test"],
                     ident=ident)


def clip_keys(rows: pd.DataFrame) -> list[str]:
    """Each row's key: its ``clip_id`` (the manifest's), else its path."""
    return [str(k) for k in (rows["clip_id"] if "clip_id" in rows else rows["path"])]


def score_on_audio(predictor: GenrePredictor, rows: pd.DataFrame, audio: AudioConfig,
                   log: Log = print, resampling: Resampling | None = None) -> Score:
    """Decode every clip of ``rows`` (path, genre) under the input contract ``audio``, as the
    served model does, and score the predictor's answers by genre name (a model of other
    classes can still be scored: a genre it does not know counts as wrong, at loss -log 1e-7).
    A clip the contract refuses is skipped (and said); the interval is drawn with
    ``resampling`` (the defaults without one)."""
    index = {c: i for i, c in enumerate(predictor.classes)}
    hits, losses = {}, {}
    todo = list(zip(clip_keys(rows), rows["path"], rows["genre"], strict=True))
    for key, path, genre in tqdm(todo, desc="scoring", unit="clip", leave=False):
        try:
            probs = predictor.probs_from_source(path, audio, where=str(path))
        except (AudioError, GenreflowError) as exc:
            log(printable(f"skipped {path}: {exc}"))
            continue
        hits[key] = predictor.classes[int(np.argmax(probs))] == genre
        p_true = float(probs[index[genre]]) if genre in index else 0.0
        losses[key] = float(-np.log(max(p_true, 1e-7)))
    n = len(hits)
    lo, hi = accuracy_interval(sum(hits.values()), n, resampling or Resampling())
    return Score(accuracy=sum(hits.values()) / n if n else 0.0,
                 loss=float(np.mean(list(losses.values()))) if n else 0.0, n_tracks=n,
                 lo=lo, hi=hi, hits=hits, losses=losses)


def hits_tag(score: Score, keys: Sequence[str]) -> str | None:
    """``score``'s outcomes over ``keys`` (sorted validation clip ids) as one character
    each: ``1`` hit, ``0`` miss, ``-`` not scored; None past :data:`MAX_HITS_TAG` clips."""
    if not keys or len(keys) > MAX_HITS_TAG or not score.hits:
        return None
    return "".join("-" if k not in score.hits else "1" if score.hits[k] else "0" for k in keys)


def hits_from_tag(tag: str | None, keys: Sequence[str]) -> dict[str, bool]:
    """The outcomes a :func:`hits_tag` recorded, if it was made over these ``keys`` (the
    same number of clips, only ``1``/``0``/``-``); otherwise none."""
    if not tag or len(tag) != len(keys) or set(tag) - set("10-"):
        return {}
    return {k: c == "1" for k, c in zip(keys, tag, strict=True) if c != "-"}


def score_candidate(candidate: Candidate, rows: SplitRows, audio: AudioConfig,
                    log: Log = print, resampling: Resampling | None = None
                    ) -> tuple[Score, Score]:
    """The candidate's validation score (what decides) and test score (for the record)."""
    val = score_on_audio(candidate.predictor, rows.val, audio, log, resampling)
    log(f"candidate on validation from raw audio: {val.text()} ({val.n_tracks} tracks)")
    test = score_on_audio(candidate.predictor, rows.test, audio, log, resampling)
    log(f"test track accuracy of the candidate (for the record): {test.text()} "
        f"({test.n_tracks} tracks)")
    return val, test
