"""Where raw audio goes: refuse to replace a folder that is not raw audio, and swap a
finished tree in with a rename, so a failure at any point leaves the old data untouched."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from genreflow.audio.decode import AUDIO_EXTENSIONS, SOURCE_FILE
from genreflow.core.errors import DataError

Log = Callable[[str], None]

_HIDDEN_OK = {".gitignore", ".DS_Store", ".dvcignore"}


def token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _check_replaceable(dest: Path) -> None:
    """Refuse to wipe a folder that is clearly not a raw-audio folder (e.g. the repo itself)."""
    if not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; remove it or choose another dest")
    cwd = Path.cwd().resolve()
    real = dest.resolve()
    if real == cwd or real in cwd.parents:
        raise DataError(f"{dest}: is the current folder or one of its parents; choose another dest")
    for entry in dest.iterdir():
        if entry.name in (".git", ".dvc"):
            raise DataError(f"{dest}: contains {entry.name}/, refusing to replace it")
        if entry.is_dir():
            for f in entry.iterdir():
                if f.is_dir() or (
                    not f.name.startswith(".") and f.suffix.lower() not in AUDIO_EXTENSIONS
                ):
                    raise DataError(
                        f"{dest}: does not look like a raw-audio folder ({f} is not audio); "
                        "refusing to replace it. Remove it yourself or choose another dest."
                    )
        elif entry.name != SOURCE_FILE and entry.name not in _HIDDEN_OK:
            raise DataError(
                f"{dest}: does not look like a raw-audio folder (found {entry.name}); "
                "refusing to replace it. Remove it yourself or choose another dest."
            )


def resolve_dest(dest: Path) -> Path:
    dest = Path(dest)
    if dest.is_symlink():  # replace the folder the link points to; keep the link
        dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _check_replaceable(dest)
    return dest


class Staging:
    """A hidden sibling folder of ``dest`` that becomes ``dest`` on :meth:`commit`."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path = dest.with_name(f".{dest.name}.tmp-{token()}")
        os.mkdir(self.path)  # honours the umask, unlike mkdtemp's 0o700

    def commit(self, info: dict) -> None:
        (self.path / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")
        old = None
        if self.dest.exists():
            old = self.dest.with_name(f".{self.dest.name}.old-{token()}")
            os.rename(self.dest, old)
        try:
            os.rename(self.path, self.dest)
        except BaseException:
            if old is not None:
                os.rename(old, self.dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def cleanup(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)

