"""`genreflow data get` against hostile or careless input: bombs, floods, lying or exotic
archive members, links out of a folder, endless downloads, and a --dest that genreflow did
not make. Each refusal is one line naming the member or the limit, through the real CLI,
with nothing written outside the target and no work folder left behind."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import shutil
import struct
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from genreflow.audio.decode import SOURCE_FILE
from genreflow.cli import app
from genreflow.core.config import IntakeConfig
from genreflow.core.errors import DataError
from genreflow.data import prepare_default
from genreflow.data.limits import Budget, check_free
from tests_helpers import Logs

runner = CliRunner()
SR = 8000
MiB = 1 << 20


def _wav() -> bytes:
    buf = io.BytesIO()
    t = np.arange(SR // 4) / SR
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


WAV = _wav()


@pytest.fixture
def proj(tmp_path: Path, monkeypatch) -> Path:
    """An empty project folder as the working directory (no params.yaml: default limits)."""
    p = tmp_path / "proj"
    p.mkdir()
    monkeypatch.chdir(p)
    return p


def _get(source, *args: str):
    return runner.invoke(app, ["data", "get", str(source), "--no-dvc", *args])


def _refused(res) -> str:
    """The one ``error:`` line of a refused command (exit 1, no traceback)."""
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and res.stderr.rstrip().endswith(errors[0]), res.stderr
    return errors[0]


def _untouched(proj: Path) -> None:
    """Nothing but the untouched sources in the project: no data/, no hidden work folder."""
    assert sorted(p.name for p in proj.iterdir()) == [], sorted(proj.iterdir())


def _zip(path: Path, files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _zeros_zip(path: Path, name: str, size: int) -> Path:
    """One member of ``size`` zero bytes, streamed (deflate: about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w") as out:
        for _ in range(size // MiB):
            out.write(bytes(MiB))
    return path


def _patch_zip(path: Path, local_at: int, central_at: int, fmt: str, value: int) -> None:
    """Overwrite one field of every local and central header (the attacker's hex editor)."""
    data = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", local_at), (b"PK\x01\x02", central_at)):
        i = data.find(sig)
        while i >= 0:
            struct.pack_into(fmt, data, i + at, value)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def _tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


# ------------------------------------------------------------------------ size and ratio
def test_zip_bomb_is_refused_before_extraction(tmp_path: Path, proj: Path) -> None:
    bomb = _zeros_zip(tmp_path / "bomb.zip", "genres/pop/pop.00000.wav", 48 * MiB)
    assert bomb.stat().st_size < MiB // 4  # ~1000:1
    line = _refused(_get(bomb))
    assert "genres/pop/pop.00000.wav" in line and "intake.max_ratio" in line and "bomb.zip" in line
    _untouched(proj)


def test_tar_gz_bomb_is_refused_while_streaming(tmp_path: Path, proj: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tf:
        info = tarfile.TarInfo("genres/pop/pop.00000.wav")
        info.size = 48 * MiB
        tf.addfile(info, _Zeros(info.size))
    line = _refused(_get(bomb))
    assert "genres/pop/pop.00000.wav" in line and "intake.max_ratio" in line
    _untouched(proj)


def test_clip_over_the_size_cap_from_a_small_zip(tmp_path: Path, proj: Path) -> None:
    """The 2 MB zip that wrote a 2 GiB clip, scaled down: the declared size is refused."""
    big = _zeros_zip(tmp_path / "big.zip", "genres/pop/pop.00001.wav", 3 * MiB)
    line = _refused(_get(big, "--max-clip-mb", "1"))
    assert "pop.00001.wav" in line and "intake.max_clip_mb = 1.0" in line
    _untouched(proj)


def test_params_yaml_sets_the_limits_and_names_bad_fields(tmp_path: Path, proj: Path) -> None:
    big = _zeros_zip(tmp_path / "big.zip", "genres/pop/pop.00001.wav", 3 * MiB)
    (proj / "params.yaml").write_text(yaml.safe_dump({"intake": {"max_clip_mb": 2}}))
    assert "intake.max_clip_mb = 2" in _refused(_get(big))
    (proj / "params.yaml").write_text(yaml.safe_dump({"intake": {"max_clip_gb": 2}}))
    assert "max_clip_gb" in _refused(_get(big))  # typo: the unknown field is named
    (proj / "params.yaml").write_text(yaml.safe_dump({"intake": {"max_ratio": 0}}))
    assert "intake.max_ratio" in _refused(_get(big))
    assert sorted(p.name for p in proj.iterdir()) == ["params.yaml"]


def test_total_cap(tmp_path: Path, proj: Path) -> None:
    files = {f"genres/pop/pop.{i:05d}.wav": bytes(400_000) for i in range(4)}
    archive = _tar(tmp_path / "many.tar", files, "w")
    line = _refused(_get(archive, "--max-total-gb", "0.001"))
    assert "pop.00002.wav" in line and "intake.max_total_gb" in line
    _untouched(proj)


def test_member_whose_data_outgrows_its_header_is_stopped() -> None:
    """Headers lie: the copy itself stops at the clip cap, whatever was declared."""
    budget = Budget(IntakeConfig(max_clip_mb=1), "evil.zip")
    budget.declare("pop/pop.00000.wav", 100)
    target = Path(os.devnull)
    with pytest.raises(DataError, match=r"evil.zip: member 'pop/pop.00000.wav' holds more than "
                                        r"1.0 MB.*intake.max_clip_mb"):
        budget.copy(io.BytesIO(bytes(3 * MiB)), target, "pop/pop.00000.wav")


def test_zip_member_with_a_patched_size_is_refused(tmp_path: Path, proj: Path) -> None:
    """Declared 100 bytes, holding 3 MB: never more than the declared size is taken."""
    archive = _zip(tmp_path / "liar.zip", {"genres/pop/pop.00000.wav": os.urandom(3 * MiB)},
                   zipfile.ZIP_STORED)
    _patch_zip(archive, 22, 24, "<I", 100)  # uncompressed size, local and central
    line = _refused(_get(archive, "--max-clip-mb", "1"))
    assert "pop.00000.wav" in line and "cannot be read" in line  # the CRC does not match
    _untouched(proj)


def test_full_disk_is_one_line() -> None:
    budget = Budget(IntakeConfig(), "a.zip")
    with pytest.raises(DataError, match=r"^a.zip: cannot write member 'x.wav' \(No space left"):
        budget.copy(io.BytesIO(b"RIFF" * 1000), Path("/dev/full"), "x.wav")


def test_free_disk_is_checked_before_writing(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    check_free(tmp_path, 0, "a.tar")
    with pytest.raises(DataError, match=r"^a.tar: needs .* but only .* is free"):
        check_free(tmp_path, free + 1, "a.tar")


# ---------------------------------------------------------------------------------- floods
def test_member_flood_over_the_default_cap(tmp_path: Path, proj: Path) -> None:
    n = IntakeConfig().max_members + 1
    archive = tmp_path / "flood.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"genres/pop/pop.{i % 100000:05d}.wav", b"")
    line = _refused(_get(archive))
    assert f"{n} members" in line and "intake.max_members = 50000" in line
    _untouched(proj)


def test_tar_flood_is_stopped_at_the_cap(tmp_path: Path, proj: Path) -> None:
    archive = _tar(tmp_path / "flood.tar.gz", {f"genres/pop/pop.{i:05d}.wav": WAV
                                               for i in range(30)})
    line = _refused(_get(archive, "--max-members", "20"))
    assert "more than 20 members" in line and "pop.00020.wav" in line
    _untouched(proj)


# ------------------------------------------------------------------- members we cannot read
def test_encrypted_zip_member(tmp_path: Path, proj: Path) -> None:
    archive = _zip(tmp_path / "locked.zip", {"genres/pop/pop.00000.wav": WAV})
    _patch_zip(archive, 6, 8, "<H", 0x1)  # general purpose flag: encrypted
    line = _refused(_get(archive))
    assert "'genres/pop/pop.00000.wav' is encrypted" in line
    _untouched(proj)


def test_deflate64_zip_member(tmp_path: Path, proj: Path) -> None:
    archive = _zip(tmp_path / "d64.zip", {"genres/pop/pop.00000.wav": WAV,
                                          "genres/pop/pop.00001.wav": WAV})
    _patch_zip(archive, 8, 10, "<H", 9)  # compression method 9: deflate64
    line = _refused(_get(archive))
    assert "pop.00000.wav" in line and "method 9 (deflate64)" in line
    _untouched(proj)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_over_long_member_name(tmp_path: Path, proj: Path, kind: str) -> None:
    files = {"genres/pop/pop.00000.wav": WAV, "genres/pop/" + "p" * 300 + ".wav": WAV}
    archive = (_zip(tmp_path / "long.zip", files) if kind == "zip"
               else _tar(tmp_path / "long.tar.gz", files))
    line = _refused(_get(archive))
    assert "pppp" in line and "304 bytes" in line and "255" in line
    _untouched(proj)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_file_folder_clash(tmp_path: Path, proj: Path, kind: str) -> None:
    files = {"genres/pop/pop.00000.wav": WAV, "genres/pop/pop.00000.wav/pop.00001.wav": WAV}
    archive = (_zip(tmp_path / "clash.zip", files) if kind == "zip"
               else _tar(tmp_path / "clash.tar.gz", files))
    line = _refused(_get(archive))
    assert "pop.00000.wav/pop.00001.wav" in line and "both a file and a folder" in line
    _untouched(proj)


def test_tar_links_and_devices_are_counted_not_made(tmp_path: Path, proj: Path) -> None:
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for i in range(2):
            info = tarfile.TarInfo(f"genres/pop/pop.{i:05d}.wav")
            info.size = len(WAV)
            tf.addfile(info, io.BytesIO(WAV))
        for name, kind, target in (("genres/pop/pop.00002.wav", tarfile.SYMTYPE, "/etc/passwd"),
                                   ("genres/pop/pop.00003.wav", tarfile.LNKTYPE,
                                    "genres/pop/pop.00000.wav"),
                                   ("genres/pop/pop.00004.wav", tarfile.CHRTYPE, "")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    res = _get(archive, "--dest", "data")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (proj / "data" / "pop").iterdir()) == [
        "pop.00000.wav", "pop.00001.wav"]
    assert "ignored 3 link(s)/device(s)" in res.stderr and "pop.00002.wav" in res.stderr
    assert sorted(p.name for p in proj.iterdir()) == ["data"]


# -------------------------------------------------------------------------- folder sources
def test_folder_source_never_follows_a_link_out(tmp_path: Path, proj: Path) -> None:
    src = tmp_path / "gtzan"
    (src / "pop").mkdir(parents=True)
    (src / "pop" / "pop.00000.wav").write_bytes(WAV)
    (src / "pop" / "pop.00001.wav").symlink_to("/etc/passwd")
    (src / "pop" / "pop.00002.wav").symlink_to(src / "pop" / "pop.00000.wav")  # inside: kept
    outside = tmp_path / "elsewhere" / "jazz"
    outside.mkdir(parents=True)
    (outside / "jazz.00000.wav").write_bytes(WAV)
    (src / "jazz").symlink_to(outside)  # a folder link: never followed
    res = _get(src)
    assert res.exit_code == 0, res.output
    data = proj / "data"
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == [
        SOURCE_FILE, "pop", "pop/pop.00000.wav", "pop/pop.00002.wav"]
    assert (data / "pop" / "pop.00002.wav").read_bytes() == WAV
    assert not (data / "pop" / "pop.00002.wav").is_symlink()
    assert "skipped 2 link(s)" in res.stderr and "pop/pop.00001.wav" in res.stderr
    assert "jazz/" in res.stderr
    assert json.loads((data / SOURCE_FILE).read_text())["n_clips"] == 2


def test_folder_clip_over_the_cap(tmp_path: Path, proj: Path) -> None:
    src = tmp_path / "gtzan"
    (src / "pop").mkdir(parents=True)
    (src / "pop" / "pop.00000.wav").write_bytes(bytes(2 * MiB))
    line = _refused(_get(src, "--max-clip-mb", "1"))
    assert "pop/pop.00000.wav" in line and "intake.max_clip_mb" in line
    _untouched(proj)


# ------------------------------------------------------------------------------ downloads
class _Hostile(http.server.BaseHTTPRequestHandler):
    """/big: announces 5 MB; /stream: 5 MB without a length; /trickle: one byte every
    0.05 s (for at most 5 s); /silent: one byte, then nothing for 5 s; anything else: 404."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        path = self.path.split("?")[0]
        if path not in ("/big.tar.gz", "/stream.tar.gz", "/trickle.tar.gz", "/silent.tar.gz"):
            self.send_error(404)
            return
        self.send_response(200)
        if path == "/big.tar.gz":
            self.send_header("Content-Length", str(5 * MiB))
        self.end_headers()
        try:
            if path == "/silent.tar.gz":
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(5)
            elif path == "/trickle.tar.gz":
                for _ in range(100):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                for _ in range(5):
                    self.wfile.write(bytes(MiB))
        except OSError:  # the client gave up: what we test for
            pass


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the server's log would show the query we test for
        pass


@pytest.fixture
def hostile():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("path", ["big", "stream"])
def test_download_over_the_size_cap(proj: Path, hostile: str, path: str) -> None:
    line = _refused(_get(f"{hostile}/{path}.tar.gz", "--max-download-gb", "0.001"))
    assert f"{path}.tar.gz" in line and "intake.max_download_gb = 0.001" in line
    assert ("announces 5.2 MB" if path == "big" else "more than 1.0 MB received") in line
    _untouched(proj)


def test_a_server_gone_silent_cannot_hold_a_download_past_its_deadline(proj: Path,
                                                                       hostile: str) -> None:
    """No byte for longer than the deadline: the read is cut at the deadline, not after the
    per-read timeout (60 s)."""
    t0 = time.monotonic()
    line = _refused(_get(f"{hostile}/silent.tar.gz", "--download-minutes", "0.01"))
    assert time.monotonic() - t0 < 4  # 0.6 s deadline; the server is silent for 5 s
    assert "not finished after 0.01 min" in line and "intake.download_minutes" in line


def test_download_that_trickles_past_the_deadline(proj: Path, hostile: str) -> None:
    t0 = time.monotonic()
    line = _refused(_get(f"{hostile}/trickle.tar.gz", "--download-minutes", "0.01"))
    assert time.monotonic() - t0 < 4  # 0.6 s deadline; the trickle would take 5 s
    assert "not finished after 0.01 min" in line and "intake.download_minutes" in line
    _untouched(proj)


def test_urls_are_stored_and_shown_without_secrets(tmp_path: Path, proj: Path,
                                                    hostile: str) -> None:
    secret_url = hostile.replace("http://", "http://alice:hunter2@") + "/gone.zip?token=s3cr3t"
    line = _refused(_get(secret_url))
    assert "404" in line and "gone.zip" in line
    assert "hunter2" not in line and "s3cr3t" not in line and "alice" not in line

    www = tmp_path / "www"
    www.mkdir()
    _tar(www / "genres.tar.gz", {"genres/pop/pop.00000.wav": WAV})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_Files, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        port = httpd.server_address[1]
        res = _get(f"http://alice:hunter2@127.0.0.1:{port}/genres.tar.gz?token=s3cr3t#frag")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert res.exit_code == 0, res.output
    record = (proj / "data" / SOURCE_FILE).read_text()
    assert json.loads(record)["origin"] == f"http://127.0.0.1:{port}/genres.tar.gz"
    for secret in ("hunter2", "s3cr3t", "alice", "frag"):
        assert secret not in record and secret not in res.output


# -------------------------------------------------------------------------------- --dest
def _library(root: Path) -> dict[str, bytes]:
    """A music library genreflow did not make: only <Artist>/<track>.mp3 (which the old rule
    took for raw audio and replaced)."""
    files = {"Nina Simone/Sinnerman.mp3": b"ID3" + os.urandom(2000),
             "Miles Davis/So What.mp3": b"ID3" + os.urandom(2000),
             "pop/pop.00000.wav": WAV}  # even clip-shaped audio is a user's if unmarked
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return _snapshot(root)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


_COMMANDS = {
    "get": ["data", "get", "SRC"],
    "synth": ["data", "synth", "--clips-per-genre", "1", "--seconds", "0.5"],
    "auto": ["data", "auto", "--clips-per-genre", "1"],
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_dest_that_genreflow_did_not_make_is_never_replaced(tmp_path: Path, proj: Path,
                                                            monkeypatch, command: str) -> None:
    monkeypatch.delenv("GTZAN_DIR", raising=False)
    src = tmp_path / "gtzan"
    (src / "pop").mkdir(parents=True)
    (src / "pop" / "pop.00000.wav").write_bytes(WAV)
    music = tmp_path / "Music"
    music.mkdir()
    before = _library(music)
    args = [str(src) if a == "SRC" else a for a in _COMMANDS[command]]
    line = _refused(runner.invoke(app, [*args, "--dest", str(music), "--no-dvc"]))
    assert str(music) in line and "3 file(s) in 3 folder(s), not staged by genreflow" in line
    assert "refusing to replace it" in line and "--dest" in line
    assert _snapshot(music) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Music", "gtzan", "proj"]
    _untouched(proj)


def test_genreflow_folder_is_restaged_but_not_with_a_users_additions(tmp_path: Path,
                                                                     proj: Path) -> None:
    a = _tar(tmp_path / "a.tar.gz", {"genres/pop/pop.00000.wav": WAV})
    b = _tar(tmp_path / "b.tar.gz", {"genres/rock/rock.00000.wav": WAV,
                                     "genres/rock/rock.00001.wav": WAV})
    assert _get(a).exit_code == 0
    (proj / "data" / ".gitignore").write_text("/scratch\n")  # the user's: carried over
    res = _get(b)
    assert res.exit_code == 0, res.output
    assert json.loads((proj / "data" / SOURCE_FILE).read_text())["genres"] == {"rock": 2}
    assert (proj / "data" / ".gitignore").read_text() == "/scratch\n"
    assert not (proj / "data" / "pop").exists()

    (proj / "data" / "rock" / "my notes.txt").write_text("mine")
    (proj / "data" / "mixes").mkdir()
    before = _snapshot(proj / "data")
    line = _refused(_get(a))
    assert "staged by genreflow, but 2 entries in it genreflow did not write" in line
    assert "mixes" in line and "rock/my notes.txt" in line
    assert _snapshot(proj / "data") == before
    assert sorted(p.name for p in proj.iterdir()) == ["data"]


def test_empty_dest_is_used(tmp_path: Path, proj: Path) -> None:
    (proj / "data").mkdir()
    (proj / "data" / ".gitignore").write_text("x\n")
    res = _get(_tar(tmp_path / "a.tar.gz", {"genres/pop/pop.00000.wav": WAV}))
    assert res.exit_code == 0, res.output
    assert (proj / "data" / "pop" / "pop.00000.wav").read_bytes() == WAV
    assert (proj / "data" / ".gitignore").read_text() == "x\n"


def test_prepare_default_is_bound_by_the_same_rule(tmp_path: Path) -> None:
    music = tmp_path / "Music"
    music.mkdir()
    before = _library(music)
    with pytest.raises(DataError, match="not staged by genreflow"):
        prepare_default(music, log=Logs(), clips_per_genre=1, seconds=0.5)
    assert _snapshot(music) == before
