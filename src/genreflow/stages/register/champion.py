"""register's champion: the version that holds ``@champion``, its score on the candidate's
validation tracks, and why it cannot be compared with the candidate, if it cannot (other
data, split or classes; over the latency budget; not loadable)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genreflow.core.config import AudioConfig, RegisterConfig
from genreflow.core.errors import GenreflowError
from genreflow.serving.loader import load_predictor
from genreflow.stages.register.interval import Resampling
from genreflow.stages.register.score import Score, SplitRows, hits_from_tag, score_on_audio

#: The version tags two models must share to be compared on one validation split.
COMPARED_TAGS = ("data_digest", "split_digest", "classes")
Log = Callable[[str], None]


@dataclass
class Champion:
    """The version that held ``@champion`` when this registration looked, and how it
    compares: ``score`` on the same validation clips, ``mismatch`` (why it cannot block),
    ``already`` (it *is* the candidate's version)."""

    version: object | None = None  # mlflow.entities.model_registry.ModelVersion
    score: Score | None = None
    mismatch: str | None = None
    already: bool = False

    @property
    def number(self) -> str | None:
        return None if self.version is None else str(self.version.version)


def current_champion(client: MlflowClient, name: str):
    """The version ``@champion`` points to, or ``None``."""
    try:
        return client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None


def score_champion(version, existing, candidate_val: Score, rows: SplitRows,
                   rcfg: RegisterConfig, audio: AudioConfig, log: Log = print,
                   resampling: Resampling | None = None) -> Champion:
    """The champion ``version`` scored on the candidate's validation clips from raw audio
    (always, for the record), and why it cannot block the candidate, if it cannot: other
    data, split or classes, over the latency budget, or not loadable. ``existing`` is the
    version already made from the candidate's run: when it is the champion, nothing is
    scored."""
    if version is None:
        return Champion()
    number = str(version.version)
    if existing is not None and str(existing.version) == number:
        return Champion(version, score=candidate_val, already=True)
    why = mismatch(version_identity(version.tags), rows.ident)
    try:
        predictor = load_predictor(f"models:/{rcfg.model_name}@champion")
        score = score_on_audio(predictor, rows.val, audio, log, resampling)
        log(f"champion v{number} on the same validation tracks: {score.text()}")
        budget = rcfg.max_latency_ms
        if budget is not None and why is None:
            slow = predictor.latency_ms()
            if slow > budget:
                why = (f"the champion takes {slow:.0f} ms for a 30 s clip here, over "
                       f"register.max_latency_ms = {budget:g}, so it does not block")
    except GenreflowError as exc:
        log(f"champion v{number} could not be scored: {exc}")
        return Champion(version, mismatch=why or (
            f"the champion (version {number}) could not be loaded and scored here ({exc}), "
            "so it does not block"))
    return Champion(version, score=score, mismatch=why)


def version_identity(tags: dict) -> dict:
    """What decides comparability, plus the data source the reasons name."""
    return {k: tags.get(k) for k in (*COMPARED_TAGS, "data_source")}


def mismatch(champion: dict, candidate: dict) -> str | None:
    """Why the champion is not compared with the candidate on its split, if it is not."""
    differs = []
    if champion["data_digest"] != candidate["data_digest"]:
        source = champion.get("data_source")
        differs.append(f"other data ({source + ' data, ' if source else ''}digest "
                       f"{champion['data_digest']}; now {candidate['data_digest']})")
    if champion["classes"] != candidate["classes"]:
        differs.append(f"other classes ({champion['classes']}; now {candidate['classes']})")
    if differs:
        return (f"the champion was trained on {' and '.join(differs)}, so it never blocks a "
                "model of the current data (its score on the same clips is for the record)")
    if champion["split_digest"] != candidate["split_digest"]:
        return ("the champion was trained on another split of this data (its training clips "
                "may be in this validation split), so it is not compared here")
    return None


def recorded_champion(version, ident: dict, candidate_val: Score, metric: str,
                      keys: Sequence[str] = ()) -> Champion:
    """A champion registered by a concurrent ``register``, compared through the raw-audio
    validation scores its version records (the same clips when its data, split and classes
    are these): its per-track hits when it recorded them over ``keys`` (this split's sorted
    validation clip ids), else only its accuracy and number of tracks (older versions assume
    the candidate's number)."""
    why = mismatch(version_identity(version.tags), ident)
    tags = version.tags
    acc, loss = float_tag(tags.get(metric)), float_tag(tags.get("val_track_loss"))
    n = float_tag(tags.get("val_track_n"))
    score = None if acc is None else Score(
        acc, loss or 0.0, candidate_val.n_tracks if n is None or n < 0 else int(n),
        lo=float_tag(tags.get(f"{metric}_lo")), hi=float_tag(tags.get(f"{metric}_hi")),
        hits=hits_from_tag(tags.get("val_track_hits"), keys))
    if why is None and score is None:
        why = f"version {version.version} records no {metric}, so it does not block"
    return Champion(version, score=score, mismatch=why)


def float_tag(text: str | None) -> float | None:
    """A finite number a tag records, or None (no tag, or not a finite number)."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
