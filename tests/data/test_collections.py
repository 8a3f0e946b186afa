"""Any labelled collection: label folders at any depth, manifests with groups and splits,
label rules, and every refusal of `data get` for them (small real audio in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import write_tone
from genreflow.audio.decode import SOURCE_FILE
from genreflow.cli import app
from genreflow.core.config import AudioConfig, ConfigError, DataConfig, ValidateConfig
from genreflow.core.errors import DataError
from genreflow.core.labels import check_label, check_labels, resolve_labels
from genreflow.core.safe_text import file_stem
from genreflow.data import get_data, prepare_default
from genreflow.data.collection import discover
from genreflow.stages.figures import choose_clips
from genreflow.stages.validate import summary, validate_dataset
from tests_helpers import Logs

CONTRACT = AudioConfig(min_seconds=1.0)
quiet = lambda m: None  # noqa: E731

ODD = ["01 Song (Live).flac", "Ärger.im.Büro.wav", "[bonus] track.ogg", "a.b.c.wav"]


def tone(path: Path, i: int = 0) -> Path:
    return write_tone(path, seconds=1.2, sr=8000, freq=220.0 + 40 * i, seed=i)


def library(root: Path) -> Path:
    """Two labels, tracks nested <label>/<artist>/<album>/<track> with odd but legal names."""
    for i, name in enumerate(ODD):
        tone(root / "rock" / "Some Artist" / "First Album" / name, i)
    tone(root / "rock" / "loose track.wav", 9)
    for i in range(3):
        tone(root / "jazz" / f"Trio {i}" / f"take {i}.wav", 10 + i)
    (root / "rock" / "Some Artist" / "First Album" / "cover.jpg").write_bytes(b"jpeg")
    (root / "jazz" / ".hidden.wav").write_bytes(b"not looked at")
    tone(root / "jazz" / "Trio 0" / "take 0.flac", 20)  # same id in another format
    return root


def test_folder_source_deep_and_odd_names_staged_and_validated(tmp_path: Path):
    outside = tone(tmp_path / "elsewhere" / "secret.wav")
    src = library(tmp_path / "my library")
    os.symlink(outside, src / "rock" / "link out.wav")
    dest = tmp_path / "proj" / "data"
    log = Logs()

    info = get_data(str(src), dest, log=log)

    assert info == {"source": "folder", "origin": str(src), "n_clips": 8,
                    "genres": {"jazz": 3, "rock": 5}}
    assert json.loads((dest / SOURCE_FILE).read_text()) == info
    assert (dest / "rock" / "Some Artist" / "First Album" / "Ärger.im.Büro.wav").is_file()
    assert not (dest / "rock" / "link out.wav").exists()
    assert (dest / "jazz" / "Trio 0" / "take 0.wav").is_file()  # wav is preferred to flac
    assert not (dest / "jazz" / "Trio 0" / "take 0.flac").exists()
    assert "cover.jpg" in log.text and "duplicate" in log.text and "link" in log.text

    report = validate_dataset(DataConfig(dir=str(dest)), ValidateConfig(), workers=1,
                              log=quiet, audio=CONTRACT)
    ids = {r["clip_id"] for r in report["clips"]}
    assert "rock/Some Artist/First Album/01 Song (Live)" in ids
    assert "rock/Some Artist/First Album/a.b.c" in ids and "jazz/Trio 1/take 1" in ids
    assert report["n_ok"] == 8 and report["missing"] == []
    assert all(r["group"] is None and r["split"] is None for r in report["clips"])
    assert summary(report)["ok_per_label"] == {"jazz": 3, "rock": 5}

    # the figures of such ids get safe, distinct file names; auto takes one clip per label
    chosen = choose_clips(dest, "auto", ids)
    assert [c.genre for c in chosen] == ["jazz", "rock"]
    stems = {file_stem(i) for i in ids}
    assert len(stems) == len(ids)
    assert all(s.replace("-", "").replace("_", "").replace(".", "").isalnum() for s in stems)
    assert file_stem("blues.00000") == "blues.00000"

    # staged again over itself: the folder is genreflow's; a user's addition is not
    get_data(str(src), dest, log=Logs())
    tone(dest / "rock" / "Some Artist" / "mine.wav")
    with pytest.raises(DataError, match="genreflow did not write"):
        get_data(str(src), dest, log=Logs())
    assert (dest / "rock" / "Some Artist" / "mine.wav").is_file()


def test_folder_source_found_a_few_folders_down_in_an_archive(tmp_path: Path):
    import shutil

    library(tmp_path / "export" / "Music")
    archive = shutil.make_archive(str(tmp_path / "music"), "gztar", tmp_path / "export")
    info = get_data(archive, tmp_path / "data", log=Logs())
    assert info["source"] == "folder" and info["genres"] == {"jazz": 3, "rock": 5}


def test_labels_that_differ_only_in_case_or_are_invalid_are_refused(tmp_path: Path):
    tone(tmp_path / "a" / "Rock" / "x.wav")
    tone(tmp_path / "a" / "rock" / "y.wav")
    with pytest.raises(DataError, match="'Rock' and 'rock' differ only in case"):
        get_data(str(tmp_path / "a"), tmp_path / "data", log=Logs())
    tone(tmp_path / "b" / "jazz" / "x.wav")
    tone(tmp_path / "b" / "dub:step" / "y.wav")
    with pytest.raises(DataError, match="'dub:step': not a valid label"):
        get_data(str(tmp_path / "b"), tmp_path / "data", log=Logs())
    assert not (tmp_path / "data").exists()

    assert check_label("Hip-Hop") is None and check_label("Drum & Bass") is not None
    assert check_label("música") is None and check_label("rock.") is not None
    assert check_label(" rock") is not None and check_label("x" * 64) is not None
    assert check_labels(["pop", "blues", "pop"]) == ["blues", "pop"]


def test_data_genres_auto_and_lists(tmp_path: Path):
    assert DataConfig().genres == "auto"
    assert resolve_labels(DataConfig(), {"rock", "Blues", "jazz"}) == ["Blues", "jazz", "rock"]
    assert resolve_labels(DataConfig(genres=["rock", "jazz"]), {"jazz"}) == ["rock", "jazz"]
    with pytest.raises(ConfigError, match="data.genres: expected 'auto'"):
        DataConfig(genres="everything")
    with pytest.raises(ConfigError, match="differ only in case"):
        DataConfig(genres=["Rock", "rock"])
    with pytest.raises(ConfigError, match="data.genres: 'a/b'"):
        DataConfig(genres=["a/b", "c"])


def manifest(folder: Path, rows: list[str], header: str = "path,label,group,split",
             name: str = "catalogue.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def catalogue(root: Path) -> list[str]:
    """Six files in one flat folder; labels and artists only in the manifest."""
    rows = []
    for i in range(6):
        label, artist = ("rock", f"Band {i % 2}") if i < 4 else ("jazz", "Quartet")
        tone(root / "files" / f"{i:03d} track.wav", i)
        rows.append(f"files/{i:03d} track.wav,{label},{artist},{['train', 'val', 'test'][i % 3]}")
    return rows


def test_manifest_with_groups_and_predefined_split_staged_and_validated(tmp_path: Path):
    src = manifest(tmp_path / "cat", catalogue(tmp_path / "cat"))
    dest = tmp_path / "data"
    info = get_data(str(src), dest, log=Logs())
    assert info == {"source": "manifest", "origin": str(src), "n_clips": 6,
                    "genres": {"jazz": 2, "rock": 4}, "n_groups": 3,
                    "splits": {"test": 2, "train": 2, "val": 2}}
    index = pd.read_csv(dest / "clips.csv", keep_default_na=False)
    assert list(index.columns) == ["path", "label", "group", "split"]
    assert index["path"][0] == "rock/files/000 track.wav"
    assert (dest / "jazz" / "files" / "005 track.wav").is_file()

    report = validate_dataset(DataConfig(dir=str(dest)), ValidateConfig(), workers=1,
                              log=quiet, audio=CONTRACT)
    rec = {r["clip_id"]: r for r in report["clips"]}
    assert rec["rock/files/001 track"]["group"] == "Band 1"
    assert rec["jazz/files/005 track"]["split"] == "test"
    assert report["indexed"] is True and report["n_ok"] == 6

    # groups only (no split column), as Parquet; a leading label folder is not doubled
    tone(tmp_path / "p" / "rock" / "a.wav")
    tone(tmp_path / "p" / "pop" / "b.wav", 1)
    pq = tmp_path / "p" / "list.parquet"
    pd.DataFrame({"path": ["rock/a.wav", "pop/b.wav"], "label": ["rock", "pop"],
                  "group": ["x", "y"]}).to_parquet(pq)
    info = get_data(str(pq), dest, log=Logs())
    assert info["genres"] == {"pop": 1, "rock": 1} and info["splits"] == {}
    assert (dest / "rock" / "a.wav").is_file() and not (dest / "files").exists()
    assert [(c.clip_id, c.group) for c in discover(dest).clips] == [("pop/b", "y"), ("rock/a", "x")]


@pytest.mark.parametrize(("rows", "header", "match"), [
    (["files/000 track.wav,rock", "files/001 track.wav,rock"], "path,label,artist",
     r"line 1: unknown column\(s\) \['artist'\]"),
    (["files/000 track.wav"], "path", r"line 1: columns \['path'\]; expected each of path, label"),
    (["files/000 track.wav,rock", "files/nope.wav,rock"], "path,label",
     r"line 3: path: 'files/nope.wav': no such file"),
    (["files/000 track.wav,rock", "files/000 track.wav,rock"], "path,label",
     r"line 3: path: 'files/000 track.wav': listed twice \(first on line 2\)"),
    (["files/000 track.wav,rock", "files/000 track.wav,jazz"], "path,label",
     r"line 3: path: .*the same file under two labels \('rock' on line 2, 'jazz' here\)"),
    (["files/000 track.wav,rock", "files/001 track.wav,ro/ck"], "path,label",
     r"line 3: label: 'ro/ck': not a valid label"),
    (["files/000 track.wav,rock", "files/001 track.wav,Rock"], "path,label",
     r"line 3: label: 'Rock' and 'rock' \(line 2\) differ only in case"),
    (["files/000 track.wav,rock,dev"], "path,label,split",
     r"line 2: split: 'dev'; expected one of train, val, test"),
    ([], "path,label", "lists no audio files"),
    (["../outside.wav,rock"], "path,label", r"line 2: path: '../outside.wav' must be relative"),
    (["/etc/passwd,rock"], "path,label", r"line 2: path: '/etc/passwd' must be relative"),
    (["files\\000 track.wav,rock"], "path,label", r"line 2: path: .* uses '\\'"),
    (["files/notes.txt,rock"], "path,label", r"line 2: path: 'files/notes.txt' is not an audio"),
    (["files/000 track.wav,rock,x,y"], "path,label", r"line 2: 4 fields, the header has 2"),
])
def test_manifest_refusals_name_the_file_line_and_field(tmp_path: Path, rows, header, match):
    catalogue(tmp_path / "cat")
    (tmp_path / "cat" / "files" / "notes.txt").write_text("not audio")
    tone(tmp_path / "outside.wav")
    src = manifest(tmp_path / "cat", rows, header)
    dest = tmp_path / "proj" / "data"
    with pytest.raises(DataError, match=match) as err:
        get_data(str(src), dest, log=Logs())
    assert str(src) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in dest.parent.iterdir()) == []  # nothing staged, no temp


def test_manifest_path_through_a_link_out_of_its_folder_is_refused(tmp_path: Path):
    secret = tone(tmp_path / "private" / "secret.wav")
    catalogue(tmp_path / "cat")
    os.symlink(secret, tmp_path / "cat" / "files" / "inside.wav")
    os.symlink(tmp_path / "private", tmp_path / "cat" / "dir")
    for path in ("files/inside.wav", "dir/secret.wav"):
        src = manifest(tmp_path / "cat", ["files/000 track.wav,rock", f"{path},jazz"],
                       "path,label")
        with pytest.raises(DataError, match="leads outside the manifest's folder"):
            get_data(str(src), tmp_path / "data", log=Logs())
    assert not (tmp_path / "data").exists()


def test_a_single_label_or_no_audio_is_refused_naming_the_layouts(tmp_path: Path):
    tone(tmp_path / "one" / "rock" / "a" / "x.wav")
    (tmp_path / "one" / "jazz").mkdir()
    with pytest.raises(DataError, match="no labelled audio found; expected GTZAN.*label "
                                        "folders.*two labels or more.*manifest"):
        get_data(str(tmp_path / "one"), tmp_path / "data", log=Logs())


def test_validate_reads_a_data_index_and_refuses_a_bad_one(tmp_path: Path):
    data = tmp_path / "data"
    tone(data / "rock" / "a.wav")
    tone(data / "jazz" / "b.wav", 1)
    tone(data / "jazz" / "c.wav", 2)
    (data / "clips.csv").write_text("path,label,split\nrock/a.wav,rock,train\n"
                                    "jazz/b.wav,jazz,val\n")
    report = validate_dataset(DataConfig(dir=str(data)), ValidateConfig(), workers=1,
                              log=quiet, audio=CONTRACT)
    assert [(r["clip_id"], r["split"]) for r in report["clips"]] == [("jazz/b", "val"),
                                                                     ("rock/a", "train")]
    assert report["ignored"] == [{"path": "jazz/c.wav", "reason": "not listed in clips.csv"}]
    (data / "clips.csv").write_text("path,label,split\nrock/a.wav,rock,training\n")
    with pytest.raises(DataError, match=r"clips.csv: line 2: split: 'training'"):
        validate_dataset(DataConfig(dir=str(data)), ValidateConfig(), workers=1, log=quiet)
    (data / "clips.csv").unlink()
    (data / "rock" / "a.wav").unlink()
    for f in (data / "jazz").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no audio clips; expected .*GTZAN.*label folders.*"
                                        "clips.csv"):
        validate_dataset(DataConfig(dir=str(data)), ValidateConfig(), workers=1, log=quiet)


def test_make_repro_keeps_the_collection_data_get_brought(tmp_path: Path):
    src = library(tmp_path / "lib")
    dest = tmp_path / "data"
    info = get_data(str(src), dest, log=Logs())
    log = Logs()
    assert prepare_default(dest, gtzan_dir=None, log=log, clips_per_genre=1, seconds=1.0) == info
    assert "NO REAL GTZAN" not in log.text and "using the folder data" in log.text
    assert (dest / "rock" / "loose track.wav").is_file()


def test_cli_data_get_manifest_and_one_line_refusal(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = manifest(tmp_path / "cat", catalogue(tmp_path / "cat"))
    runner = CliRunner()
    ok = runner.invoke(app, ["data", "get", str(src), "--no-dvc"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "data" / SOURCE_FILE).read_text())["source"] == "manifest"
    bad = manifest(tmp_path / "cat", ["files/000 track.wav,rock,x"], "path,label,artist",
                   name="bad.csv")
    res = runner.invoke(app, ["data", "get", str(bad), "--dest", "other", "--no-dvc"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "error: " in res.output and "unknown column(s) ['artist']" in res.output
