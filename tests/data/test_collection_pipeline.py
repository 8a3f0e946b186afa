"""A user's own collection through `genreflow data get` and `dvc repro`, one per layout:
label folders (deep, odd but legal names), a manifest with groups (``split.method: group``)
and a manifest with a predefined split (``split.method: predefined``). Every layout goes
through validate and split (the manifest with groups through features too) in the default
suite; an unbalanced manifest with groups also through training, tuning, registering and
predicting with one small kind, as ``make repro`` would, in ``make test-all`` (serving every
kind: tests/model/test_kind_matrix.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import write_tone
from tests_helpers import SMALL_KINDS, TINY_PIPELINE, merge_params, pipeline_copy

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: three labels a user might have, each told apart by its tone
LABELS = {"Hip-Hop": 180.0, "Música Popular": 440.0, "drum and bass": 900.0}
#: clips per label, in groups ("artists") of 2: one label has a third of the others' clips
CLIPS = {"Hip-Hop": 12, "Música Popular": 12, "drum and bass": 4}


def _run(args: list[str], cwd: Path, timeout: float = 900) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_TRACKING_URI", "GTZAN_DIR", "GENREFLOW_PLUGINS"):
        env.pop(name, None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _tracks(root: Path) -> list[dict]:
    """Each clip's label, group (artist), file under ``root`` and its predefined split."""
    rows = []
    for li, (name, freq) in enumerate(LABELS.items()):
        for i in range(CLIPS[name]):
            artist = f"{name} Artist {i // 2}"
            rel = Path(name) / artist / f"Album ({1990 + i})" / f"{i:02d}. Song [live] #{i}.wav"
            write_tone(root / rel, seconds=2.0, freq=freq * (1 + 0.02 * i), seed=li * 100 + i)
            split = ("train", "train", "val", "test")[i % 4]
            rows.append({"path": rel.as_posix(), "label": name, "group": artist,
                         "split": split})
    return rows


def _library(tmp: Path) -> tuple[Path, Path, list[dict]]:
    """``tmp/music/library`` (label folders), ``tmp/music/catalogue.csv`` (the same files,
    with groups and a predefined split) and the rows."""
    rows = _tracks(tmp / "music" / "library")
    catalogue = tmp / "music" / "catalogue.csv"
    pd.DataFrame([{**r, "path": f"library/{r['path']}"} for r in rows]).to_csv(catalogue,
                                                                              index=False)
    return tmp / "music" / "library", catalogue, rows


def _key(path: str) -> str:
    """A track by its artist, album and file name (unique here; the staged path adds folders)."""
    return "/".join(Path(path).parts[-3:])


def _repo(tmp: Path, split: dict) -> Path:
    return pipeline_copy(tmp, merge_params(TINY_PIPELINE, {
        "data": {"genres": "auto"}, "audio": {"min_seconds": 1.0},
        "features": {"clip_seconds": 2.0},
        "figures": {"clips": "auto"}, "split": split,
        "train": {"models": ["cnn"], "max_epochs": 2, "patience": 2, "batch_size": 8,
                  **SMALL_KINDS},
        "tune": {"model": "cnn"}}))


def _split(repo: Path) -> pd.DataFrame:
    return pd.read_csv(repo / "artifacts" / "split.csv", keep_default_na=False)


@pytest.mark.integration
@pytest.mark.parametrize("layout", ["folders", "groups", "predefined"])
def test_each_layout_goes_through_the_data_stages(layout: str, tmp_path: Path):
    library, catalogue, rows = _library(tmp_path)
    method = {"folders": "stratified", "groups": "group", "predefined": "predefined"}[layout]
    repo = _repo(tmp_path, {"method": method, "ratios": [0.5, 0.25, 0.25], "balance": False})
    source = library if layout == "folders" else catalogue
    _run(["genreflow", "data", "get", str(source)], repo)
    assert (repo / "data.dvc").exists()
    # the labels reach the features once (the three layouts give the same labels)
    _run([sys.executable, "-m", "dvc", "repro", "features" if layout == "groups" else "split"],
         repo)

    validate = json.loads((repo / "reports/validate/validate.json").read_text())
    assert validate["n_ok"] == sum(CLIPS.values()) and not validate["excluded"]
    split = _split(repo)
    assert sorted(split["genre"].unique()) == sorted(LABELS)
    assert set(split["split"]) == {"train", "val", "test"}
    got = {_key(p): s for p, s in zip(split["path"], split["split"], strict=True)}
    assert len(got) == len(rows)
    if layout == "groups":  # no artist in two splits
        assert (split.groupby("group")["split"].nunique() == 1).all(), split
        assert split["group"].nunique() == sum(CLIPS.values()) // 2
    if layout == "predefined":
        assert got == {_key(r["path"]): r["split"] for r in rows}
    if layout == "groups":
        features = json.loads((repo / "artifacts/features/meta.json").read_text())
        assert sorted(features["classes"]) == sorted(LABELS)


@pytest.mark.slow  # the whole of `dvc repro`: `make test-all`
@pytest.mark.integration
def test_a_manifest_with_groups_trains_registers_and_predicts(tmp_path: Path):
    """The whole of `dvc repro` (one small kind) on a manifest with groups: the champion
    answers with the collection's labels."""
    _, catalogue, _ = _library(tmp_path)
    repo = _repo(tmp_path, {"method": "group", "ratios": [0.5, 0.25, 0.25], "balance": False})
    _run(["genreflow", "data", "get", str(catalogue)], repo)
    _run([sys.executable, "-m", "dvc", "repro"], repo)
    register = json.loads((repo / "reports/register.json").read_text())
    assert register["alias"] == "champion" and register["data_source"] == "manifest"
    assert register["model_kind"] == "cnn"
    clip = next((repo / "data").rglob("*.wav"))
    out = _run(["genreflow", "predict", "--json", str(clip)], repo)
    predicted = json.loads(out[out.index("["):])
    assert predicted[0]["genre"] in LABELS
    # unbalanced: per-class numbers and macro-F1 beside accuracy, wherever accuracy is shown
    metrics = json.loads(_run([sys.executable, "-m", "dvc", "metrics", "show", "--json"],
                              repo))
    shown = json.dumps(metrics)
    for key in ("test_track_accuracy", "val_macro_f1", "test_macro_f1"):
        assert key in shown, key
    per_class = json.loads((repo / "reports/train/cnn/per_class.json").read_text())
    assert set(LABELS) <= set(json.dumps(per_class, ensure_ascii=False).split('"')), per_class
    run = json.loads((repo / "reports/train/cnn/run.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    logged = client.get_run(run["run_id"]).data.metrics
    assert {"val_macro_f1", "test_macro_f1"} <= set(logged)
    assert sum(k.startswith("test_f1_") for k in logged) == len(LABELS), sorted(logged)
    table = _run(["genreflow", "report"], repo)
    assert "your collection: a manifest" in table and "macro-F1" in table, table
    page = (repo / "reports/report/index.html").read_text()
    assert all(label in page for label in LABELS)  # the per-class table
