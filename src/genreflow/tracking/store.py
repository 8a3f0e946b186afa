"""MLflow plumbing: tracking store, experiments, provenance tags. Nothing runs at import."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import yaml

from genreflow.core.config import TrackingConfig
from genreflow.core.errors import GenreflowError
from genreflow.core.safe_text import redact, scrub
from genreflow.tracking.requirements import pip_requirements


def setup_mlflow(tracking: TrackingConfig, experiment: str) -> str:
    """Point MLflow at the configured store and return the experiment id.

    With a database store (``sqlite:///mlflow.db``, ``postgresql://...``), new experiments
    keep their artefacts under ``tracking.artifact_root`` (``mlruns/`` by default). With a
    tracking server (``http(s)://``), the server decides where artefacts go (its
    ``--artifacts-destination``), so that runs from several machines land in one place.
    Several processes may create the experiment at once (tune workers sharing a store):
    the one that loses the race uses the winner's.
    """
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking.resolved_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    exp = retry_store_setup(lambda: mlflow.get_experiment_by_name(experiment))
    if exp is not None:
        exp_id = exp.experiment_id
    else:
        location = None
        if _scheme(uri) not in _SERVERS:
            location = (Path(tracking.artifact_root).resolve() / experiment).as_uri()
        try:
            exp_id = mlflow.create_experiment(experiment, artifact_location=location)
        except MlflowException:
            exp = mlflow.get_experiment_by_name(experiment)  # made meanwhile by another
            if exp is None:
                raise
            exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


#: What a store says when another process got there first: it is creating the tables (a
#: fresh PostgreSQL database reached by several workers at once) or upgrading the schema, or
#: it inserted the same row between this process's check and insert (MLflow's ``log_inputs``
#: looks a dataset up, then inserts it: two tune workers logging one dataset collide).
_LOST_RACE = ("duplicate key value", "already exists", "out-of-date database schema",
                "UNIQUE constraint failed", "Duplicate entry")


def retry_store_setup(call, attempts: int = 8):
    """``call()``, retried while a concurrent process is still setting the store up or has
    just written the same row (an MLflow tracking store or an Optuna storage: both create
    their tables on first use; the retry finds the other's row and uses it)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not any(m in str(exc) for m in _LOST_RACE):
                raise
            time.sleep(0.5 * (attempt + 1))


#: Schemes of tracking servers: they decide where artefacts go.
_SERVERS = ("http", "https", "databricks")
#: Stores that answered :func:`check_reachable` in this process (trials need not ask again).
_ANSWERED: set[str] = set()


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].lower()


def check_reachable(uri: str) -> None:
    """Refuse within seconds a tracking server or PostgreSQL store that does not answer
    (MLflow itself retries for 2-4 minutes before it gives up). Asked once per process."""
    if uri in _ANSWERED:
        return
    scheme = _scheme(uri)
    try:
        if scheme in ("http", "https"):
            # deferred: requests import (see docs/benchmarks.md, Import cost)
            import requests

            requests.get(uri.rstrip("/") + "/health", timeout=10)  # any answer will do
        elif scheme.startswith("postgresql"):
            # deferred: SQLAlchemy import (see docs/benchmarks.md, Import cost)
            import sqlalchemy

            engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10})
            try:
                engine.connect().close()
            finally:
                engine.dispose()
    except Exception as exc:
        text = scrub(str(exc), uri).strip()
        errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)  # requests nests the cause
        reason = errno.group(0) if errno else (text.splitlines() or [type(exc).__name__])[0]
        raise GenreflowError(
            f"the MLflow tracking store {redact(uri)} does not answer ({reason}); start it, "
            "or point tracking.uri (params.yaml) or MLFLOW_TRACKING_URI at one that runs"
        ) from None
    _ANSWERED.add(uri)


def require_registry(model_uri: str) -> None:
    """A ``models:/`` or ``runs:/`` URI needs the project's tracking store: refuse at once
    when it does not answer, and (rather than let MLflow create an empty ``mlflow.db``
    wherever the command runs) when its SQLite store file is absent."""
    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow

    if not model_uri.startswith(("models:", "runs:")):
        return
    uri = mlflow.get_tracking_uri()
    check_reachable(uri)
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.is_file():
        raise GenreflowError(
            f"no model registry at {redact(uri)} ({db.resolve()} does not exist): run the command "
            "in the project folder (where `dvc repro` made mlflow.db), set "
            "MLFLOW_TRACKING_URI, or give a local model or bundle folder instead")


def git_info(cwd: str | Path = ".") -> dict[str, str]:
    """Current commit and whether the work tree has uncommitted changes."""

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def data_digest(data_dir: str | Path) -> str:
    """The DVC hash of the raw data (from ``<data_dir>.dvc``); without one, a hash of the
    folder's listing (relative paths and sizes)."""
    data_dir = Path(data_dir)
    dvc_file = Path(f"{data_dir}.dvc")
    if dvc_file.exists():
        try:
            outs = yaml.safe_load(dvc_file.read_text())["outs"]
            return str(outs[0]["md5"]).removesuffix(".dir")
        except (KeyError, IndexError, TypeError, yaml.YAMLError):
            pass
    listing = sorted(f"{p.relative_to(data_dir)}:{p.stat().st_size}"
                     for p in data_dir.rglob("*") if p.is_file()) if data_dir.is_dir() else []
    return hashlib.md5("\n".join(listing).encode()).hexdigest()


def log_keras_model(model, input_example, name: str = "model", step: int = 0):
    """Log ``model`` in MLflow's Keras flavour with a signature and an input example.

    ``step`` is the epoch whose per-epoch metrics the logged model shows (the best one).

    ``mlflow.keras.save_model`` (MLflow 3.17) writes the input example before
    it creates the model folder; creating the folder first avoids that.
    """

    # deferred: MLflow import (see docs/benchmarks.md, Import cost)
    import mlflow.keras
    from mlflow.models import Model, infer_signature

    def save_model(path: str, validate_serving_input: bool = True, **kwargs):
        # Model.log hands its own switch on to the flavour; the Keras flavour takes no such argument
        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)

    flavor = types.SimpleNamespace(save_model=save_model, __name__="mlflow.keras",
                                   FLAVOR_NAME="keras")
    signature = infer_signature(input_example, np.asarray(model(input_example, training=False)))
    # Explicit requirements: MLflow would otherwise load the model in a fresh
    # interpreter to infer them, for every logged model; and no serving check: MLflow would
    # load this Keras model back and run it on the example, though what is served is the
    # audio model that `register` logs, and that one is checked (see docs/benchmarks.md,
    # Logged requirements).
    return Model.log(artifact_path=None, name=name, flavor=flavor, model=model,
                     signature=signature, input_example=input_example,
                     pip_requirements=pip_requirements(), step=step,
                     validate_serving_input=False)
