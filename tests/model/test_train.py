"""Model behaviour: every model trains on tiny data and its MLflow record is complete."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from conftest import prepare_features
from genreflow.core.errors import GenreflowError
from genreflow.serving.predictor import GenrePredictor
from genreflow.stages.evaluate import evaluate_probs
from genreflow.stages.train import train_model
from tests_helpers import all_settings  # noqa: E402

quiet = lambda m: None  # noqa: E731


# inception's tracking is the same code path as cnn's; its own training runs in the kind
# matrix (tests/model/test_kind_matrix.py) on every run of the suite, its details here in
# `make test-all` (the InceptionV3 base is the costliest of the kinds on CPU)
@pytest.mark.parametrize("model", ["cnn", pytest.param("inception", marks=pytest.mark.slow),
                                   "segcnn"])
def test_model_trains_and_is_fully_tracked(tiny_project, tmp_path: Path, model: str):
    cfg, feat_dir = tiny_project
    res = train_model(cfg, model, feat_dir, bundle_dir=tmp_path / "bundle",
                      report_dir=tmp_path / "rep", log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(res.run_id)
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert p["model.optimizer"] and p["classes"] == "blues,classical,metal"
    assert int(p["n_params"]) > 0 and p["input_shape"].startswith("32x")
    assert run.data.tags["data_source"] == "synthetic" and run.data.tags["git_commit"]
    for s in ("train", "val", "test"):
        # the logged track accuracy is the share of this split's tracks predicted right
        pred = pd.read_csv(tmp_path / "rep" / f"predictions_{s}.csv")
        assert len(pred) > 0
        right = float((pred["actual"] == pred["predicted"]).mean())
        assert run.data.metrics[f"{s}_track_accuracy"] == pytest.approx(right)
        cm = np.array(json.loads((tmp_path / "rep" / f"confusion_{s}.json").read_text())["matrix"])
        assert cm.sum() == len(pred) and np.trace(cm) / cm.sum() == pytest.approx(right)
        # cross-entropy of the true class, probabilities clipped at 1e-7
        assert 0.0 < run.data.metrics[f"{s}_track_loss"] <= -np.log(1e-7) + 1e-6
    # per-class numbers and macro-F1 beside accuracy, with bootstrap intervals over the tracks
    per_class = json.loads((tmp_path / "rep" / "per_class.json").read_text())
    report = json.loads((tmp_path / "rep" / "classification_report.json").read_text())
    m = run.data.metrics
    for s in ("train", "val", "test"):
        assert set(per_class[s]) == {"blues", "classical", "metal"}
        n_tracks = len(pd.read_csv(tmp_path / "rep" / f"predictions_{s}.csv"))
        assert sum(row["support"] for row in per_class[s].values()) == n_tracks
        f1s = [per_class[s][c]["f1"] for c in per_class[s]]
        assert m[f"{s}_macro_f1"] == pytest.approx(np.mean(f1s), abs=1e-3)
        assert report[s]["macro_f1"] == m[f"{s}_macro_f1"]
        assert m[f"{s}_track_accuracy_lo"] <= m[f"{s}_track_accuracy"] \
            <= m[f"{s}_track_accuracy_hi"]
        assert report[s]["accuracy_interval"] == [m[f"{s}_track_accuracy_lo"],
                                                  m[f"{s}_track_accuracy_hi"]]
        for c in ("blues", "classical", "metal"):
            for k in ("f1", "precision", "recall"):
                assert m[f"{s}_{k}_{c}"] == per_class[s][c][k]
    for metric in ("loss", "val_loss", "accuracy", "val_accuracy", "val_track_accuracy_epoch"):
        assert len(client.get_metric_history(res.run_id, metric)) == 2  # one point per epoch
    names = {a.path for a in client.list_artifacts(res.run_id, "reports")}
    for f in ("learning_curves.png", "confusion_test.png", "confusion_val.json",
              "confusion_train.json", "classification_report.json", "history.csv",
              "per_class.json"):
        assert f"reports/{f}" in names
    assert run.inputs.dataset_inputs[0].dataset.name == "gtzan-synthetic"

    import mlflow.keras

    assert run.data.tags["keras_model_uri"].startswith("models:/")
    keras_model = mlflow.keras.load_model(run.data.tags["keras_model_uri"])
    logged = mlflow.get_logged_model(run.data.tags["keras_model_uri"].split("/")[-1])
    assert logged.name == f"{model}-synthetic"  # kind and data source, told apart in the UI
    final = {m.key: m.value for m in logged.metrics}  # the final numbers, not epoch 1's
    assert final["val_track_accuracy"] == run.data.metrics["val_track_accuracy"]
    assert final["best_epoch"] == res.metrics["best_epoch"]
    pred = GenrePredictor.from_bundle(tmp_path / "bundle")
    x = np.zeros((1, *keras_model.input_shape[1:]), np.float32)
    assert np.allclose(keras_model.predict(x, verbose=0), pred.model.predict(x, verbose=0),
                       atol=1e-5)
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())  # dvc metrics show
    assert set(metrics) == {"train_track_accuracy", "val_track_accuracy", "test_track_accuracy",
                            "val_track_accuracy_lo", "val_track_accuracy_hi",
                            "test_track_accuracy_lo", "test_track_accuracy_hi", "val_macro_f1",
                            "test_macro_f1", "val_track_loss", "epochs", "best_epoch",
                            "data_source"}
    details = json.loads((tmp_path / "rep" / "run.json").read_text())
    assert details["run_id"] == res.run_id and details["data_source"] == "synthetic"


def test_bad_parameter_ends_failed_with_reason(tiny_project):
    cfg, feat_dir = tiny_project
    k = all_settings(cfg.train)
    cfg.train = replace(cfg.train, kinds={**k, "cnn": replace(k["cnn"], filters=[0])})
    with pytest.raises(ValueError) as exc:  # Keras: a Conv2D with 0 filters
        train_model(cfg, "cnn", feat_dir, log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    exp = client.get_experiment_by_name("test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    # the run's error tag is the exception that escaped, type and message
    assert runs[0].data.tags["error"] == f"{type(exc.value).__name__}: {exc.value}"[:4000]


def test_interrupted_run_ends_killed_and_leaves_others(tiny_project):
    cfg, feat_dir = tiny_project
    first = train_model(cfg, "segcnn", feat_dir, log=quiet)

    def interrupt(epoch, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, "segcnn", feat_dir, callbacks=[interrupt], log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    status = {r.info.run_id: r.info.status for r in runs}
    assert status[first.run_id] == "FINISHED"
    assert sorted(status.values()) == ["FINISHED", "KILLED"]


def test_pruning_is_a_type_not_a_name(tiny_project):
    """A callback raising genreflow's TrialPruned ends the run early and FINISHED, tagged
    pruned; another exception that merely shares the name is a failure like any other."""
    from genreflow.core.errors import TrialPruned

    class TrialPrunedElsewhere(Exception):
        pass

    TrialPrunedElsewhere.__name__ = "TrialPruned"
    cfg, feat_dir = tiny_project
    for raised in (TrialPruned("epoch 0: too low"), TrialPrunedElsewhere("not ours")):
        def stop(epoch, logs, raised=raised):
            raise raised

        with pytest.raises(type(raised)):
            train_model(cfg, "segcnn", feat_dir, callbacks=[stop], log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [(r.info.status, r.data.tags.get("trial_state"), r.data.tags.get("error"))
            for r in runs] == [("FINISHED", "pruned", None),
                               ("FAILED", None, "TrialPruned: not ours")]
    assert not any(k.endswith("_track_accuracy") for k in runs[0].data.metrics)


def test_inception_imagenet_offline_says_how_to_supply(tiny_project, monkeypatch, tmp_path):
    import socket

    from keras.src.applications import inception_v3

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(inception_v3, "WEIGHTS_PATH_NO_TOP", f"http://127.0.0.1:{port}/w.h5")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cfg, feat_dir = tiny_project
    k = all_settings(cfg.train)
    cfg.train = replace(cfg.train, kinds={**k, "inception": replace(k["inception"],
                                                                  weights="imagenet")})
    with pytest.raises(GenreflowError, match="train.inception.weights"):
        train_model(cfg, "inception", feat_dir, log=quiet)
    cfg.train = replace(cfg.train, kinds={**k, "inception": replace(
        k["inception"], weights=str(tmp_path / "nope.h5"))})
    with pytest.raises(GenreflowError, match="does not exist"):
        train_model(cfg, "inception", feat_dir, log=quiet)


@pytest.mark.slow  # InceptionV3 on CPU: `make test-all` (see above)
def test_inception_local_weights_file(tiny_project, tmp_path):
    import keras

    cfg, feat_dir = tiny_project
    base = keras.applications.InceptionV3(include_top=False, weights=None,
                                          input_shape=(75, 75, 3), pooling="avg")
    path = tmp_path / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _legacy_h5(base, path)  # the format of Keras' published notop file
    k = all_settings(cfg.train)
    cfg.train = replace(cfg.train, kinds={**k, "inception": replace(k["inception"],
                                                                  weights=str(path))})
    res = train_model(cfg, "inception", feat_dir, log=quiet)
    assert res.metrics["epochs"] == 2


def _legacy_h5(model, path: Path) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_same_seed_same_metrics(tiny_project):
    cfg, feat_dir = tiny_project
    a = train_model(cfg, "cnn", feat_dir, log=quiet).metrics
    b = train_model(cfg, "cnn", feat_dir, log=quiet).metrics
    assert abs(a["val_track_loss"] - b["val_track_loss"]) < 1e-3


def test_evaluate_probs_confusion_and_report():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    ev = evaluate_probs(probs, np.array([0, 1, 1]), ["a", "b"])
    assert ev["confusion_matrix"] == [[1, 0], [1, 1]]
    assert ev["accuracy"] == pytest.approx(2 / 3)
    assert ev["per_genre_accuracy"] == {"a": 1.0, "b": 0.5}
    assert ev["report"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert ev["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    lo, hi = ev["accuracy_interval"]
    assert lo <= 2 / 3 <= hi and ev == evaluate_probs(probs, np.array([0, 1, 1]), ["a", "b"])


def test_random_crops_are_seeded_labelled_and_redrawn_each_epoch():
    from genreflow.models.layers import RandomCrops

    x = np.stack([np.tile(np.arange(50, dtype=np.float16) + 100 * i, (4, 1)) for i in range(3)])
    y = np.array([0, 1, 2])
    a = RandomCrops(x, y, width=10, per_clip=4, batch_size=5, seed=1)
    assert len(a) == 3  # 12 crops in batches of 5
    xb, yb = a[0]
    assert xb.shape == (5, 4, 10, 1) and xb.dtype == np.float32
    for crop, label in zip(xb[..., 0], yb, strict=True):
        start = crop[0, 0] - 100 * label  # every crop comes from its own clip, contiguous
        assert 0 <= start <= 40 and np.array_equal(crop[0], np.arange(10) + 100 * label + start)
    b = RandomCrops(x, y, width=10, per_clip=4, batch_size=5, seed=1)
    assert np.array_equal(b[0][0], xb)  # same seed, same crops
    first = np.concatenate([a[i][0] for i in range(len(a))])
    a.on_epoch_end()
    second = np.concatenate([a[i][0] for i in range(len(a))])
    assert not np.array_equal(first, second)  # new windows every epoch
    with pytest.raises(GenreflowError, match="shorter than a 60-frame segment"):
        RandomCrops(x, y, width=60, per_clip=1, batch_size=5, seed=1)


def test_segcnn_without_crops_and_lr_plateau(tiny_project):
    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=3, patience=3, min_delta=10.0)  # no epoch improves
    res = train_model(cfg, "segcnn", feat_dir, overrides={"crops_per_clip": 0, "band_limit": 0.0,
                                                         "lr_plateau": 1},
                      log=quiet)
    lrs = [m.value for m in MlflowClient(cfg.tracking.uri).get_metric_history(
        res.run_id, "learning_rate")]
    assert len(lrs) == 3 and lrs[-1] < lrs[0]  # the plateau callback cut the rate


@pytest.mark.parametrize("field,value", [("crops_per_clip", -1), ("lr_plateau", 1.5),
                                         ("dropout", 1.0)])
def test_model_config_rejects_bad_values(field, value):
    from genreflow.core.config import ConfigError
    from genreflow.kinds.segcnn.kind import SegCnnConfig

    with pytest.raises(ConfigError, match=field):
        SegCnnConfig(**{field: value})


def test_crops_for_a_whole_clip_model_is_refused_and_run_failed(tiny_project):
    from genreflow.core.config import ConfigError

    cfg, feat_dir = tiny_project
    with pytest.raises(ConfigError, match=r"train\.cnn: \['crops_per_clip'\] are not settings"):
        train_model(cfg, "cnn", feat_dir, overrides={"crops_per_clip": 2}, log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert run.info.status == "FAILED" and "crops_per_clip" in run.data.tags["error"]


def test_band_limit_sets_high_bands_to_the_floor_and_is_seeded():
    from genreflow.models.layers import BandLimit, RandomCrops

    hz = np.array([100.0, 1000.0, 5000.0, 9000.0])
    floor = np.array([-1.0, -2.0, -3.0, -4.0], np.float32)
    x = np.ones((3, 4, 50), np.float32)
    crops = RandomCrops(x, np.array([0, 1, 2]), width=10, per_clip=20, batch_size=60, seed=3,
                        band_limit=BandLimit(hz, floor, p=0.5, rates=(8000, 16000)))
    xb = crops[0][0][..., 0]
    cut = np.isfinite(crops.cutoff)  # the crops that were low-passed
    assert 10 < cut.sum() < 50  # about half of the 60 crops
    assert np.all(xb[cut, 3, :] == -4.0) and np.all(xb[~cut] == 1.0)  # 9 kHz band: floor
    assert np.all(xb[:, :2, :] == 1.0)  # bands under 3.6 kHz are never cut
    again = RandomCrops(x, np.array([0, 1, 2]), width=10, per_clip=20, batch_size=60, seed=3,
                        band_limit=BandLimit(hz, floor, p=0.5, rates=(8000, 16000)))
    assert np.array_equal(again[0][0], crops[0][0])


def test_a_share_of_crops_comes_from_the_mp3_copies():
    from genreflow.models.layers import RandomCrops

    x, copies = np.zeros((3, 4, 50), np.float32), np.ones((3, 4, 50), np.float32)
    y = np.array([0, 1, 2])
    half = RandomCrops(x, y, width=10, per_clip=20, batch_size=60, seed=3, alt=(copies, 0.3))
    xb, yb = half[0]
    from_copy = xb[..., 0].mean(axis=(1, 2)) == 1.0
    assert np.array_equal(from_copy, half.from_alt) and 8 < from_copy.sum() < 30
    assert np.array_equal(yb, y[half.clip])  # labels follow the clip either way
    plain = RandomCrops(x, y, width=10, per_clip=20, batch_size=60, seed=3)
    assert np.array_equal(plain.start, half.start)  # the copies do not move the crops
    with pytest.raises(GenreflowError, match="do not match"):
        RandomCrops(x, y, width=10, per_clip=1, batch_size=5, seed=1, alt=(copies[:2], 0.5))


def test_segcnn_trains_on_mp3_copies_and_refuses_features_without_them(tiny_project, tmp_path):
    from genreflow.core.config import ConfigError
    from genreflow.kinds import get_kind, settings
    from genreflow.kinds.base import TrainContext

    cfg, bare = tiny_project  # the defaults: no MP3 copies
    cfg.features = replace(cfg.features, mp3_copies=True)
    feat_dir = prepare_features(cfg, tmp_path / "with-mp3")
    kind = get_kind("segcnn")
    ctx = TrainContext(cfg=cfg, features_dir=feat_dir, seed=0, batch_size=8)
    mcfg = settings(cfg.train, "segcnn", {"mp3": 0.5})
    train, _ = kind.fit_data(ctx, mcfg, kind.front_end_of(ctx.features, mcfg))
    assert train["x"].alt[0] is ctx.features.splits["train"].mp3
    res = train_model(cfg, "segcnn", feat_dir, overrides={"mp3": 0.5}, log=quiet)
    run = MlflowClient(cfg.tracking.uri).get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.mp3"] == "0.5"
    cfg.features = replace(cfg.features, mp3_copies=False)
    with pytest.raises(ConfigError, match=r"mp3: 0\.5 needs MP3 copies.*features\.mp3_copies"):
        train_model(cfg, "segcnn", bare, overrides={"mp3": 0.5}, log=quiet)
    client = MlflowClient(cfg.tracking.uri)
    failed = [r for r in client.search_runs([client.get_experiment_by_name("test").experiment_id])
              if r.info.status == "FAILED"]
    assert len(failed) == 1 and "features.mp3_copies" in failed[0].data.tags["error"]
    cfg.features = replace(cfg.features, mp3_copies=True)  # params say copies, features lack them
    bare_ctx = TrainContext(cfg=cfg, features_dir=bare, seed=0, batch_size=8)
    with pytest.raises(ConfigError, match=r"mp3: 0\.5 needs MP3 copies.*dvc repro features"):
        kind.fit_data(bare_ctx, mcfg, kind.front_end_of(bare_ctx.features, mcfg))
    cfg.features = replace(cfg.features, mp3_copies=False)
    train_model(cfg, "segcnn", bare, overrides={"mp3": 0.0}, log=quiet)  # off: trains


def test_whole_clip_cnn_trains_on_band_limited_clips(tiny_project):
    from genreflow.kinds import get_kind, settings
    from genreflow.kinds.base import TrainContext

    cfg, feat_dir = tiny_project
    ctx = TrainContext(cfg=cfg, features_dir=feat_dir, seed=0, batch_size=64)
    kind = get_kind("cnn")
    mcfg = settings(cfg.train, "cnn", {"band_limit": 1.0})
    train, _ = kind.fit_data(ctx, mcfg, kind.front_end_of(ctx.features, mcfg))
    x, y = train["x"][0]
    clips = ctx.features.splits["train"]
    assert x.shape == (*clips.x.shape, 1)  # whole clips, every one low-passed
    top = x[:, -1, :, 0]  # the highest mel band lies above every cutoff
    assert np.allclose(top, top[:, :1]) and not np.allclose(x[..., 0], clips.x[train["x"].clip])
    mcfg = settings(cfg.train, "cnn", {"band_limit": 0.0})
    plain, _ = kind.fit_data(ctx, mcfg, kind.front_end_of(ctx.features, mcfg))
    assert np.array_equal(plain["x"][..., 0], clips.x)
    res = train_model(cfg, "cnn", feat_dir, overrides={"band_limit": 0.5}, log=quiet)
    run = MlflowClient(cfg.tracking.uri).get_run(res.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model.band_limit"] == "0.5"


@pytest.mark.slow  # InceptionV3 on CPU: `make test-all` (see above)
def test_inception_trains_on_extra_low_passed_copies(tiny_project):
    from genreflow.kinds import settings
    from genreflow.kinds.base import TrainContext
    from genreflow.kinds.inception.embed import low_passed_copies

    cfg, feat_dir = tiny_project
    ctx = TrainContext(cfg=cfg, features_dir=feat_dir, seed=0, batch_size=32)
    clips = ctx.features.splits["train"]
    half = settings(cfg.train, "inception", {"band_limit": 0.5})
    copies, labels = low_passed_copies(ctx, half)
    assert 0 < len(copies) < len(clips.x) and len(labels) == len(copies)
    assert np.allclose(copies[:, -1, :], copies[:, -1, :1])  # top band at the floor
    assert np.array_equal(copies, low_passed_copies(ctx, half)[0])  # seeded
    none = settings(cfg.train, "inception", {"band_limit": 0.0})
    assert len(low_passed_copies(ctx, none)[0]) == 0
    cfg.train = replace(cfg.train, max_epochs=1)
    res = train_model(cfg, "inception", feat_dir, overrides={"band_limit": 0.5}, log=quiet)
    assert res.metrics["epochs"] == 1


@pytest.mark.slow  # InceptionV3 on CPU: `make test-all` (see above)
def test_inception_narrow_band_clips_are_read_by_their_own_top(tiny_project, tmp_path):
    """An 8 kHz recording goes to the narrow-band top, a full-band clip to the other, in the
    saved servable; the flag layer and its numpy twin agree."""
    from genreflow.audio.decode import resample
    from genreflow.kinds.logmel_band import BandRouter

    cfg, feat_dir = tiny_project
    cfg.train = replace(cfg.train, max_epochs=1)
    train_model(cfg, "inception", feat_dir, bundle_dir=tmp_path / "bundle", log=quiet)
    plain = GenrePredictor.from_bundle(tmp_path / "bundle")
    assert plain.front_end.narrow_band is True
    rate = plain.sample_rate
    rng = np.random.default_rng(0)
    t = np.arange(6 * rate) / rate
    full = (0.1 * rng.standard_normal(len(t)) + np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    narrow = resample(resample(full, rate, 8000), 8000, rate)  # an 8 kHz recording
    from genreflow.models.featurestore import load_features

    router = BandRouter.of(load_features(feat_dir))
    flag_layer = plain.model.get_layer("narrow_band")
    for y, flag in ((full, 0.0), (narrow, 1.0)):
        x = plain.kind.audio_windows(y, plain.front_end)
        assert (router.flags(x[..., 0]) == flag).all()
        assert (np.asarray(flag_layer(x)) == flag).all()

    n = len(plain.classes)
    # a second copy (the first one's compiled graph holds its weights)
    cut = GenrePredictor.from_bundle(tmp_path / "bundle")
    genre = cut.model.get_layer("inception_top").get_layer("genre")
    kernel = genre.get_weights()[0]  # rows: full-band units, narrow-band units, 2 biases
    d = (kernel.shape[0] - 2) // 2
    kernel[d:2 * d] = 0
    kernel[-1] = 0
    genre.set_weights([kernel])  # the narrow-band top now answers "no idea"
    np.testing.assert_allclose(cut.probs_from_audio(full), plain.probs_from_audio(full), atol=1e-4)
    np.testing.assert_allclose(cut.probs_from_audio(narrow), np.full(n, 1 / n), atol=1e-6)
    assert not np.allclose(plain.probs_from_audio(narrow), 1 / n, atol=1e-3)
