"""Tests for genreflow.stages.figures (per-clip figures 1-5) and genreflow.stages.plots (run
charts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genreflow.audio.decode import Clip
from genreflow.core.config import ConfigError, FeaturesConfig, FiguresConfig
from genreflow.core.errors import DataError
from genreflow.stages.figures import FIGURE_KINDS, choose_clips, draw_clip_figures, make_figures
from genreflow.stages.plots import plot_class_counts, plot_confusion_matrix, plot_learning_curves

SR = 22050
GENRES = ("blues", "jazz", "rock")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.exists(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 genres x 2 clips (00001, 00002) of 3 s sine + noise; blues.00000 is corrupt."""
    root = tmp_path_factory.mktemp("figs") / "data"
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    for g, genre in enumerate(GENRES):
        (root / genre).mkdir(parents=True)
        for i in (1, 2):
            f0 = 110.0 * (g + 1) * i
            y = 0.4 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
            sf.write(root / genre / f"{genre}.{i:05d}.wav", y.astype(np.float32), SR)
    (root / "blues" / "blues.00000.wav").write_bytes(rng.bytes(4000))
    (root / "SOURCE.json").write_text(json.dumps({"source": "synthetic"}))
    return root


def feat(workers: int = 1) -> FeaturesConfig:
    return FeaturesConfig(workers=workers)


def test_choose_auto_one_per_genre(data_dir: Path) -> None:
    clips = choose_clips(data_dir, "auto")
    assert [c.clip_id for c in clips] == ["blues.00000", "jazz.00001", "rock.00001"]
    assert all(isinstance(c, Clip) for c in clips)


def test_choose_auto_respects_valid_ids(data_dir: Path) -> None:
    valid = {"blues.00002", "jazz.00001", "jazz.00002"}
    assert [c.clip_id for c in choose_clips(data_dir, "auto", valid)] == [
        "blues.00002", "jazz.00001"]
    with pytest.raises(DataError, match="no valid clips"):
        choose_clips(data_dir, "auto", set())


def test_choose_explicit_list_and_string(data_dir: Path) -> None:
    ids = ["rock.00002", "blues.00001"]
    assert [c.clip_id for c in choose_clips(data_dir, ids)] == ids
    assert [c.clip_id for c in choose_clips(data_dir, "rock.00002, blues.00001")] == ids


def test_choose_unknown_id_raises(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"pop\.00042") as err:
        choose_clips(data_dir, ["blues.00001", "pop.00042"])
    message = str(err.value)
    assert "blues.00000" in message.split("available")[1]  # lists some available ids
    assert "pop.00042" in message.split("available")[0]


def test_draw_clip_figures_writes_five_pngs(data_dir: Path, tmp_path: Path) -> None:
    clip = choose_clips(data_dir, ["jazz.00002"])[0]
    paths = draw_clip_figures(clip, tmp_path / "out", feat(), dpi=60, source_label="synthetic")
    assert [p.name for p in paths] == [f"jazz.00002_{k}.png" for k in FIGURE_KINDS]
    for p in paths:
        assert_png(p)


def test_make_figures_auto_skips_corrupt_and_clears_old(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    out.mkdir()
    (out / "stale_waveform.png").write_bytes(b"old")
    (out / "keep.txt").write_text("not a png")
    logs: list[str] = []
    # no valid_ids: "auto" tries the corrupt blues.00000 first, then falls back to blues.00001
    paths = make_figures(data_dir, out, feat(workers=2), FiguresConfig(clips="auto", dpi=60),
                         log=logs.append)
    assert not (out / "stale_waveform.png").exists()
    assert (out / "keep.txt").exists()
    assert len(logs) == 1 and "skipped blues.00000" in logs[0], logs
    drawn = sorted({p.name.split("_", 1)[0] for p in paths})
    assert drawn == ["blues.00001", "jazz.00001", "rock.00001"]
    assert len(paths) == 3 * len(FIGURE_KINDS)
    for p in paths:
        assert_png(p)
    assert sorted(out.glob("*.png")) == sorted(paths)


def test_make_figures_explicit_corrupt_clip_skipped(data_dir: Path, tmp_path: Path) -> None:
    logs: list[str] = []
    paths = make_figures(data_dir, tmp_path, feat(),
                         FiguresConfig(clips=["blues.00000", "rock.00002"], dpi=60),
                         log=logs.append)
    assert [p.name for p in paths] == [f"rock.00002_{k}.png" for k in FIGURE_KINDS]
    assert len(logs) == 1 and "blues.00000" in logs[0]


def test_make_figures_auto_valid_ids_exclude_corrupt(data_dir: Path, tmp_path: Path) -> None:
    logs: list[str] = []
    valid = {"blues.00002", "jazz.00002"}
    paths = make_figures(data_dir, tmp_path, feat(), FiguresConfig(dpi=60), valid_ids=valid,
                         log=logs.append)
    assert sorted({p.name.split("_", 1)[0] for p in paths}) == ["blues.00002", "jazz.00002"]
    assert logs == []


def test_make_figures_unknown_id(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metal\.00000"):
        make_figures(data_dir, tmp_path, feat(), FiguresConfig(clips=["metal.00000"]))


def test_plot_confusion_matrix(tmp_path: Path) -> None:
    cm = np.array([[8, 1, 1], [0, 9, 1], [2, 0, 0]])
    path = plot_confusion_matrix(cm, list(GENRES), "test confusion", tmp_path / "a" / "cm.png")
    assert_png(path)
    with pytest.raises(ValueError):
        plot_confusion_matrix(cm, ["a", "b"], "bad", tmp_path / "bad.png")


def test_plot_learning_curves(tmp_path: Path) -> None:
    history = {"loss": [2.0, 1.5, 1.1, 0.9], "val_loss": [2.1, 1.6, 1.4, 1.5],
               "accuracy": [0.2, 0.4, 0.6, 0.7], "val_accuracy": [0.2, 0.35, 0.5, 0.45]}
    assert_png(plot_learning_curves(history, "test curves", tmp_path / "curves.png"))
    # partial histories (no validation, no accuracy) still draw
    assert_png(plot_learning_curves({"loss": [1.0, 0.5]}, "loss only", tmp_path / "loss.png"))


def test_plot_class_counts(tmp_path: Path) -> None:
    splits = pd.DataFrame({"train": [80, 79, 80], "val": [9, 9, 9], "test": [10, 10, 10]},
                          index=pd.Index(list(GENRES), name="genre"))
    assert_png(plot_class_counts(splits, "split sizes", tmp_path / "splits.png"))
    single = pd.DataFrame({"genre": list(GENRES), "usable clips": [100, 99, 100]})
    assert_png(plot_class_counts(single, "usable clips", tmp_path / "single.png"))
