"""What users look at: `dvc plots show --json` from dvc.yaml's definitions, and `genreflow report`.

The plots test runs real DVC on hand-written report files (no stage is run): DVC reads the
plot definitions of dvc.yaml and the templates in .dvc/plots. Rendering in a browser is
tests/code/test_views_browser.py (slow).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from genreflow.cli import app
from genreflow.stages.report.summary import collect
from genreflow.stages.report.write import terminal_table, write_report

ROOT = Path(__file__).resolve().parents[2]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
HISTORY = pd.DataFrame({"epoch": [1, 2, 3], "accuracy": [0.4, 0.6, 0.7], "loss": [1.5, 1.1, 0.9],
                        "val_accuracy": [0.3, 0.5, 0.55], "val_loss": [1.6, 1.3, 1.2],
                        "val_track_accuracy": [0.33, 0.5, 0.66],
                        "learning_rate": [1e-3, 1e-3, 3e-4]})


def _project(tmp_path: Path) -> tuple[Path, list[str]]:
    """dvc.yaml, params.yaml and .dvc/plots of the repository, plus report files by hand."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    _dvc(["init", "--no-scm", "-q"], repo)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    models = yaml.safe_load((repo / "params.yaml").read_text())["train"]["models"]
    for m in models:
        d = repo / "reports" / "train" / m
        d.mkdir(parents=True)
        HISTORY.to_csv(d / "history.csv", index=False)
        for s in ("train", "val", "test"):
            pd.DataFrame({"clip_id": ["a", "b"], "actual": ["blues", "metal"],
                          "predicted": ["blues", "blues"]}).to_csv(d / f"predictions_{s}.csv",
                                                                   index=False)
            (d / f"confusion_{s}.png").write_bytes(PNG)
        (d / "learning_curves.png").write_bytes(PNG)
    (repo / "reports/split").mkdir(parents=True)
    pd.DataFrame({"genre": ["blues", "metal"] * 3, "split": ["train"] * 2 + ["val"] * 2 + ["test"] * 2,
                  "count": [8, 8, 1, 1, 1, 1]}).to_csv(repo / "reports/split/split_counts.csv",
                                                       index=False)
    (repo / "reports/split/split_counts.png").write_bytes(PNG)
    (repo / "reports/validate").mkdir(parents=True)
    (repo / "reports/validate/validate_genres.png").write_bytes(PNG)
    (repo / "plots/figures").mkdir(parents=True)
    (repo / "plots/figures/blues.00000_chroma.png").write_bytes(PNG)
    return repo, models


def _dvc(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"dvc {args}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


def _panels(spec: dict) -> dict[str, set[str]]:
    """Which series each panel of the learning-curve spec draws from its data.

    Follows the template's transforms: fold the columns, keep the non-empty numeric ones,
    name the series with the template's map, split into panels by their filters.
    """
    rows = spec["data"]["values"]
    tf = spec["transform"]
    folded = next(t["fold"] for t in tf if "fold" in t)
    naming = next(t["calculate"] for t in tf if t.get("as") == "series")
    names = ast.literal_eval(naming[:naming.rindex("[")])
    out: dict[str, set[str]] = {}
    for panel in spec["hconcat"]:
        (needle,) = re.findall(r"indexof\(datum\.column, '(\w+)'\) >= 0", panel["transform"][0]["filter"])
        cols = [c for c in folded if needle in c
                and all(str(r.get(c, "")) not in ("", "nan") for r in rows)
                and all(isinstance(float(r[c]), float) for r in rows)]
        assert panel["encoding"]["color"]["field"] == "series"
        out[panel["title"]["text"]] = {names[c] for c in cols}
    return out


def test_dvc_plots_show_json_has_training_and_validation_loss_and_accuracy(tmp_path: Path):
    repo, models = _project(tmp_path)
    shown = json.loads(_dvc(["plots", "show", "--json"], repo))
    assert not shown.get("errors"), shown.get("errors")
    plots = shown["data"]
    for m in models:
        (history,) = plots[f"reports/train/{m}/history.csv"]
        assert history["type"] == "vega"
        spec = history["content"]
        assert len(spec["data"]["values"]) == len(HISTORY)
        panels = _panels(spec)
        assert {"training", "validation"} <= panels["loss"], panels
        assert {"training", "validation"} <= panels["accuracy"], panels
        assert m in spec["title"]["text"]
        for s in ("train", "val", "test"):
            (conf,) = plots[f"reports/train/{m}/predictions_{s}.csv"]
            assert conf["type"] == "vega" and conf["content"]["data"]["values"]
        for png in ("learning_curves", "confusion_test", "confusion_val", "confusion_train"):
            assert plots[f"reports/train/{m}/{png}.png"][0]["type"] == "image"
    for png in ("reports/split/split_counts.png", "reports/validate/validate_genres.png"):
        assert plots[png][0]["type"] == "image"
    # clips per genre and split: one bar segment per (genre, split), stacked by split
    (counts,) = plots["reports/split/split_counts.csv"]
    spec = counts["content"]
    enc = spec["encoding"]
    assert enc["y"]["field"] == "genre" and enc["color"]["field"] == "split"
    assert {(r["genre"], r["split"]) for r in spec["data"]["values"]} == \
        {(g, s) for g in ("blues", "metal") for s in ("train", "val", "test")}


def test_split_writes_counts_in_long_format(tmp_path: Path):
    from genreflow.core.config import SplitConfig
    from genreflow.stages.split import write_split

    manifest = pd.DataFrame({"clip_id": ["b.1", "b.2", "b.3", "m.1", "m.2", "m.3"],
                             "genre": ["blues"] * 3 + ["metal"] * 3, "path": ["x"] * 6,
                             "split": ["train", "val", "test"] * 2})
    write_split(manifest, {"data_source": "synthetic"}, SplitConfig(), tmp_path / "s.csv",
                tmp_path / "rep")
    counts = pd.read_csv(tmp_path / "rep" / "split_counts.csv")
    assert list(counts.columns) == ["genre", "split", "count"]
    assert len(counts) == 6 and set(counts["count"]) == {1}


def _reports(root: Path, models: dict[str, str], champion_kind: str | None = "segcnn") -> None:
    for i, (m, source) in enumerate(models.items()):
        d = root / "reports" / "train" / m
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(
            {"train_track_accuracy": 0.9 - i / 10, "val_track_accuracy": 0.8 - i / 10,
             "test_track_accuracy": 0.7 - i / 10, "val_track_loss": 0.5, "epochs": 12,
             "best_epoch": 9, "run_id": f"run{m}", "data_source": source}))
        (d / "learning_curves.png").write_bytes(PNG)
    if champion_kind:
        (root / "reports" / "register.json").write_text(json.dumps(
            {"version": "3", "alias": "champion", "reason": "validation 0.8 beats 0.7",
             "run_id": f"run{champion_kind}",
             "candidate_val": {"accuracy": 0.8, "loss": 0.5, "n_tracks": 10},
             "champion_val": {"accuracy": 0.6, "loss": 0.9, "n_tracks": 10},
             "test_track_accuracy": 0.7, "latency_ms": 53.4,
             "previous_champion": "2", "model_name": "gtzan-genre-classifier",
             "model_kind": champion_kind, "data_source": "synthetic"}))


def test_report_lists_every_model_says_which_are_missing_and_names_the_champion(tmp_path: Path):
    _reports(tmp_path, {"segcnn": "synthetic", "cnn": "synthetic"})
    summary = collect(tmp_path, ["segcnn", "cnn", "inception"])
    table = terminal_table(summary)
    assert "[synthetic]" in table.splitlines()[0]
    assert re.search(r"segcnn \*\s+0\.900\s+0\.800\s+0\.700\s+12 \(9\)", table), table
    assert re.search(r"inception\s+missing: no reports/train/inception/metrics.json", table)
    assert "v3 @champion" in table and "validation 0.8 beats 0.7" in table
    assert "val_track_accuracy 0.800 (previous champion 0.600 on the same clips)" in table
    assert "test 0.700, 53 ms for a 30 s clip" in table

    page = write_report(summary, tmp_path / "out", log=lambda _: None)
    html = page.read_text()
    assert 'data-model="inception" data-status="missing"' in html
    assert 'data-model="cnn" data-status="ok"' in html
    assert "source-synthetic" in html and "gtzan-genre-classifier v3 @champion" in html
    assert "<dd>53 ms on the machine that registered it</dd>" in html
    assert "data:image/png;base64," in html  # figures inlined: the page stands alone
    assert not re.search(r"""(src|href)=["']https?:""", html)  # nothing from the network
    assert json.loads((tmp_path / "out" / "champion.json").read_text()) == {
        "data_source": "synthetic", "version": 3, "val_track_accuracy": 0.8,
        "test_track_accuracy": 0.7}


def _with_class_metrics(root: Path, model: str, val: tuple[float, float], support: dict) -> None:
    """What train writes since per-class metrics: intervals and macro-F1 in metrics.json,
    per_class.json."""
    d = root / "reports" / "train" / model
    metrics = json.loads((d / "metrics.json").read_text())
    metrics.update(val_track_accuracy_lo=val[0], val_track_accuracy_hi=val[1],
                   val_macro_f1=0.61, test_macro_f1=0.42)
    (d / "metrics.json").write_text(json.dumps(metrics))
    rows = {label: {"precision": 0.5, "recall": 0.25 if n <= 10 else 0.9, "f1": 0.333,
                    "support": n} for label, n in support.items()}
    (d / "per_class.json").write_text(json.dumps({"val": rows, "test": rows}))


def test_report_shows_intervals_macro_f1_per_class_tables_and_imbalance(tmp_path: Path):
    _reports(tmp_path, {"segcnn": "synthetic", "cnn": "synthetic"})
    _with_class_metrics(tmp_path, "segcnn", (0.55, 0.95), {"rock": 30, "folk+jazz": 10})
    # cnn: an old run, without intervals nor per_class.json
    summary = collect(tmp_path, ["segcnn", "cnn"])
    table = terminal_table(summary)
    assert re.search(r"segcnn \*\s+0\.900\s+0\.800\s+0\.700\s+12 \(9\)\s+"
                     r"\[0\.550, 0\.950\]\s+0\.610\s+0\.420", table), table
    assert re.search(r"cnn\s+0\.800\s+0\.700\s+0\.600\s+12 \(9\)\s+-\s+-\s+-", table), table
    assert "unbalanced test split (the largest class has 3.0x the smallest's tracks)" in table
    assert "warning     val interval wider than 0.2 (segcnn)" in table

    html = write_report(summary, tmp_path / "out", log=lambda _: None).read_text()
    assert '<td class="num val-interval">[0.550, 0.950]</td>' in html
    assert "id='wide-intervals'" in html and "wider than 0.2" in html
    part = html[html.index("<table class='per-class' data-model='segcnn' data-split='test'>"):]
    part = part[:part.index("</table>")]
    assert re.search(r"<td>folk\+jazz</td><td class='num'>10</td><td class='num'>0\.500</td>"
                     r"<td class='num'>0\.250</td><td class='num'>0\.333</td>", part), part
    assert "segcnn &#9733; champion: test split, macro-F1 0.420" in html
    assert "data-model='cnn'" not in html.split("<h2>Per-class metrics</h2>")[1]
    assert "Unbalanced (the largest class has 3.0x the smallest&#x27;s tracks)" in html
    assert json.loads((tmp_path / "out" / "champion.json").read_text())["test_macro_f1"] == 0.42


def test_report_shows_the_tuning_interval_and_its_warning(tmp_path: Path):
    _reports(tmp_path, {"segcnn": "synthetic"})
    (tmp_path / "reports" / "tune").mkdir(parents=True)
    (tmp_path / "reports" / "tune" / "tune.json").write_text(json.dumps(
        {"study": "s", "model": "segcnn", "metric": "val_track_accuracy", "n_complete": 2,
         "n_pruned": 0, "n_failed": 0, "best_value": 0.8, "best_interval": [0.5, 1.0],
         "best_macro_f1": 0.77, "best_params": {"optimizer": "adam"},
         "warning": "the best trial's 95 % interval over 10 validation tracks is wide"}))
    html = write_report(collect(tmp_path, ["segcnn"]), tmp_path / "out",
                        log=lambda _: None).read_text()
    assert "<dd>0.800 (95 % interval [0.500, 1.000], macro-F1 0.770)</dd>" in html
    assert "<dt>warning</dt><dd>the best trial&#x27;s 95 % interval over 10 validation" in html


def test_report_flags_mixed_data_sources_and_no_champion(tmp_path: Path):
    _reports(tmp_path, {"segcnn": "gtzan", "cnn": "synthetic"}, champion_kind=None)
    summary = collect(tmp_path, ["segcnn", "cnn"])
    assert summary.data_source == "mixed"
    table = terminal_table(summary)
    assert "MIXED" in table and "champion    none" in table
    html = write_report(summary, tmp_path / "out", log=lambda _: None).read_text()
    assert "source-mixed" in html and "No model is registered yet" in html


def test_report_command_prints_the_table(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    models = yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]["models"]
    _reports(tmp_path, {models[0]: "gtzan"}, champion_kind=models[0])
    res = CliRunner().invoke(app, ["report"])
    assert res.exit_code == 0, res.output
    assert models[0] in res.output and "reports/report/index.html" in res.output
    for m in models[1:]:
        assert re.search(rf"{m}\s+missing", res.output)
    assert (tmp_path / "reports/report/index.html").is_file()


@pytest.mark.parametrize("broken", ["{not json", "[1, 2]"])
def test_report_names_an_unreadable_file(tmp_path: Path, broken: str):
    _reports(tmp_path, {"cnn": "synthetic"})
    (tmp_path / "reports/train/cnn/metrics.json").write_text(broken)
    summary = collect(tmp_path, ["cnn"])
    assert summary.models[0].status == "missing"
    assert any("reports/train/cnn/metrics.json" in p for p in summary.problems)


def test_report_shows_the_champion_when_the_last_registration_was_a_challenger(tmp_path: Path):
    _reports(tmp_path, {"segcnn": "synthetic", "cnn": "synthetic"}, champion_kind="cnn")
    reg = json.loads((tmp_path / "reports" / "register.json").read_text())
    reg.update(alias="challenger", reason="validation 0.5 does not beat 0.8", version="4",
               champion={"version": "3", "model_kind": "segcnn", "run_id": "runsegcnn",
                         "val_track_accuracy": 0.8, "test_track_accuracy": 0.75,
                         "latency_ms": 50.0})
    (tmp_path / "reports" / "register.json").write_text(json.dumps(reg))
    summary = collect(tmp_path, ["segcnn", "cnn"])
    table = terminal_table(summary)
    assert "v3 @champion: segcnn" in table and "v4 @" not in table
    assert "version 4 (cnn) became @challenger: validation 0.5 does not beat 0.8" in table
    assert re.search(r"segcnn \*", table), table  # the star marks the champion's row
    write_report(summary, tmp_path / "out", log=lambda _: None)
    assert json.loads((tmp_path / "out" / "champion.json").read_text()) == {
        "data_source": "synthetic", "version": 3, "val_track_accuracy": 0.8,
        "test_track_accuracy": 0.75}
