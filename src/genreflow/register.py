"""Last stage, register: the best run by validation metric becomes a registry version.

The alias ``champion`` moves to the new version only when it beats the
current champion on validation; otherwise the new version is ``challenger``.
The test split is evaluated here for the record, never used to decide.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from genreflow.config import Config
from genreflow.errors import GenreflowError
from genreflow.features import load_features
from genreflow.inference import BUNDLE_META, BUNDLE_MODEL, track_probabilities
from genreflow.train import evaluate_probs


@dataclass
class Decision:
    """The outcome of a registration."""

    version: str
    alias: str
    reason: str
    run_id: str
    val_metric: float
    test_track_accuracy: float
    previous_champion: str | None


def decide(new_val: float, champion_val: float | None) -> tuple[str, str]:
    """Champion/challenger rule on the validation metric (strictly better wins)."""
    if champion_val is None:
        return "champion", "there was no champion yet"
    if new_val > champion_val + 1e-9:
        return "champion", f"validation {new_val:.4f} beats the champion's {champion_val:.4f}"
    return "challenger", (f"validation {new_val:.4f} does not beat the champion's "
                          f"{champion_val:.4f}")


def best_run(cfg: Config, data_digest: str, experiments: list[str]):
    """The finished, non-pruned run with the highest validation metric on this data.

    Ties go to the lower ``val_track_loss``, then to the newer run.
    """
    import mlflow

    exps = [e for e in (mlflow.get_experiment_by_name(n) for n in experiments) if e is not None]
    if not exps:
        raise GenreflowError(f"no MLflow experiment among {experiments}: train a model first "
                             "(`dvc repro` or `genreflow train segcnn`)")
    metric = cfg.register.metric
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in exps],
        filter_string=(f"attributes.status = 'FINISHED' and tags.data_digest = '{data_digest}' "
                       f"and metrics.{metric} >= 0"),
        # ties: the lower validation loss, then the newer run
        order_by=[f"metrics.{metric} DESC", "metrics.val_track_loss ASC",
                  "attributes.start_time DESC"],
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get("trial_state") != "pruned"
            and r.data.tags.get("genreflow.kind") != "register"]
    if not runs:
        raise GenreflowError(
            f"no finished run with metric '{metric}' on the current data (digest {data_digest}); "
            "train a model first (`dvc repro` or `genreflow train segcnn`)")
    return runs[0]


def register_best(
    cfg: Config,
    features_dir: Path = Path("artifacts/features"),
    out: Path | None = None,
    log: Callable[[str], None] = print,
) -> Decision:
    """Register the best run's model as a raw-audio pyfunc and apply the alias rule."""
    import mlflow
    import mlflow.keras
    from mlflow import MlflowClient

    import genreflow.models  # noqa: F401  (registers the custom Keras layers)
    from genreflow.serve import log_audio_model
    from genreflow.tracking import data_digest, setup_mlflow

    setup_mlflow(cfg.tracking, cfg.train.experiment)
    fs = load_features(features_dir)
    digest = data_digest(cfg.data.dir, json.dumps(fs.meta["counts"]))
    run = best_run(cfg, digest, [cfg.train.experiment])
    run_id = run.info.run_id
    metric = cfg.register.metric
    val = float(run.data.metrics[metric])
    kind = run.data.tags.get("model") or run.data.params.get("model.name")
    log(f"best run {run_id} ({kind}, {run.info.run_name}): {metric} = {val:.4f}")

    bundle = Path(tempfile.mkdtemp(prefix="genreflow-bundle-"))
    model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    model.save(bundle / BUNDLE_MODEL)
    meta = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"bundle/{BUNDLE_META}", dst_path=str(bundle / "dl"))
    Path(meta).replace(bundle / BUNDLE_META)

    test = fs.splits["test"]
    probs = track_probabilities(model, test.x, kind, fs.cfg)
    test_eval = evaluate_probs(probs, test.y, fs.classes)
    log(f"test track accuracy of the chosen model: {test_eval['accuracy']:.4f} "
        f"({len(test.y)} tracks)")

    client = MlflowClient()
    name = cfg.register.model_name
    with mlflow.start_run(run_id=run_id):
        info = log_audio_model(bundle, audio=cfg.audio)
        mlflow.log_metric("registered_test_track_accuracy", test_eval["accuracy"])
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="GTZAN genre classifier: raw audio in, "
                                       "genre probabilities out (genreflow).")
    champion_val = None
    previous = None
    try:
        champ = client.get_model_version_by_alias(name, "champion")
        previous = champ.version
        champion_val = float(champ.tags.get(metric, "nan"))
    except mlflow.exceptions.MlflowException:
        pass
    mv = mlflow.register_model(info.model_uri, name, tags={
        metric: repr(val), "test_track_accuracy": repr(test_eval["accuracy"]),
        "data_digest": digest, "data_source": fs.meta["data_source"],
        "git_commit": run.data.tags.get("git_commit", "unknown"), "model_kind": kind,
        "run_id": run_id})
    alias, reason = decide(val, champion_val)
    client.set_registered_model_alias(name, alias, mv.version)
    client.set_model_version_tag(name, mv.version, "decision", f"{alias}: {reason}")
    decision = Decision(version=str(mv.version), alias=alias, reason=reason, run_id=run_id,
                        val_metric=val, test_track_accuracy=test_eval["accuracy"],
                        previous_champion=previous)
    log(f"{name} version {mv.version} -> @{alias}: {reason}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**decision.__dict__, "model_name": name,
                                   "model_kind": kind, "data_source": fs.meta["data_source"]},
                                  indent=1))
    return decision
