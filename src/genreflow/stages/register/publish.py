"""register's last step: the candidate logged as a raw-audio model, its registry version and
tags, the alias, and ``register.json`` (what the report and ``dvc metrics`` show)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genreflow.core.config import AudioConfig
from genreflow.serving.pyfunc import log_audio_model
from genreflow.stages.register.champion import COMPARED_TAGS, float_tag
from genreflow.stages.register.decide import Verdict
from genreflow.stages.register.interval import Interval
from genreflow.stages.register.score import Score, hits_tag
from genreflow.stages.register.select import Candidate


@dataclass
class Decision:
    """The outcome of a registration: the version, its alias and why (``basis``: the rule
    that decided; ``gain``: the candidate's gain over the champion and its interval, when
    they were compared; ``warning``: why the validation split is too small to choose)."""

    version: str
    alias: str
    reason: str
    run_id: str
    model_kind: str
    candidate_val: Score
    champion_val: Score | None
    test_track_accuracy: float
    previous_champion: str | None
    latency_ms: float | None = None  # the model's time for a 30 s clip on this machine
    basis: str = ""
    gain: Interval | None = None
    confidence: float | None = None
    warning: str | None = None
    test_track_accuracy_lo: float | None = None
    test_track_accuracy_hi: float | None = None

    def to_json(self) -> dict:
        """The decision as ``register.json`` keeps it: the scores without per-track outcomes."""
        return {**asdict(self), "candidate_val": self.candidate_val.summary(),
                "champion_val": None if self.champion_val is None else self.champion_val.summary()}


def registered_version(client: MlflowClient, name: str, run_id: str, ident: dict):
    """The registry version already made from ``run_id`` on this data and split, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if v.tags.get("run_id") == run_id
            and all(v.tags.get(k) == ident[k] for k in COMPARED_TAGS)]
    return max(same, key=lambda v: int(v.version), default=None)


def log_candidate(candidate: Candidate, audio: AudioConfig, val: Score, test: Score) -> str:
    """Log the candidate as a raw-audio model into its run (at the restored epoch, with the
    trained model's final numbers and the raw-audio scores on its page): its model URI."""
    run = candidate.run
    with mlflow.start_run(run_id=candidate.run_id):
        info = log_audio_model(candidate.bundle, audio=audio,
                               step=int(run.data.metrics.get("best_epoch", 0)))
        _link_metrics(run, run.data.tags["keras_model_uri"], info.model_id)
        # the raw-audio scores: on the run and (after it, in its run) on the model
        mlflow.log_metrics({"registered_val_track_accuracy": val.accuracy,
                            "registered_test_track_accuracy": test.accuracy},
                           model_id=info.model_id)
    return info.model_uri


def _link_metrics(run, keras_uri: str, model_id: str) -> None:
    """The registered model's page shows what the trained model's page shows: MLflow links
    the run's values at the restored epoch when the model is logged at that step; the final
    numbers are added here with the dataset (once each: no other step-0 values are linked)."""
    trained = mlflow.get_logged_model(keras_uri.rsplit("/", 1)[-1])
    dataset = run.inputs.dataset_inputs[0].dataset if run.inputs.dataset_inputs else None
    mlflow.log_metrics({m.key: m.value for m in trained.metrics if m.step == 0}, step=0,
                       model_id=model_id, dataset=dataset)


def version_tags(candidate: Candidate, ident: dict, metric: str, val: Score, test: Score,
                 keys: list[str] | None = None) -> dict[str, str | None]:
    """A new version's tags: what makes it comparable, its raw-audio scores with their
    intervals and (over ``keys``, this split's sorted validation clip ids) its per-track
    validation hits, its origin."""
    tags = candidate.run.data.tags
    return {**ident, metric: repr(val.accuracy), f"{metric}_lo": _text(val.lo),
            f"{metric}_hi": _text(val.hi), "val_track_n": str(val.n_tracks),
            "val_track_hits": hits_tag(val, keys or []), "val_track_loss": repr(val.loss),
            "test_track_accuracy": repr(test.accuracy), "data_source": tags.get("data_source"),
            "git_commit": tags.get("git_commit", "unknown"), "model_kind": candidate.kind,
            "run_id": candidate.run_id, "latency_ms_30s": f"{candidate.latency_ms:.0f}"}


def _text(value: float | None) -> str | None:
    return None if value is None else repr(value)


def publish(client: MlflowClient, name: str, verdict: Verdict, candidate_val: Score, *,
            existing, model_uri: str | None, tags: dict) -> str:
    """The version (``existing``, or a new one of ``model_uri`` with ``tags``, those that
    have a value) with the verdict's alias and, unless it already was the champion, the
    reason as its ``decision`` tag: the version number."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Genre classifier: raw audio in, "
                                       "genre probabilities out (genreflow).")
    mv = existing or mlflow.register_model(
        model_uri, name, tags={k: v for k, v in tags.items() if v is not None})
    client.set_registered_model_alias(name, verdict.alias, mv.version)
    if not verdict.champion.already:  # the version keeps the reason it was made champion
        theirs = verdict.champion.score
        both = (f"candidate {candidate_val.accuracy:.4f}, champion "
                f"{'n/a' if theirs is None else f'{theirs.accuracy:.4f}'}")
        client.set_model_version_tag(name, mv.version, "decision",
                                     f"{verdict.alias}: {verdict.reason} ({both})")
    return str(mv.version)


def champion_record(decision: Decision, verdict: Verdict) -> dict:
    """Who holds ``@champion`` after ``decision``: the new version, or (challenger) the
    champion it was decided against, from its version's tags."""
    if decision.alias != "challenger":
        val = decision.candidate_val
        return {"version": decision.version, "model_kind": decision.model_kind,
                "run_id": decision.run_id, "val_track_accuracy": val.accuracy,
                "val_track_accuracy_lo": val.lo, "val_track_accuracy_hi": val.hi,
                "test_track_accuracy": decision.test_track_accuracy,
                "latency_ms": decision.latency_ms}
    champ, score = verdict.champion, verdict.champion.score
    return {"version": champ.number, "model_kind": champ.version.tags.get("model_kind"),
            "run_id": champ.version.tags.get("run_id"),
            "val_track_accuracy": score.accuracy if score else None,
            "val_track_accuracy_lo": score.lo if score else None,
            "val_track_accuracy_hi": score.hi if score else None,
            "test_track_accuracy": float_tag(champ.version.tags.get("test_track_accuracy")),
            "latency_ms": float_tag(champ.version.tags.get("latency_ms_30s"))}


def write_register_json(out: Path, decision: Decision, verdict: Verdict, name: str,
                        data_source: str | None) -> None:
    """``register.json``: the decision, and who holds ``@champion`` (what the report and
    ``dvc metrics`` show)."""
    holder = champion_record(decision, verdict)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**decision.to_json(), "model_name": name,
                               "data_source": data_source,
                               "champion_version": holder["version"], "champion": holder},
                              indent=1))
