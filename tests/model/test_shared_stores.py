"""Work shared by several processes or machines: one Optuna study and one MLflow tracking
store in PostgreSQL, runs logged through a real `mlflow server` that keeps the artefacts.

The PostgreSQL server comes from the `pgserver` wheel (a dev dependency), on a Unix socket
in a temporary folder.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from tests_helpers import mlflow_server, tune_worker


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


def _database(server, name: str) -> str:
    server.psql(f"CREATE DATABASE {name};")
    return f"postgresql://postgres@/{name}?host={server.get_postmaster_info().socket_dir}"


@pytest.mark.integration
def test_two_tune_workers_share_one_study_and_one_tracking_server(postgres, tiny_project,
                                                                  tmp_path: Path, monkeypatch):
    """Two `tune` processes started together on one PostgreSQL study, tracked by an `mlflow
    server` on PostgreSQL: trials numbered once, different settings, every trial a finished
    MLflow run whose artefacts reached the server; then register and predict through it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from genreflow.serving.loader import load_model
    from genreflow.stages.register import register_best

    cfg, feat_dir = tiny_project
    cfg.tune = replace(cfg.tune, storage=_database(postgres, "optuna_shared"), max_epochs=1)
    artifacts = tmp_path / "server-artifacts"
    with mlflow_server(_database(postgres, "mlflow_shared"),
                       "--artifacts-destination", str(artifacts),
                       log=tmp_path / "mlflow-server.log") as url:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            jobs = [pool.submit(tune_worker, cfg, feat_dir, url, 1) for _ in range(2)]
            summaries = [j.result(timeout=600) for j in jobs]

        assert {s["study"] for s in summaries} == {summaries[0]["study"]}
        assert [s["trials_this_run"] for s in summaries] == [1, 1]
        study = optuna.load_study(study_name=summaries[0]["study"], storage=cfg.tune.storage)
        trials = study.get_trials(deepcopy=False)
        assert sorted(t.number for t in trials) == [0, 1]
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        drawn = {(t.params["optimizer"], round(t.params["learning_rate"], 12)) for t in trials}
        assert len(drawn) == 2, f"workers repeated each other's settings: {drawn}"

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        mlflow.set_tracking_uri(url)
        client = MlflowClient(url)
        exp = client.get_experiment_by_name(cfg.train.experiment)
        assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server's, not ours
        parents = client.search_runs([exp.experiment_id], "tags.role = 'optuna_study'")
        assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}
        for t in trials:
            run = client.get_run(t.user_attrs["mlflow_run_id"])
            assert run.info.status == "FINISHED"
            assert run.data.tags["mlflow.parentRunId"] in {r.info.run_id for r in parents}
            assert "val_track_accuracy" in run.data.metrics
        assert any(artifacts.rglob("confusion_val.png")), "no artefact reached the server"
        assert not (tmp_path / "mlruns").exists(), "artefacts were written beside the client"

        decision = register_best(cfg, tmp_path / "split.csv", out=tmp_path / "register.json",
                                 log=lambda m: None)
        assert decision.alias == "champion"
        by_run = {t.user_attrs["mlflow_run_id"]: t.value for t in trials}
        assert by_run[decision.run_id] == max(by_run.values())
        predictor, contract = load_model(f"models:/{cfg.register.model_name}@champion")
        assert sorted(predictor.classes) == sorted(cfg.data.genres) and contract is not None
