"""No dvc.yaml stage declares a store URL as a parameter: DVC copies every declared
parameter's value into dvc.lock (committed), and a store URL may hold a password."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from test_dvc_deps import ROOT, SRC, _dvc, _paths, _stub, stages

from genreflow.core.config import TuneConfig

#: Parameters whose values may hold credentials (set from the environment instead).
SECRET_PARAMS = ("tune.storage", "tracking.uri")
#: Tune settings that do not change a study's results (left out of the tune stage's params).
TUNE_NOT_RESULTS = {"storage", "heartbeat_seconds"}


def declared_params(stage: dict) -> list[str]:
    """The parameter keys a stage declares; ``"*"`` for a whole parameter file."""
    keys: list[str] = []
    for entry in stage.get("params") or []:
        if isinstance(entry, str):
            keys.extend(k.strip() for k in entry.split(","))
        elif isinstance(entry, dict):
            for names in entry.values():
                keys.extend(names if names else ["*"])  # `- file.yaml:` declares all of it
    return keys


def covers(declared: str, key: str) -> bool:
    """Whether declaring ``declared`` records ``key``'s value (a section records its fields)."""
    return declared == "*" or declared == key or key.startswith(f"{declared}.")


def test_declared_params_reads_every_form():
    stage = {"params": ["a.b", "c,d", {"other.yaml": ["e"]}, {"params.yaml": None}]}
    assert declared_params(stage) == ["a.b", "c", "d", "e", "*"]
    assert covers("tune", "tune.storage") and covers("*", "tracking.uri")
    assert not covers("tune.study", "tune.storage") and not covers("track", "tracking.uri")


@pytest.mark.parametrize("name", sorted(stages()))
def test_no_stage_declares_a_store_url(name: str):
    declared = declared_params(stages()[name])
    leaking = sorted({d for d in declared for key in SECRET_PARAMS if covers(d, key)})
    assert not leaking, (f"dvc.yaml stage {name!r} declares {leaking} as params: dvc.lock would "
                         f"record {SECRET_PARAMS} (a store URL may hold a password)")


def test_tune_stage_declares_every_setting_that_changes_results():
    """Listing tune's settings one by one must not silently leave out a new one."""
    declared = set(declared_params(stages()["tune"]))
    wanted = {f"tune.{f.name}" for f in dataclasses.fields(TuneConfig)
              if f.name not in TUNE_NOT_RESULTS}
    assert wanted <= declared, f"tune stage: declare {sorted(wanted - declared)} in dvc.yaml"


@pytest.mark.integration
def test_dvc_lock_holds_no_store_url(tmp_path: Path):
    """Real DVC: with store URLs carrying a password in params.yaml, `dvc commit` writes a
    dvc.lock that holds neither password."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tune"]["storage"] = "postgresql://me:tune-s3cret@db/optuna"
    params["tracking"]["uri"] = "postgresql://me:mlflow-s3cret@db/mlflow?password=q-s3cret"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(SRC, repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _dvc(["init", "--no-scm", "-q"], repo)
    _dvc(["config", "--local", "core.site_cache_dir", str(tmp_path / "dvc-site")], repo)
    for stage in stages().values():
        for key in ("deps", "outs", "metrics", "plots"):
            for p in _paths(stage.get(key)):
                _stub(repo / p)
    _dvc(["commit", "-f", "-q"], repo)
    lock = (repo / "dvc.lock").read_text()
    assert "tune.n_trials" in lock or "n_trials" in lock  # the tune stage's params are there
    assert "s3cret" not in lock
