"""genreflow.data: synth, prepare_default and track_with_dvc."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.audio.decode import SOURCE_FILE, decode
from genreflow.core.config import GTZAN_GENRES
from genreflow.data import DataError, prepare_default, synth, track_with_dvc
from genreflow.data.collection import find_clips
from tests_helpers import Logs


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_synth_is_byte_identical_for_same_args(tmp_path: Path) -> None:
    kw = dict(clips_per_genre=2, seconds=2.0, genres=["blues", "metal", "jazz"], seed=3)
    synth(tmp_path / "a", log=Logs(), **kw)
    synth(tmp_path / "b", log=Logs(), **kw)
    synth(tmp_path / "c", log=Logs(), **{**kw, "seed": 4})
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 7 and a == b
    assert all(a[k] != c[k] for k in a if k.endswith(".wav"))


def test_synth_shape_and_source(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    info = synth(dest, clips_per_genre=3, seconds=1.5, seed=1, log=Logs())
    clips = find_clips(dest)
    assert len(clips) == 30 == info["n_clips"]
    assert info["genres"] == {g: 3 for g in GTZAN_GENRES}
    assert {c.genre for c in clips} == set(GTZAN_GENRES)
    assert clips[0].path.name == "blues.00000.wav" and clips[-1].path.name == "rock.00002.wav"
    for c in clips:
        meta = sf.info(c.path)
        assert (meta.samplerate, meta.channels, meta.frames) == (22050, 1, int(1.5 * 22050))
        assert meta.subtype == "PCM_16" and meta.format == "WAV"
    y, _ = decode(clips[0].path)
    assert 0.25 < np.abs(y).max() <= 1.0 and np.sqrt(np.mean(y**2)) > 0.01
    on_disk = json.loads((dest / SOURCE_FILE).read_text())
    assert on_disk == info
    assert info["source"] == "synthetic" and info["origin"] == "genreflow data synth"
    assert (info["seed"], info["clips_per_genre"], info["seconds"]) == (1, 3, 1.5)


def test_synth_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        synth(tmp_path / "d", genres=["Blues"], log=Logs())
    with pytest.raises(DataError):
        synth(tmp_path / "d", genres=[f"g{chr(97 + i)}" for i in range(11)], log=Logs())
    with pytest.raises(DataError):
        synth(tmp_path / "d", clips_per_genre=0, log=Logs())
    assert not (tmp_path / "d").exists()


def _features(y: np.ndarray, sr: int) -> list[float]:
    import librosa

    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=512))
    centroid = librosa.feature.spectral_centroid(S=spec, sr=sr).mean()
    flatness = librosa.feature.spectral_flatness(S=spec).mean()
    env = librosa.onset.onset_strength(S=librosa.amplitude_to_db(spec), sr=sr)
    onset_rate = len(librosa.onset.onset_detect(onset_envelope=env, sr=sr)) / (len(y) / sr)
    zcr = librosa.feature.zero_crossing_rate(y).mean()
    return [np.log(centroid), np.log(flatness), onset_rate, zcr]


@pytest.mark.slow  # about 20 s: `make test-all`
def test_synth_classes_are_distinguishable(tmp_path: Path) -> None:
    """Four hand-made features + nearest centroid (leave-one-out) beat chance (10%) easily."""
    synth(tmp_path / "d", clips_per_genre=6, seconds=4.0, seed=7, log=Logs())
    clips = find_clips(tmp_path / "d")
    x = np.array([_features(*decode(c.path)) for c in clips])
    y = np.array([c.genre for c in clips])
    z = (x - x.mean(0)) / x.std(0)
    right = 0
    for i in range(len(y)):
        others = np.arange(len(y)) != i
        cents = {g: z[others & (y == g)].mean(0) for g in GTZAN_GENRES}
        right += min(cents, key=lambda g: np.sum((z[i] - cents[g]) ** 2)) == y[i]
    assert right / len(y) >= 0.6


# ---------------------------------------------------------------------------- prepare_default
def _gtzan_folder(root: Path) -> Path:
    t = np.arange(2000) / 8000
    for g in ("blues", "pop"):
        (root / g).mkdir(parents=True)
        sf.write(root / g / f"{g}.00000.wav", 0.2 * np.sin(2 * np.pi * 220 * t), 8000)
    return root


def test_prepare_default_uses_gtzan_dir(tmp_path: Path) -> None:
    src = _gtzan_folder(tmp_path / "gtzan")
    dest = tmp_path / "data"
    log = Logs()
    info = prepare_default(dest, gtzan_dir=str(src), log=log)
    assert info["source"] == "gtzan" and info["genres"] == {"blues": 1, "pop": 1}
    assert "SYNTHETIC" not in log.text
    stamp = (dest / "pop" / "pop.00000.wav").stat().st_mtime_ns

    log = Logs()
    assert prepare_default(dest, gtzan_dir=str(src), log=log) == info
    assert "up to date" in log.text
    assert (dest / "pop" / "pop.00000.wav").stat().st_mtime_ns == stamp

    (src / "pop" / "pop.00001.wav").write_bytes((src / "pop" / "pop.00000.wav").read_bytes())
    assert prepare_default(dest, gtzan_dir=str(src), log=Logs())["genres"]["pop"] == 2

    with pytest.raises(DataError, match="GTZAN_DIR=.*nope"):
        prepare_default(dest, gtzan_dir=str(tmp_path / "nope"), log=Logs())


def test_prepare_default_falls_back_to_synthetic_loudly(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    kw = dict(clips_per_genre=1, seconds=1.0, seed=5)
    log = Logs()
    info = prepare_default(dest, gtzan_dir=None, log=log, **kw)
    assert info["source"] == "synthetic" and info["n_clips"] == 10
    assert "NO REAL GTZAN" in log.text and "NOT a GTZAN result" in log.text
    assert "GTZAN_DIR=/path/to/gtzan make repro" in log.text
    assert "genreflow data get" in log.text
    stamp = (dest / "rock" / "rock.00000.wav").stat().st_mtime_ns

    log = Logs()
    assert prepare_default(dest, log=log, **kw) == info
    assert "up to date" in log.text and "NO REAL GTZAN" in log.text
    assert (dest / "rock" / "rock.00000.wav").stat().st_mtime_ns == stamp

    (dest / "rock" / "rock.00000.wav").unlink()  # damaged data is rewritten
    prepare_default(dest, log=Logs(), **kw)
    assert (dest / "rock" / "rock.00000.wav").exists()

    log = Logs()
    assert prepare_default(dest, log=log, **{**kw, "seed": 6})["seed"] == 6
    assert "up to date" not in log.text


# ------------------------------------------------------------------------------------- DVC
@pytest.mark.integration
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_track_with_dvc_creates_dvc_file(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    run = dict(cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], **run)
    synth(Path("data"), clips_per_genre=1, seconds=0.5, genres=["pop", "rock"], log=Logs())

    assert track_with_dvc(Path("data"), log=Logs()) is True
    dvc_file = repo / "data.dvc"
    assert dvc_file.exists() and "nfiles: 3" in dvc_file.read_text()
    assert "/data" in (repo / ".gitignore").read_text()


def test_track_with_dvc_outside_a_repo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if any((d / ".dvc").is_dir() for d in (tmp_path, *tmp_path.parents)):
        pytest.skip("tmp_path is inside a DVC repository")
    log = Logs()
    assert track_with_dvc(tmp_path / "data", log=log) is False
    assert not (tmp_path / "data.dvc").exists()
