"""Slow: `dvc repro` a tiny project, then render its views in headless Chromium, offline.

scripts/check_views.py runs `dvc plots show` and `genreflow report` and fails on an empty
chart, missing learning-curve series or a model missing from the report. Needs Chromium
(`apt-get install -y chromium`) and the offline plots template (`make plots-deps`, npm).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests_helpers import SMALL_KINDS, TINY_PIPELINE, merge_params

ROOT = Path(__file__).resolve().parents[2]
TINY = merge_params(TINY_PIPELINE, {"train": {"max_epochs": 3, "patience": 3,
                                               "batch_size": 8}})


def _run(args: list[str], cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("GTZAN_DIR", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _template(tmp_path: Path) -> Path:
    """The offline template: the installed one, else built now with npm."""
    installed = ROOT / ".venv" / "share" / "genreflow" / "dvc_plots.html"
    if installed.is_file() and "/* vega-embed@" in installed.read_text(encoding="utf-8"):
        return installed
    proc = _run([sys.executable, str(ROOT / "scripts" / "plots_template.py"),
                 "--dest", str(tmp_path / "tpl")], ROOT, timeout=600)
    built = tmp_path / "tpl" / "dvc_plots.html"
    if proc.returncode != 0 or "/* vega-embed@" not in built.read_text(encoding="utf-8"):
        pytest.skip(f"no offline plots template (`make plots-deps` needs npm): {proc.stderr}")
    return built


@pytest.mark.slow
@pytest.mark.integration
def test_views_render_offline_with_every_chart_drawn(tmp_path: Path):
    if not (shutil.which("chromium") or os.environ.get("CHROMIUM")):
        pytest.skip("Chromium not installed: `sudo apt-get install -y chromium`")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    kinds = {k: v for k, v in SMALL_KINDS.items() if k in params["train"]["models"]}
    params = merge_params(params, merge_params(TINY, {"train": kinds}))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for args in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                 ["genreflow", "data", "synth", "--clips-per-genre", "6", "--seconds", "4"],
                 [sys.executable, "-m", "dvc", "repro"]):
        proc = _run(args, repo)
        assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (repo / "reports/report/index.html").is_file()  # the report stage ran
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    with (repo / ".dvc" / "config").open("a") as f:
        f.write(f"[plots]\n    html_template = {_template(tmp_path)}\n")

    out = tmp_path / "views"
    proc = _run([sys.executable, str(ROOT / "scripts" / "check_views.py"), "--project",
                 str(repo), "--out", str(out)], repo, timeout=600)
    assert proc.returncode == 0, f"check_views failed:\n{proc.stdout[-4000:]}\n{proc.stderr}"
    for model in params["train"]["models"]:
        assert f"reports_train_{model}_history_csv" in proc.stdout
    assert (out / "dvc_plots.png").stat().st_size > 10_000
    assert (out / "report.png").stat().st_size > 10_000
