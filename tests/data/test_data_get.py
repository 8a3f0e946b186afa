"""genreflow.data.get_data: folders, archives, URLs, and failures that leave nothing behind."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import socket
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.audio.decode import SOURCE_FILE, decode
from genreflow.data import DataError, get_data
from genreflow.data.collection import find_clips
from tests_helpers import Logs

SR = 8000


def _tone(seconds: float = 0.25, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, seconds: float = 0.25) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    y = _tone(seconds)
    if path.suffix == ".ogg":  # libsndfile may crash writing long OGG in one call
        with sf.SoundFile(path, "w", SR, 1, format="OGG", subtype="VORBIS") as f:
            for i in range(0, len(y), SR):
                f.write(y[i : i + SR])
    else:
        fmt = {".wav": "WAV", ".au": "AU", ".flac": "FLAC", ".aiff": "AIFF"}[path.suffix]
        sf.write(path, y, SR, format=fmt, subtype="PCM_16")


def make_tree(root: Path, spec: dict[str, list[str]]) -> Path:
    """``spec``: genre -> extensions; one clip per extension, numbered from 0."""
    for genre, exts in spec.items():
        for i, ext in enumerate(exts):
            _write(root / genre / f"{genre}.{i:05d}.{ext}")
    return root


def test_folder_source_copies_all_formats(tmp_path: Path) -> None:
    src = make_tree(
        tmp_path / "gtzan",
        {"blues": ["au", "wav"], "rock": ["ogg", "flac", "aiff"], "mystery": ["wav"]},
    )
    (src / "blues" / "notes.txt").write_text("not audio")
    _write(src / "blues" / "blues.0001.wav")  # 4 digits: not GTZAN naming
    _write(src / "rock" / "blues.00009.wav")  # wrong folder for its name
    for f in src.rglob("*.*"):
        f.chmod(stat.S_IRUSR)  # read-only sources must still copy to writable files
    dest = tmp_path / "proj" / "data"
    log = Logs()

    info = get_data(str(src), dest, log=log)

    assert info == {
        "source": "gtzan",
        "origin": str(src),
        "n_clips": 6,
        "genres": {"blues": 2, "mystery": 1, "rock": 3},
    }
    assert json.loads((dest / SOURCE_FILE).read_text()) == info
    clips = find_clips(dest)
    assert sorted(c.path.name for c in clips) == [
        "blues.00000.au",
        "blues.00001.wav",
        "mystery.00000.wav",
        "rock.00000.ogg",
        "rock.00001.flac",
        "rock.00002.aiff",
    ]
    for c in clips:
        assert c.path.stat().st_mode & stat.S_IWUSR
        y, sr = decode(c.path)
        assert sr == SR and abs(len(y) - 0.25 * SR) < 0.01 * SR
    assert "3 file(s)" in log.text  # the three ignored files are reported, by name
    assert "blues/notes.txt" in log.text and "rock/blues.00009.wav" in log.text
    assert "mystery" in log.text
    assert sorted(p.name for p in dest.parent.iterdir()) == ["data"]  # no temp dirs left


def test_nested_kaggle_folder(tmp_path: Path) -> None:
    top = tmp_path / "kaggle"
    make_tree(top / "Data" / "genres_original", {g: ["wav"] * 2 for g in ("jazz", "pop")})
    (top / "Data" / "images_original" / "jazz").mkdir(parents=True)
    (top / "Data" / "images_original" / "jazz" / "jazz00000.png").write_bytes(b"png")
    (top / "Data" / "features_30_sec.csv").write_text("filename,label\n")

    info = get_data(str(top), tmp_path / "data", log=Logs())

    assert info["genres"] == {"jazz": 2, "pop": 2}
    assert len(find_clips(tmp_path / "data")) == 4


def test_existing_dest_is_replaced_and_kept_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    get_data(str(make_tree(tmp_path / "a", {"metal": ["wav"]})), dest, log=Logs())
    get_data(str(make_tree(tmp_path / "b", {"disco": ["wav", "wav"]})), dest, log=Logs())
    assert [c.genre for c in find_clips(dest)] == ["disco", "disco"]

    with pytest.raises(DataError):
        get_data(str(tmp_path / "nowhere"), dest, log=Logs())
    with pytest.raises(DataError):  # a genre folder itself is not a GTZAN tree
        get_data(str(tmp_path / "a" / "metal"), dest, log=Logs())
    assert [c.genre for c in find_clips(dest)] == ["disco", "disco"]
    assert json.loads((dest / SOURCE_FILE).read_text())["origin"] == str(tmp_path / "b")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refuses_to_replace_a_folder_that_is_not_data(tmp_path: Path) -> None:
    dest = tmp_path / "project"
    dest.mkdir()
    (dest / "pyproject.toml").write_text("[project]\n")
    src = make_tree(tmp_path / "g", {"pop": ["wav"]})
    with pytest.raises(DataError, match="refusing"):
        get_data(str(src), dest, log=Logs())
    assert (dest / "pyproject.toml").exists()


def _tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _audio_bytes(ext: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(), SR, format={"au": "AU", "wav": "WAV"}[ext], subtype="PCM_16")
    return buf.getvalue()


def marsyas_tar(path: Path) -> Path:
    au = _audio_bytes("au")
    files = {f"genres/{g}/{g}.{i:05d}.au": au for g in ("blues", "classical") for i in range(3)}
    files["genres/input.mf"] = b"listing\n"
    return _tar_gz(path, files)


def test_marsyas_tar_gz(tmp_path: Path) -> None:
    archive = marsyas_tar(tmp_path / "genres.tar.gz")
    info = get_data(str(archive), tmp_path / "data", log=Logs())
    assert info["genres"] == {"blues": 3, "classical": 3}
    assert info["origin"] == str(archive)
    assert all(c.path.suffix == ".au" for c in find_clips(tmp_path / "data"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "genres.tar.gz"]


def test_kaggle_zip(tmp_path: Path) -> None:
    wav = _audio_bytes("wav")
    files = {f"Data/genres_original/{g}/{g}.{i:05d}.wav": wav for g in ("hiphop", "reggae")
             for i in range(2)}  # fmt: skip
    files["Data/images_original/hiphop/hiphop00000.png"] = b"png"
    files["Data/features_3_sec.csv"] = b"a,b\n"
    archive = _zip(tmp_path / "archive.zip", files)
    info = get_data(str(archive), tmp_path / "data", log=Logs())
    assert info["genres"] == {"hiphop": 2, "reggae": 2}
    y, _ = decode(tmp_path / "data" / "reggae" / "reggae.00001.wav")
    assert len(y) == len(_tone())


@pytest.mark.parametrize("maker", [_tar_gz, _zip], ids=["tar", "zip"])
@pytest.mark.parametrize("evil", ["../evil.wav", "/tmp/evil.wav", "genres/../../evil.wav"])
def test_path_traversal_is_rejected(tmp_path: Path, maker, evil: str) -> None:
    wav = _audio_bytes("wav")
    suffix = ".tar.gz" if maker is _tar_gz else ".zip"
    archive = maker(tmp_path / f"bad{suffix}", {"genres/pop/pop.00000.wav": wav, evil: wav})
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match="unsafe member"):
        get_data(str(archive), work / "data", log=Logs())
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil.wav").exists()


def test_missing_and_unsupported_sources(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "genres.tar.gz"
    with pytest.raises(DataError, match=str(missing)):
        get_data(str(missing), tmp_path / "data", log=Logs())
    odd = tmp_path / "genres.rar"
    odd.write_bytes(b"Rar!")
    with pytest.raises(DataError, match="genres.rar.*expected"):
        get_data(str(odd), tmp_path / "data", log=Logs())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no labelled audio found; expected GTZAN.*label folders.*manifest"):
        get_data(str(empty), tmp_path / "data", log=Logs())
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------------------- URLs
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_download_with_checksum(tmp_path: Path, server) -> None:
    root, base = server
    archive = marsyas_tar(root / "genres.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    proj = tmp_path / "proj"
    log = Logs()
    info = get_data(f"{base}/genres.tar.gz", proj / "data", sha256=digest.upper(), log=log)
    assert info["n_clips"] == 6 and info["origin"] == f"{base}/genres.tar.gz"
    assert sorted(p.name for p in proj.iterdir()) == ["data"]  # download removed afterwards
    assert digest in log.text


def test_url_checksum_mismatch_leaves_nothing(tmp_path: Path, server) -> None:
    root, base = server
    marsyas_tar(root / "genres.tar.gz")
    proj = tmp_path / "proj"
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"expected {wrong}, got [0-9a-f]{{64}}"):
        get_data(f"{base}/genres.tar.gz", proj / "data", sha256=wrong, log=Logs())
    assert list(proj.iterdir()) == []


def test_url_http_error(tmp_path: Path, server) -> None:
    _, base = server
    with pytest.raises(DataError, match="404"):
        get_data(f"{base}/missing.tar.gz", tmp_path / "data", log=Logs())
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_unreachable_url_explains_how_to_supply_data(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/genres.tar.gz"
    with pytest.raises(DataError) as err:
        get_data(url, tmp_path / "data", log=Logs())
    msg = str(err.value)
    assert "offline" in msg and "genreflow data get" in msg and "GTZAN_DIR" in msg
    assert os.listdir(tmp_path) == []
