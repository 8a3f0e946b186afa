"""The champion/challenger rule, against a real MLflow registry in tmp_path.

Both models are scored on the same validation clips from raw audio, through the
path that ``mlflow models serve`` uses.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
from mlflow import MlflowClient

from genreflow.core.errors import GenreflowError
from genreflow.serving.predictor import GenrePredictor
from genreflow.stages.register import register_best
from genreflow.stages.register.champion import Champion, current_champion
from genreflow.stages.register.decide import Verdict, decide, decide_alias
from genreflow.stages.register.publish import Decision, publish, write_register_json
from genreflow.stages.register.score import (
    Score,
    SplitRows,
    read_split,
    score_candidate,
    score_on_audio,
)
from genreflow.stages.register.select import Candidate, ranked_runs, select
from genreflow.stages.train import train_model
from tests_helpers import all_settings, with_kind  # noqa: E402

quiet = lambda m: None  # noqa: E731


def test_decide_rule():
    """Scores without per-track outcomes (accuracy and tracks only) compare unpaired; the
    pure tests of the paired rule are in tests/code/test_register_decision.py."""
    s = lambda a, loss=0.5, n=10: Score(a, loss, n)  # noqa: E731
    assert decide(s(0.8), None).alias == "champion"
    assert decide(s(0.9, n=400), s(0.8, n=400)).alias == "champion"
    ruling = decide(s(0.80), s(0.80))
    assert ruling.alias == "challenger" and "does not beat" in ruling.reason
    assert decide(s(0.80, 0.4), s(0.80, 0.5)).alias == "challenger"  # the loss does not decide
    assert decide(s(0.9), s(0.7)).alias == "challenger"  # 2 of 10 tracks: inside the interval
    assert decide(s(0.7), s(0.8)).alias == "challenger"
    ruling = decide(s(0.1), None, "the champion was trained on other data")
    assert ruling.alias == "champion" and "other data" in ruling.reason


def test_mismatch_names_what_differs():
    from genreflow.stages.register.champion import mismatch as _mismatch

    now = {"data_digest": "d1", "split_digest": "s1", "classes": "blues,rock"}
    assert _mismatch(dict(now), now) is None
    why = _mismatch({**now, "classes": "blues,jazz,rock"}, now)  # same audio, other genres
    assert "other classes (blues,jazz,rock; now blues,rock)" in why and "other data" not in why
    why = _mismatch({**now, "data_digest": "d0", "data_source": "synthetic",
                     "classes": "a,b"}, now)
    assert "other data (synthetic data, digest d0; now d1) and other classes" in why
    assert "another split" in _mismatch({**now, "split_digest": "s0"}, now)


def _prepare(cfg, root):
    """validate, split and features of ``cfg.data.dir`` into ``root``: the manifest path."""
    from genreflow.models.featurestore import write_features
    from genreflow.models.splits import split_digest
    from genreflow.stages.features import compute_features
    from genreflow.stages.split import make_split
    from genreflow.stages.validate import validate_dataset

    report = validate_dataset(cfg.data, cfg.validate, workers=1, log=quiet)
    manifest = make_split(report, cfg.split, cfg.data, log=quiet)
    feats, classes, failed = compute_features(manifest, cfg.features, log=quiet)
    write_features(feats, classes, failed, cfg.features, report["data_source"],
                   root / "features", split_digest=split_digest(manifest))
    manifest.to_csv(root / "split.csv", index=False)
    return root / "split.csv"


def test_register_champion_then_challenger(tiny_project, tmp_path):
    cfg, feat_dir = tiny_project
    manifest = tmp_path / "split.csv"
    with pytest.raises(GenreflowError, match="train a model first"):
        register_best(cfg, manifest, log=quiet)
    run = train_model(cfg, "segcnn", feat_dir, log=quiet)
    first = register_best(cfg, manifest, out=tmp_path / "register.json", log=quiet)
    assert (first.alias, first.version, first.run_id) == ("champion", "1", run.run_id)
    # scored from raw audio through the served path, it agrees with training's number
    assert first.candidate_val.accuracy == pytest.approx(run.metrics["val_track_accuracy"])
    client = MlflowClient(cfg.tracking.uri)
    name = cfg.register.model_name
    mv = client.get_model_version_by_alias(name, "champion")
    assert mv.tags["data_source"] == "synthetic" and mv.tags["git_commit"]
    assert mv.tags["split_digest"] and mv.tags["data_digest"] and "test_track_accuracy" in mv.tags
    # the registered model's page: best-epoch values, final numbers and the dataset
    import mlflow

    page = mlflow.get_logged_model(mv.model_id or mv.source.rsplit("/", 1)[-1])
    values = {m.key: m for m in page.metrics}
    assert len(values) == len(page.metrics)  # each number once (MLflow links run metrics too)
    assert values["registered_val_track_accuracy"].value == pytest.approx(
        first.candidate_val.accuracy)
    assert values["val_track_accuracy"].value == pytest.approx(run.metrics["val_track_accuracy"])
    assert values["best_epoch"].dataset_name == "gtzan-synthetic"
    assert values["val_loss"].step == int(values["best_epoch"].value)
    # The same run again: it is the champion already; no second version of the same model
    decision = client.get_model_version(name, "1").tags["decision"]
    second = register_best(cfg, manifest, out=tmp_path / "register.json", log=quiet)
    assert (second.alias, second.version) == ("champion", "1")
    assert "already the champion (version 1)" in second.reason
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    assert client.get_model_version(name, "1").tags["decision"] == decision  # kept
    saved = json.loads((tmp_path / "register.json").read_text())
    assert saved["champion"]["version"] == "1" and saved["champion"]["model_kind"] == "segcnn"
    assert saved["champion"]["val_track_accuracy"] == pytest.approx(first.candidate_val.accuracy)


def test_champion_moved_by_a_concurrent_register_is_not_overwritten(tiny_project, tmp_path):
    """Another `register` sets @champion while this one scores the old champion: the rule is
    applied again against the new champion's recorded scores before the alias moves."""
    import pandas as pd

    from genreflow.models.splits import split_digest
    from genreflow.tracking.store import data_digest

    cfg, feat_dir = tiny_project
    manifest = tmp_path / "split.csv"
    good = replace(cfg.train, max_epochs=8, patience=8)
    k = all_settings(good)
    cfg.train = replace(good, experiment="weak", max_epochs=1,
                        kinds={**k, "cnn": replace(k["cnn"], learning_rate=1e-7)})
    train_model(cfg, "cnn", feat_dir, log=quiet)
    assert register_best(cfg, manifest, log=quiet).version == "1"
    cfg.train = good
    with_kind(cfg, "segcnn", band_limit=0.0)
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    name, table = cfg.register.model_name, pd.read_csv(manifest)

    def concurrent_register(message: str) -> None:
        if message.startswith("champion v1 on the same validation tracks"):
            (tmp_path / "other").mkdir()
            other = client.create_model_version(name, source=str(tmp_path / "other"), tags={
                "data_digest": data_digest(cfg.data.dir), "split_digest": split_digest(table),
                "classes": ",".join(sorted(table["genre"].unique())), "model_kind": "musicnn",
                cfg.register.metric: "1.0", "val_track_loss": "0.01", "run_id": "elsewhere"})
            client.set_registered_model_alias(name, "champion", other.version)

    late = register_best(cfg, manifest, out=tmp_path / "register.json", log=concurrent_register)
    assert late.candidate_val.accuracy > 0.5  # it beats v1, which it was compared with first
    assert (late.alias, late.version, late.previous_champion) == ("challenger", "3", "2"), \
        late.reason
    assert "does not beat the champion's 1.0000" in late.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    saved = json.loads((tmp_path / "register.json").read_text())
    assert saved["champion"]["version"] == "2" and saved["champion"]["model_kind"] == "musicnn"


def test_better_champion_is_kept(tiny_project, tmp_path):
    cfg, feat_dir = tiny_project
    manifest = tmp_path / "split.csv"
    cfg.train = replace(cfg.train, max_epochs=8, patience=8)
    with_kind(cfg, "segcnn", band_limit=0.0)  # the rule under test, not the augmentation
    good = cfg.train
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    champion = register_best(cfg, manifest, log=quiet)
    assert champion.candidate_val.accuracy > 0.5
    # a hopeless candidate (tiny learning rate, one epoch) in another experiment
    k = all_settings(good)
    cfg.train = replace(good, experiment="weak", max_epochs=1,
                        kinds={**k, "cnn": replace(k["cnn"], learning_rate=1e-7)})
    train_model(cfg, "cnn", feat_dir, log=quiet)
    weak = register_best(cfg, manifest, out=tmp_path / "register.json", log=quiet)
    assert weak.alias == "challenger"
    assert weak.champion_val.accuracy > weak.candidate_val.accuracy
    name = cfg.register.model_name
    client = MlflowClient(cfg.tracking.uri)
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion.version
    # register.json says who holds @champion: what the report and `dvc metrics` show
    saved = json.loads((tmp_path / "register.json").read_text())
    assert saved["version"] == weak.version and saved["champion_version"] == champion.version
    held = saved["champion"]
    assert (held["version"], held["model_kind"]) == (champion.version, "segcnn")
    assert held["val_track_accuracy"] == pytest.approx(weak.champion_val.accuracy)
    assert held["test_track_accuracy"] == pytest.approx(champion.test_track_accuracy)
    # a second registration of the same challenger run adds no version either
    again = register_best(cfg, manifest, log=quiet)
    assert (again.alias, again.version) == ("challenger", weak.version)
    assert len(client.search_model_versions(f"name = '{name}'")) == 2


def test_a_gain_inside_the_interval_does_not_move_the_champion(tiny_project, tmp_path):
    """The issue's case on the tiny data (6 validation clips): a segcnn trained longer beats
    the registered one on validation, by less than the paired interval of its gain, so
    ``@champion`` stays; register.json, the log and the version say so, with the intervals."""
    cfg, feat_dir = tiny_project
    manifest = tmp_path / "split.csv"
    first_run = train_model(cfg, "segcnn", feat_dir, log=quiet)  # 2 epochs
    first = register_best(cfg, manifest, log=quiet)
    assert (first.alias, first.basis, first.gain) == ("champion", "no champion", None)
    cfg.train = replace(cfg.train, max_epochs=8, patience=8)
    with_kind(cfg, "segcnn", band_limit=0.0)
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    logs = []
    d = register_best(cfg, manifest, out=tmp_path / "register.json", log=logs.append)
    assert d.run_id != first_run.run_id and d.previous_champion == first.version
    # better on validation, as the old rule (higher accuracy wins) would have moved it
    assert d.candidate_val.accuracy > d.champion_val.accuracy, d.reason
    gain = d.gain
    assert gain.paired and gain.n_tracks == d.candidate_val.n_tracks == 6
    assert gain.estimate == pytest.approx(d.candidate_val.accuracy - d.champion_val.accuracy)
    assert gain.lo <= 0 < gain.estimate <= gain.hi, d.reason  # inside the interval
    assert (d.alias, d.basis) == ("challenger", "paired bootstrap")
    assert "contains 0, so the champion stays" in d.reason
    client, name = MlflowClient(cfg.tracking.uri), cfg.register.model_name
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.version
    assert str(client.get_model_version_by_alias(name, "challenger").version) == d.version

    saved = json.loads((tmp_path / "register.json").read_text())
    for score in (saved["candidate_val"], saved["champion_val"]):
        assert score["accuracy_lo"] <= score["accuracy"] <= score["accuracy_hi"]
        assert score["n_tracks"] == 6
    assert saved["gain"] == {"estimate": pytest.approx(gain.estimate), "lo": gain.lo,
                             "hi": gain.hi, "n_tracks": 6, "paired": True}
    assert (saved["basis"], saved["confidence"]) == ("paired bootstrap", 0.95)
    assert "6 validation tracks (fewer than 30)" in saved["warning"]
    assert saved["test_track_accuracy_lo"] <= saved["test_track_accuracy"]
    assert saved["champion"]["version"] == first.version
    assert saved["champion"]["val_track_accuracy_hi"] == d.champion_val.hi
    assert f"warning: {d.warning}" in logs
    assert any(m.startswith("candidate on validation from raw audio: ") and " [" in m
               for m in logs)
    # the versions record their intervals and their hits over the 6 validation clips
    tags = client.get_model_version(name, d.version).tags
    assert float(tags["val_track_accuracy_lo"]) <= d.candidate_val.accuracy
    assert float(tags["val_track_accuracy_hi"]) >= d.candidate_val.accuracy
    assert tags["val_track_n"] == "6" and len(tags["val_track_hits"]) == 6
    assert tags["val_track_hits"].count("1") == round(6 * d.candidate_val.accuracy)
    assert "contains 0, so the champion stays" in tags["decision"]


def test_latency_budget_passes_over_slow_runs_and_slow_champions(tiny_project, tmp_path,
                                                                 monkeypatch):
    cfg, feat_dir = tiny_project
    manifest = tmp_path / "split.csv"
    cfg.train = replace(cfg.train, max_epochs=8, patience=8)
    with_kind(cfg, "segcnn", band_limit=0.0)
    k = all_settings(cfg.train)
    cfg.train = replace(cfg.train, kinds={**k, "cnn": replace(k["cnn"], learning_rate=1e-7)})
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    cfg.train = replace(cfg.train, max_epochs=1)
    train_model(cfg, "cnn", feat_dir, log=quiet)  # hopeless on validation, ranked second
    first = register_best(cfg, manifest, log=quiet)  # no budget: the best run
    assert first.model_kind == "segcnn" and first.alias == "champion" and first.latency_ms > 0
    name = cfg.register.model_name
    client = MlflowClient(cfg.tracking.uri)
    assert float(client.get_model_version(name, first.version).tags["latency_ms_30s"]) > 0

    # the machine's clock is what varies: give each kind a fixed time for a 30 s clip
    monkeypatch.setattr(GenrePredictor, "latency_ms",
                        lambda self, **_: {"segcnn": 500.0, "cnn": 20.0}[self.pre.kind])
    cfg.register = replace(cfg.register, max_latency_ms=100)
    logs = []
    # select alone: the ranked runs, the first within the budget
    ident = read_split(manifest, cfg.data.dir).ident
    runs = ranked_runs(cfg.register.metric, ident["data_digest"], ident["split_digest"],
                       [cfg.train.experiment])
    picked = select(runs, 100, tmp_path / "select", logs.append)
    assert (picked.kind, picked.latency_ms, picked.run_id) == ("cnn", 20.0, runs[1].info.run_id)
    assert (picked.bundle / "model.keras").is_file() and picked.predictor.pre.kind == "cnn"
    logs.clear()
    fast = register_best(cfg, manifest, log=logs.append)
    assert any("passed over run" in m and "(segcnn): 500 ms" in m for m in logs)
    # the slower champion is better on validation but over the budget: it does not block
    assert (fast.model_kind, fast.alias, fast.latency_ms) == ("cnn", "champion", 20.0)
    assert fast.champion_val.accuracy > fast.candidate_val.accuracy
    assert "over register.max_latency_ms = 100" in fast.reason
    assert client.get_model_version(name, fast.version).tags["latency_ms_30s"] == "20"
    cfg.register = replace(cfg.register, max_latency_ms=10)
    with pytest.raises(GenreflowError, match=r"max_latency_ms = 10: .*fastest: cnn, 20 ms"):
        register_best(cfg, manifest, log=quiet)


def test_champion_of_other_data_never_blocks(tiny_project, tmp_path):
    """A synthetic champion (validation ~1.0), then GTZAN-shaped data: the new model wins."""
    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=6, patience=6)
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    assert register_best(cfg, tmp_path / "split.csv", log=quiet).alias == "champion"

    gtzan = tmp_path / "gtzan"
    shutil.copytree(cfg.data.dir, gtzan)
    (gtzan / "SOURCE.json").write_text(json.dumps({"source": "gtzan", "origin": "test copy"}))
    for clip in sorted((gtzan / "metal").iterdir())[:2]:  # other clips: another data digest
        clip.unlink()
    cfg.data = replace(cfg.data, dir=str(gtzan))
    new_root = tmp_path / "new"
    new_root.mkdir()
    manifest = _prepare(cfg, new_root)
    k = all_settings(cfg.train)
    cfg.train = replace(cfg.train, max_epochs=1,
                        kinds={**k, "cnn": replace(k["cnn"], learning_rate=1e-7)})
    run = train_model(cfg, "cnn", new_root / "features", log=quiet)
    d = register_best(cfg, manifest, out=tmp_path / "register.json", log=quiet)
    assert d.alias == "champion" and d.run_id == run.run_id
    assert "other data (synthetic data" in d.reason and "never blocks" in d.reason
    # both scored on the same validation clips, for the record; the champion's does not count
    assert d.champion_val is not None and d.champion_val.n_tracks == d.candidate_val.n_tracks
    saved = json.loads((tmp_path / "register.json").read_text())
    assert saved["champion_val"]["accuracy"] == d.champion_val.accuracy
    mv = MlflowClient(cfg.tracking.uri).get_model_version_by_alias(cfg.register.model_name,
                                                                   "champion")
    assert mv.tags["data_source"] == "gtzan" and str(mv.version) == d.version


def test_register_ignores_other_data(tiny_project, tmp_path):
    cfg, feat_dir = tiny_project
    train_model(cfg, "segcnn", feat_dir, log=quiet)
    (tmp_path / "features.dvc").write_text("outs:\n- md5: 0123abcd.dir\n  path: features\n")
    cfg.data = replace(cfg.data, dir=str(tmp_path / "features"))  # another data digest
    with pytest.raises(GenreflowError, match="current data"):
        register_best(cfg, tmp_path / "split.csv", log=quiet)


def test_ranked_runs_best_first_on_this_data_and_split_only(tiny_project):
    """select's ranking: finished, non-pruned runs of this data and split, best metric first,
    ties to the lower validation loss."""
    import mlflow

    from genreflow.tracking.store import setup_mlflow

    cfg, _ = tiny_project
    setup_mlflow(cfg.tracking, cfg.train.experiment)
    ids = {}
    base = {"data_digest": "d1", "split_digest": "s1"}
    for name, acc, loss, extra in [("older-better-loss", 0.9, 0.3, {}), ("newer", 0.9, 0.5, {}),
                                   ("pruned", 0.95, 0.1, {"trial_state": "pruned"}),
                                   ("other-data", 0.99, 0.1, {"data_digest": "other"}),
                                   ("other-split", 0.99, 0.1, {"split_digest": "s2"}),
                                   ("worse", 0.8, 0.05, {})]:
        with mlflow.start_run(run_name=name, tags={**base, **extra}) as run:
            mlflow.log_metrics({"val_track_accuracy": acc, "val_track_loss": loss})
        ids[name] = run.info.run_id
    ranked = ranked_runs(cfg.register.metric, "d1", "s1", [cfg.train.experiment])
    assert ranked[0].info.run_id == ids["older-better-loss"]
    assert [r.info.run_id for r in ranked] == [ids["older-better-loss"], ids["newer"],
                                               ids["worse"]]
    with pytest.raises(GenreflowError, match="no finished run with metric 'val_track_accuracy' "
                                             "on the current data"):
        ranked_runs(cfg.register.metric, "d1", "s3", [cfg.train.experiment])
    with pytest.raises(GenreflowError, match="no MLflow experiment among"):
        ranked_runs(cfg.register.metric, "d1", "s1", ["nobody-trained-here"])


def _registry(cfg, tmp_path, versions: list[dict], champion: int | None = None):
    """A registry in tmp_path with one version per tag set (a folder as each one's model)."""
    from genreflow.tracking.store import setup_mlflow

    setup_mlflow(cfg.tracking, cfg.train.experiment)
    client, name = MlflowClient(), cfg.register.model_name
    client.create_registered_model(name)
    for i, tags in enumerate(versions, 1):
        (tmp_path / f"v{i}").mkdir()
        client.create_model_version(name, source=str(tmp_path / f"v{i}"), tags=tags)
    if champion is not None:
        client.set_registered_model_alias(name, "champion", str(champion))
    return client, name


def test_decide_alias_applies_the_rule_against_whoever_holds_the_alias_now(tiny_project,
                                                                          tmp_path):
    cfg, _ = tiny_project
    ident = {"data_digest": "d1", "split_digest": "s1", "classes": "a,b"}
    metric = cfg.register.metric
    client, name = _registry(cfg, tmp_path, [
        {**ident, metric: "0.5", "val_track_loss": "0.9"},          # v1: scored here below
        {**ident, metric: "0.95", "val_track_loss": "0.1"},         # v2: better, recorded
        {**ident},                                                   # v3: records no score
        {**ident, "data_digest": "d0", metric: "1.0"},               # v4: other data
        {**ident, metric: "0.75", "val_track_n": "100",              # v5: its hits recorded
         "val_track_hits": "1" * 75 + "0" * 25}], champion=1)
    ours = Score(0.8, 0.4, 100)  # no per-track outcomes: compared unpaired
    v1 = current_champion(client, name)
    found = Champion(v1, score=Score(0.5, 0.9, 100))
    logs = []
    same = decide_alias(client, name, metric, ours, found, "r", ident, logs.append)
    assert (same.alias, same.champion.number, logs) == ("champion", "1", [])
    assert same.reason == decide(ours, found.score).reason and "beats the champion's 0.5000" in \
        same.reason
    assert same.basis == "unpaired bootstrap" and same.gain.lo > 0
    # a mismatch (found while scoring) decides, whatever the scores
    blocked = decide_alias(client, name, metric, Score(0.1, 2.0, 10),
                           Champion(v1, score=Score(0.9, 0.1, 10), mismatch="other classes"),
                           "r", ident, logs.append)
    assert (blocked.alias, blocked.reason) == ("champion", "other classes")
    # the candidate's own version holds the alias: nothing to compare
    already = decide_alias(client, name, metric, ours, Champion(v1, score=ours, already=True),
                           "r", ident, logs.append)
    assert already.alias == "champion" and "run r is already the champion (version 1)" in \
        already.reason
    # another `register` moved the alias while this one scored v1: v2's recorded scores decide
    for moved_to, alias, why in [("2", "challenger", "does not beat the champion's 0.9500"),
                                 ("3", "champion", f"version 3 records no {metric}"),
                                 ("4", "champion", "other data (digest d0; now d1)")]:
        client.set_registered_model_alias(name, "champion", moved_to)
        logs.clear()
        moved = decide_alias(client, name, metric, ours, found, "r", ident, logs.append)
        assert (moved.alias, moved.champion.number) == (alias, moved_to), moved.reason
        assert why in moved.reason
        assert logs == [f"the champion moved to version {moved_to} while this run was scoring: "
                        f"{moved.reason}"]
    # v5 recorded its hits over this split's validation clips: compared track by track, five
    # more right and none fewer is a gain; from the two accuracies alone it would not be
    keys = [f"clip.{i:03d}" for i in range(100)]
    paired = Score(0.8, 0.4, 100, hits={k: i < 80 for i, k in enumerate(keys)})
    client.set_registered_model_alias(name, "champion", "5")
    moved = decide_alias(client, name, metric, paired, found, "r", ident, logs.append, keys=keys)
    assert (moved.alias, moved.basis, moved.gain.n_tracks) == ("champion", "paired bootstrap", 100)
    assert moved.gain.estimate == pytest.approx(0.05) and moved.gain.lo > 0
    unpaired = decide_alias(client, name, metric, paired, found, "r", ident, logs.append)
    assert (unpaired.alias, unpaired.basis) == ("challenger", "unpaired bootstrap")


def test_publish_sets_the_alias_keeps_the_reason_and_says_who_holds_champion(tiny_project,
                                                                            tmp_path):
    cfg, _ = tiny_project
    ident = {"data_digest": "d1", "split_digest": "s1", "classes": "a,b"}
    client, name = _registry(cfg, tmp_path, [
        {**ident, "model_kind": "segcnn", "run_id": "r1", "test_track_accuracy": "0.7",
         "latency_ms_30s": "42"}], champion=1)
    held = Champion(current_champion(client, name), score=Score(0.9, 0.2, 10))
    (tmp_path / "new").mkdir()
    ours = Score(0.6, 0.8, 10)
    lost = Verdict("challenger", "validation 0.6000 does not beat", held)
    version = publish(client, name, lost, ours, existing=None, model_uri=str(tmp_path / "new"),
                      tags={**ident, "model_kind": "cnn", "run_id": "r2"})
    assert version == "2"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    new = client.get_model_version(name, "2")
    assert new.tags["run_id"] == "r2" and new.tags["classes"] == "a,b"
    assert new.tags["decision"] == ("challenger: validation 0.6000 does not beat "
                                    "(candidate 0.6000, champion 0.9000)")
    decision = Decision(version=version, alias="challenger", reason=lost.reason, run_id="r2",
                        model_kind="cnn", candidate_val=ours, champion_val=held.score,
                        test_track_accuracy=0.5, previous_champion="1", latency_ms=3.0)
    write_register_json(tmp_path / "out" / "register.json", decision, lost, name, "synthetic")
    saved = json.loads((tmp_path / "out" / "register.json").read_text())
    assert saved["version"] == "2" and saved["champion_version"] == "1"
    assert saved["champion"] == {"version": "1", "model_kind": "segcnn", "run_id": "r1",
                                 "val_track_accuracy": 0.9, "val_track_accuracy_lo": None,
                                 "val_track_accuracy_hi": None, "test_track_accuracy": 0.7,
                                 "latency_ms": 42.0}
    assert saved["model_name"] == name and saved["data_source"] == "synthetic"
    # the same version again, now the champion already: the alias stays, the reason is kept
    again = publish(client, name, Verdict("champion", "already", Champion(
        client.get_model_version(name, "2"), score=ours, already=True)), ours,
        existing=client.get_model_version(name, "2"), model_uri=None, tags={})
    assert again == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert client.get_model_version(name, "2").tags["decision"] == new.tags["decision"]
    assert len(client.search_model_versions(f"name = '{name}'")) == 2


def test_scores_come_from_raw_audio_by_genre_name(tiny_project, tmp_path):
    """score: the bundle's answers on decoded clips; a refused clip is skipped (and said), a
    genre the model does not know counts as wrong at loss -log 1e-7."""
    import numpy as np
    import pandas as pd

    cfg, feat_dir = tiny_project
    run = train_model(cfg, "segcnn", feat_dir, bundle_dir=tmp_path / "bundle", log=quiet)
    predictor = GenrePredictor.from_bundle(tmp_path / "bundle")
    rows = read_split(tmp_path / "split.csv", cfg.data.dir)
    assert set(rows.val["split"]) == {"val"} and set(rows.test["split"]) == {"test"}
    assert rows.ident["classes"] == "blues,classical,metal"
    logs = []
    val = score_on_audio(predictor, rows.val, cfg.audio, logs.append)
    assert val.accuracy == pytest.approx(run.metrics["val_track_accuracy"])
    assert val.n_tracks == len(rows.val) and not logs
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(100))
    other = pd.DataFrame({"path": [rows.val["path"].iloc[0], str(tmp_path / "bad.wav")],
                          "genre": ["jazz", "blues"]})
    odd = score_on_audio(predictor, other, cfg.audio, logs.append)
    assert (odd.accuracy, odd.n_tracks) == (0.0, 1)
    assert odd.loss == pytest.approx(-np.log(1e-7))
    assert len(logs) == 1 and logs[0].startswith(f"skipped {tmp_path / 'bad.wav'}")
    with pytest.raises(GenreflowError, match="no split manifest; run `dvc repro split`"):
        read_split(tmp_path / "nowhere.csv", cfg.data.dir)

    logs.clear()
    both = score_candidate(Candidate(None, tmp_path / "bundle", predictor, 1.0),
                           SplitRows(rows.val, rows.test, rows.ident), cfg.audio, logs.append)
    assert both[0] == val and both[1].n_tracks == len(rows.test)
    assert both[1].accuracy == pytest.approx(run.metrics["test_track_accuracy"])
    assert [m.split(":")[0] for m in logs] == ["candidate on validation from raw audio",
                                               "test track accuracy of the candidate "
                                               "(for the record)"]
