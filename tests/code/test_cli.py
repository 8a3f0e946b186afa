"""The command line: a user error is one red line and exit 1; a bug keeps its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from genreflow.cli import app

runner = CliRunner()


def _user_error(res) -> str:
    """The one ``error: ...`` line of a command that failed with a user error."""
    assert res.exit_code == 1, res.output
    # typer.Exit(1) from `friendly`, not an exception that escaped it
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def _cli(args: list[str], cwd: Path, debug: bool = False) -> subprocess.CompletedProcess:
    """The real command in a fresh interpreter (how a user sees tracebacks)."""
    env = {k: v for k, v in os.environ.items() if k != "GENREFLOW_DEBUG"}
    env["COLUMNS"] = "200"
    if debug:
        env["GENREFLOW_DEBUG"] = "1"
    return subprocess.run([sys.executable, "-m", "genreflow.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_help_lists_every_workload():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("data", "validate", "split", "features", "figures", "train", "tune", "register",
                "report", "predict"):
        assert cmd in out


def test_missing_data_folder_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"dir": "nowhere"}}))
    line = _user_error(runner.invoke(app, ["validate"]))
    assert "nowhere" in line and "genreflow data get" in line


def test_bad_params_name_the_field(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"ratios": [1, 2]}}))
    assert "split.ratios" in _user_error(runner.invoke(app, ["split"]))


def test_unknown_model_name(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    assert "resnet" in _user_error(runner.invoke(app, ["train", "resnet"]))


def test_missing_input_names_the_stage_to_run(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    line = _user_error(runner.invoke(app, ["split"]))
    assert "reports/validate/validate.json: not found; run `dvc repro validate` first" in line
    line = _user_error(runner.invoke(app, ["features"]))
    assert "artifacts/split.csv" in line and "dvc repro split" in line
    line = _user_error(runner.invoke(app, ["figures"]))
    assert "validate.json: not found" in line


def test_missing_features_is_a_user_error(tmp_path: Path):
    from genreflow.core.errors import GenreflowError
    from genreflow.models.featurestore import load_features

    with pytest.raises(GenreflowError, match="no features; run `dvc repro features` first"):
        load_features(tmp_path / "nowhere")


def test_unexpected_value_error_is_a_bug_with_traceback(tmp_path: Path):
    """An empty manifest makes pandas raise EmptyDataError (a ValueError): not a user error."""
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "empty.csv").write_text("")
    proc = _cli(["features", "--manifest", "empty.csv"], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "EmptyDataError" in proc.stderr, proc.stderr
    assert not any(line.startswith("error: ") for line in proc.stderr.splitlines())


def test_debug_switch_shows_the_traceback_of_a_user_error(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("{}\n")
    quiet = _cli(["split"], tmp_path)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines() == [
        "error: reports/validate/validate.json: not found; run `dvc repro validate` first"]
    loud = _cli(["split"], tmp_path, debug=True)
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr and "MissingInputError" in loud.stderr, loud.stderr


def test_commands_that_load_models_keep_tensorflow_notices_off_stderr():
    """With oneDNN on (genreflow.core.tfenv), TensorFlow prints its notice at import; the commands
    that train, embed or score load it quietly first, so a later ``import keras`` stays silent."""
    code = ("from genreflow.core.tfenv import set_tf_environment; set_tf_environment(); "
            "from genreflow.cli import _load_tensorflow; _load_tensorflow(); import keras")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    env.pop("GENREFLOW_DECODER_STDERR", None)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "oneDNN" not in res.stderr and "absl" not in res.stderr, res.stderr


def test_a_tracking_store_that_does_not_answer_is_named_within_seconds(tmp_path: Path,
                                                                        monkeypatch):
    """MLflow retries a dead server or database for minutes; predict with a models:/ URI
    (and every command that tracks) says at once which store, with its password hidden."""
    import time

    from tests_helpers import free_port

    (tmp_path / "song.wav").write_bytes(b"")
    args = ["predict", "song.wav", "--model", "models:/m@champion"]
    # the same command against a store that answers (no such model): the interpreter's and
    # imports' cost on this machine, however loaded it is
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'alive.db'}")
    start = time.monotonic()
    assert _cli(args, tmp_path).returncode == 1
    baseline = time.monotonic() - start

    for store in ("http://127.0.0.1:{port}", "postgresql://me:s3cret@127.0.0.1:{port}/mlflow"):
        uri = store.format(port=free_port())  # nothing listens there
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        start = time.monotonic()
        # a fresh interpreter: in this one, an earlier test's mlflow.set_tracking_uri would win
        proc = _cli(args, tmp_path)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        line = proc.stderr.strip()
        assert line.startswith("error: ")
        # MLflow's own retries took 105 s (database) and 249 s (server); the probe gives up in 10
        assert time.monotonic() - start < baseline + 20, uri
        assert "does not answer" in line and "Connection refused" in line and "s3cret" not in line
        assert uri.replace("s3cret", "***") in line
