"""The command line: clear one-line errors, never a bare traceback."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from genreflow.cli import app

runner = CliRunner()


def test_help_lists_every_workload():
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("data", "validate", "split", "features", "figures", "train", "tune", "register",
                "report", "predict"):
        assert cmd in out


def test_missing_data_folder_is_a_clear_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"dir": "nowhere"}}))
    res = runner.invoke(app, ["validate"])
    assert res.exit_code == 1
    assert "nowhere" in res.output and "genreflow data get" in res.output
    assert "Traceback" not in res.output


def test_bad_params_name_the_field(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"split": {"ratios": [1, 2]}}))
    res = runner.invoke(app, ["split"])
    assert res.exit_code == 1 and "split.ratios" in res.output


def test_unknown_model_name(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("{}\n")
    res = runner.invoke(app, ["train", "resnet"])
    assert res.exit_code == 1 and "resnet" in res.output
