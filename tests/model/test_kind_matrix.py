"""Every registered kind, with its default settings, through every stage a user runs.

For each kind in the registry (a new kind joins by registering), and for a plug-in kind
defined outside genreflow (``tests/plugins/toykind.py``, named in ``train.plugins``: one
module plus its params section, no other file of genreflow), a tiny project where that
kind is the only one trained goes ``embed`` -> ``train`` -> ``tune --model KIND`` (one short
trial) -> ``register`` (it must become ``@champion``) -> ``predict`` through
``models:/<name>@champion`` -> one request to ``genreflow serve``. The project renames the
registered model (``register.model_name``): ``predict`` and ``serve`` without a model find
its champion from ``params.yaml``. Each step is its own
``genreflow`` process, as under ``dvc repro``: a step that only works because an earlier one
imported something in the same interpreter (a kind's Keras layers) fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import TINY_GENRES
from genreflow.core.config import RegisterConfig
from genreflow.kinds import get_kind, kind_names
from tests_helpers import (
    SMALL_KINDS,
    TINY_PIPELINE,
    audio_request,
    free_port,
    merge_params,
    running_server,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: the plug-in kind: its module (on PYTHONPATH in the processes below) and its section
PLUGIN_DIR = ROOT / "tests" / "plugins"
PLUGIN = "toy"
PLUGIN_PARAMS = {"plugins": ["toykind"], PLUGIN: {"learning_rate": 0.01}}
#: TensorFlow's C++ start-up lines (absl), which no stage may let through to the user
TF_STARTUP = re.compile(r"^[IWE]\d{4} |oneDNN custom operations|cpu_feature_guard|absl::InitializeLog")


def _env() -> dict:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("MLFLOW_TRACKING_URI", "GTZAN_DIR", "GENREFLOW_PLUGINS"):
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def _genreflow(project: Path, *args: str, timeout: float = 600, code: int = 0
               ) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "genreflow"), *args], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == code, (f"genreflow {' '.join(args)} exited {proc.returncode}:\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    noise = [line for line in proc.stderr.splitlines() if TF_STARTUP.search(line)]
    assert not noise, f"genreflow {args[0]}: TensorFlow start-up lines on stderr: {noise[:3]}"
    return proc


def _json_out(proc: subprocess.CompletedProcess):
    """The JSON document a command prints last (training prints Keras' epoch lines first)."""
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line in ("{", "["))
    return json.loads("\n".join(lines[start:]))


def _project(root: Path, kind: str, data_dir: Path, features: Path, store: Path) -> Path:
    """A project folder: the repository's params.yaml (every kind's defaults) shrunk in size
    only, ``train.models`` = ``[kind]``, stores inside the folder, the prepared split and
    features of the tiny data in ``artifacts/``."""
    project = root / "project"
    (project / "artifacts").mkdir(parents=True)
    params = merge_params(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY_PIPELINE)
    params = merge_params(params, {
        "data": {"dir": str(data_dir), "genres": TINY_GENRES},
        "features": {"workers": 2},  # the stages' worker processes start quietly too
        "train": {"models": [kind], "max_epochs": 2, "patience": 2, "batch_size": 8,
                  **SMALL_KINDS, **(PLUGIN_PARAMS if kind == PLUGIN else {})},
        "register": {"model_name": f"matrix-{kind}"},
        "tune": {"model": kind, "n_trials": 1, "max_epochs": 1,
                 "storage": f"sqlite:///{project / 'optuna.db'}"},
        "tracking": {"uri": f"sqlite:///{project / 'mlflow.db'}",
                     "artifact_root": str(project / "mlruns")}})
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(store, project / "mlflow.db")  # an empty store, its tables made
    shutil.copytree(features / "features", project / "artifacts" / "features")
    shutil.copy(features / "split.csv", project / "artifacts" / "split.csv")
    return project


def _serve_one(project: Path, clip: Path) -> dict:
    """``genreflow serve`` with no model: the champion of params.yaml's model name."""
    port = free_port()
    cmd = [str(BIN / "genreflow"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(cmd, port, project / "serve.log", cwd=project, env=_env()) as base:
        r = requests.post(f"{base}/invocations", json=audio_request(clip), timeout=60)
    assert r.status_code == 200, r.text[:500]
    return r.json()["predictions"][0]


@pytest.mark.integration
@pytest.mark.parametrize("kind", [*kind_names(), PLUGIN])
def test_every_kind_goes_from_training_to_a_served_champion(kind, tiny_data, tiny_features,
                                                            mlflow_template, tmp_path):
    project = _project(tmp_path, kind, tiny_data, tiny_features, mlflow_template)
    if kind != PLUGIN and get_kind(kind).embed_params:  # kinds with an embed step
        _genreflow(project, "embed")
    trained = _json_out(_genreflow(project, "train", kind))
    assert 0 <= trained["val_track_accuracy"] <= 1
    tuned = _json_out(_genreflow(project, "tune", "--model", kind, "--n-trials", "1"))
    assert (tuned["model"], tuned["n_complete"]) == (kind, 1), tuned

    _genreflow(project, "register")
    decision = json.loads((project / "reports" / "register.json").read_text())
    assert (decision["alias"], decision["model_kind"]) == ("champion", kind), decision

    clip = next(Path(tiny_data).glob("blues/*"))
    predicted = _json_out(_genreflow(project, "predict", "--json", str(clip)))
    assert predicted[0]["genre"] in TINY_GENRES, predicted
    served = _serve_one(project, clip)
    assert served["genre"] == predicted[0]["genre"], (served, predicted)
    assert served["probability"] == pytest.approx(predicted[0]["probability"], abs=1e-4)
    if kind == PLUGIN:  # once: params that do not rename the model look for the built-in name
        (project / "unnamed.yaml").write_text(yaml.safe_dump({"tracking": yaml.safe_load(
            (project / "params.yaml").read_text())["tracking"]}))
        unnamed = _genreflow(project, "predict", "--params", "unnamed.yaml", str(clip), code=1)
        assert f"cannot load model {RegisterConfig().champion_uri!r}" in unnamed.stderr
