"""`dvc repro` end to end on a temporary copy of the repository, on tiny synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests_helpers import SMALL_KINDS, TINY_PIPELINE, merge_params, pipeline_copy

ROOT = Path(__file__).resolve().parents[2]

TINY = merge_params(TINY_PIPELINE, {"train": {
    "models": ["cnn", "inception", "segcnn"], "max_epochs": 2, "patience": 2, "batch_size": 8,
    **SMALL_KINDS}})


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("GTZAN_DIR", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow  # about 1.5 min on 2 cores: `make test-all`
@pytest.mark.integration
def test_dvc_repro_end_to_end_then_up_to_date_then_selective(tmp_path: Path):
    repo = pipeline_copy(tmp_path, TINY)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _run(["genreflow", "data", "synth", "--clips-per-genre", "6", "--seconds", "4"], repo)
    assert (repo / "data.dvc").exists()

    _run([sys.executable, "-m", "dvc", "repro"], repo)
    for out in ("reports/validate/validate.json", "artifacts/split.csv",
                "artifacts/features/meta.json", "plots/figures/blues.00000_chroma.png",
                "models/segcnn/model.keras", "reports/train/cnn/metrics.json",
                "reports/tune/tune.json", "reports/register.json", "mlflow.db"):
        assert (repo / out).exists(), out
    register = json.loads((repo / "reports/register.json").read_text())
    assert register["alias"] == "champion" and register["data_source"] == "synthetic"

    second = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "up to date" in second.lower()
    status = _run([sys.executable, "-m", "dvc", "status"], repo)
    assert "up to date" in status.lower()

    params["figures"]["dpi"] = 40
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = _run([sys.executable, "-m", "dvc", "status"], repo)
    assert "figures" in changed and "train@" not in changed and "features" not in changed
    third = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage 'figures'" in third
    for stage in ("validate", "split", "features", "train@cnn", "train@inception",
                  "train@segcnn", "tune"):
        assert f"Running stage '{stage}'" not in third

    metrics = _run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], repo)
    assert "test_track_accuracy" in metrics
