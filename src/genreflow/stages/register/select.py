"""register's first step: the best run of this data and split whose model answers in time,
loaded as a bundle folder through its kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.models import Model

from genreflow.core.errors import GenreflowError
from genreflow.models.bundle import BUNDLE_META, BUNDLE_MODEL
from genreflow.serving.predictor import GenrePredictor

Log = Callable[[str], None]


@dataclass
class Candidate:
    """The selected run, its model as a bundle folder, and the model's latency here."""

    run: object  # mlflow.entities.Run
    bundle: Path
    predictor: GenrePredictor
    latency_ms: float

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def kind(self) -> str:
        return kind_of(self.run)


def ranked_runs(metric: str, data_digest: str, split: str, experiments: list[str]) -> list:
    """Every finished, non-pruned run on this data and split, best ``metric`` first; ties
    go to the lower ``val_track_loss``, then to the newer run."""
    exps = [e for e in (mlflow.get_experiment_by_name(n) for n in experiments) if e is not None]
    if not exps:
        raise GenreflowError(f"no MLflow experiment among {experiments}: train a model first "
                             "(`dvc repro` or `genreflow train segcnn`)")
    runs = mlflow.search_runs(
        experiment_ids=[e.experiment_id for e in exps],
        filter_string=(f"attributes.status = 'FINISHED' and tags.data_digest = '{data_digest}' "
                       f"and tags.split_digest = '{split}' and metrics.{metric} >= 0"),
        order_by=[f"metrics.{metric} DESC", "metrics.val_track_loss ASC",
                  "attributes.start_time DESC"],
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get("trial_state") != "pruned"]
    if not runs:
        raise GenreflowError(
            f"no finished run with metric '{metric}' on the current data and split (data digest "
            f"{data_digest}, split digest {split}); "
            "train a model first (`dvc repro` or `genreflow train segcnn`)")
    return runs


def select(runs: list, max_latency_ms: float | None, tmp: Path, log: Log = print) -> Candidate:
    """The first of ``runs`` (ranked) whose model answers a 30 s clip within
    ``max_latency_ms`` on this machine (the first when there is no budget), loaded into a
    bundle folder under ``tmp``."""
    timed = []
    for i, run in enumerate(runs):
        bundle = tmp / f"bundle{i}"
        predictor = _load_bundle(run, bundle)
        latency = predictor.latency_ms()
        if max_latency_ms is None or latency <= max_latency_ms:
            return Candidate(run, bundle, predictor, latency)
        timed.append((latency, kind_of(run)))
        log(f"passed over run {run.info.run_id} ({kind_of(run)}): {latency:.0f} ms for a 30 s "
            f"clip, over register.max_latency_ms = {max_latency_ms:g}")
    fastest, kind = min(timed)
    raise GenreflowError(f"register.max_latency_ms = {max_latency_ms:g}: no run on this data "
                         f"and split answers a 30 s clip within it here (fastest: {kind}, "
                         f"{fastest:.0f} ms); raise the budget, set it to null, or train a "
                         "faster kind")


def kind_of(run) -> str:
    """The model kind a run trained."""
    return run.data.tags.get("model") or run.data.params.get("model.name")


def _load_bundle(run, bundle: Path) -> GenrePredictor:
    """The run's model and front-end as a bundle folder, loaded through the run's kind (its
    own layers registered by :meth:`~genreflow.kinds.base.ModelKind.load_servable`): the
    same path a served or predicted bundle takes, never a loader that bypasses the kind."""
    uri = run.data.tags.get("keras_model_uri")
    if not uri:
        raise GenreflowError(f"run {run.info.run_id} has no 'keras_model_uri' tag (trained by an "
                             "older genreflow); retrain it (`dvc repro` or `genreflow train KIND`)")
    bundle.mkdir(parents=True)
    logged = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                      dst_path=str(bundle.parent / "dl-model")))
    _keras_file(logged, uri).replace(bundle / BUNDLE_MODEL)
    meta = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                               artifact_path=f"bundle/{BUNDLE_META}",
                                               dst_path=str(bundle.parent / "dl"))
    Path(meta).replace(bundle / BUNDLE_META)
    return GenrePredictor.from_bundle(bundle)


def _keras_file(logged: Path, uri: str) -> Path:
    """The ``.keras`` file inside a model logged in MLflow's Keras flavour (its ``data``
    folder, as the flavour's MLmodel entry names it)."""
    flavor = Model.load(logged).flavors.get("keras", {})
    found = sorted((logged / flavor.get("data", "data")).glob("*.keras"))
    if not found:
        raise GenreflowError(f"{uri}: no .keras file in the logged model (not logged by "
                             "genreflow's training?); retrain it (`genreflow train KIND`)")
    return found[0]
