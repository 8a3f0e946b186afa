"""The runs as the MLflow UI sees them: a real `mlflow server` on loopback, read over REST."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from genreflow.stages.train import train_model
from tests_helpers import mlflow_server

quiet = lambda m: None  # noqa: E731


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.integration
def test_mlflow_server_serves_runs_metrics_and_artifacts(tiny_project, tmp_path: Path):
    cfg, feat_dir = tiny_project
    a = train_model(cfg, "cnn", feat_dir, log=quiet)
    b = train_model(cfg, "segcnn", feat_dir, log=quiet)

    with mlflow_server(cfg.tracking.uri, log=tmp_path / "mlflow-server.log") as base:
        exp = _get(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=test")
        exp_id = exp["experiment"]["experiment_id"]
        runs = _post(f"{base}/api/2.0/mlflow/runs/search",
                     {"experiment_ids": [exp_id], "order_by": ["metrics.val_track_accuracy DESC"]})
        ids = {r["info"]["run_id"] for r in runs["runs"]}
        assert ids == {a.run_id, b.run_id}
        for run in runs["runs"]:
            metrics = {m["key"] for m in run["data"]["metrics"]}
            assert {"test_track_accuracy", "val_track_accuracy", "loss", "val_loss"} <= metrics
            params = {p["key"] for p in run["data"]["params"]}
            assert {"model.optimizer", "model.learning_rate", "n_params"} <= params
        hist = _get(f"{base}/api/2.0/mlflow/metrics/get-history?run_id={a.run_id}"
                    f"&metric_key=val_loss")
        assert [m["step"] for m in hist["metrics"]] == [1, 2]  # epochs from 1, as everywhere
        arts = _get(f"{base}/api/2.0/mlflow/artifacts/list?run_id={a.run_id}&path=reports")
        assert any(f["path"].endswith("confusion_test.png") for f in arts["files"])
