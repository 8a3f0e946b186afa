"""Intake bounds: members, bytes per clip and in all, compression ratio and free disk, for
archives and folders alike. Every refusal is one line naming the source, the member and the
limit (``intake.*`` in params.yaml, or the matching ``data get`` option)."""

from __future__ import annotations

import errno
import lzma
import shutil
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from genreflow.core.config import IntakeConfig
from genreflow.core.errors import DataError

MiB = 1 << 20
CHUNK = MiB
RATIO_FLOOR = 32 * MiB  # expansion is judged only past this many bytes: one silent clip may
#                         deflate 1000:1, but no real collection does so over 32 MiB
HEADROOM = 64 * MiB  # what must stay free on the disk after the expected writes
NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, apfs, ntfs)
PATH_MAX = 4095  # bytes in a whole path (Linux)

#: what reading a member can raise besides DataError: corrupt or truncated compressed data,
#: a zip whose header and data disagree (e.g. CRC), an unsupported method or encryption
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
               NotImplementedError, RuntimeError, ValueError)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _limit(field: str, value: object) -> str:
    option = "--" + field.replace("_", "-")
    return f"limit intake.{field} = {value} (params.yaml, or `data get {option}`)"


def check_free(where: Path, need: int, label: str) -> None:
    """Refuse before writing when ``need`` bytes (plus :data:`HEADROOM`) will not fit."""
    free = shutil.disk_usage(where).free
    if need + HEADROOM > free:
        raise DataError(
            f"{label}: needs {human(need)} in {where} but only {human(free)} is free (keeping "
            f"{human(HEADROOM)} spare); free some space or choose another --dest"
        )


def check_name(parts: list[str], name: str, into: Path, label: str) -> None:
    """Refuse names the file system cannot hold, before anything is written."""
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise DataError(f"{label}: member {name[:80]!r}...: a name part is "
                            f"{len(p.encode('utf-8', 'surrogateescape'))} bytes; file systems "
                            f"allow {NAME_MAX}; refusing to extract")
    if len(str(into.joinpath(*parts)).encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise DataError(f"{label}: member {name[:80]!r}...: the path is longer than "
                        f"{PATH_MAX} bytes once extracted; refusing to extract")


def write_error(label: str, name: str, exc: OSError) -> DataError:
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why += "; free some space or choose another --dest"
    return DataError(f"{label}: cannot write member {name!r} ({why})")


class Budget:
    """Counts members and bytes of one source against :class:`IntakeConfig`."""

    def __init__(self, limits: IntakeConfig, label: str) -> None:
        self.limits = limits
        self.label = label
        self.members = 0
        self.total = 0  # declared bytes of the members read so far
        self.written = 0

    def count(self, name: str) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise DataError(f"{self.label}: more than {self.limits.max_members} members (at "
                            f"{name!r}); {_limit('max_members', self.limits.max_members)}")

    def check_count(self, n: int) -> None:
        """Refuse a source that says up front it holds too many members."""
        if n > self.limits.max_members:
            raise DataError(f"{self.label}: {n} members, more than "
                            f"{self.limits.max_members}; "
                            f"{_limit('max_members', self.limits.max_members)}")

    def declare(self, name: str, size: int, clip: bool = True) -> None:
        """A member about to be read, by its declared size (a clip also against the clip cap)."""
        if clip and size > self.limits.clip_bytes:
            raise DataError(f"{self.label}: member {name!r} is {human(size)}, over the "
                            f"per-clip {_limit('max_clip_mb', self.limits.max_clip_mb)}")
        self.total += size
        if self.total > self.limits.total_bytes:
            raise DataError(f"{self.label}: member {name!r} takes the total past "
                            f"{human(self.limits.total_bytes)}; "
                            f"{_limit('max_total_gb', self.limits.max_total_gb)}")

    def ratio(self, name: str, expanded: int, compressed: int) -> None:
        if expanded >= RATIO_FLOOR and expanded > self.limits.max_ratio * max(compressed, 1):
            raise DataError(f"{self.label}: member {name!r} expands "
                            f"{expanded / max(compressed, 1):.0f}:1 (a compression bomb?); "
                            f"{_limit('max_ratio', self.limits.max_ratio)}")

    def copy(self, src: BinaryIO, target: Path, name: str,
             on_chunk: Callable[[int], None] | None = None) -> int:
        """Copy ``src`` into a new file ``target``, never more than the clip cap (headers lie).

        ``on_chunk(bytes so far)`` may refuse (compression ratio). Read and write failures
        become one-line :class:`DataError`\\ s naming the member."""
        try:
            with open(target, "wb") as out:
                return self._pump(src, out, name, on_chunk)
        except OSError as exc:  # opening, writing, closing: read errors are DataErrors by now
            raise write_error(self.label, name, exc) from None

    def _pump(self, src: BinaryIO, out: BinaryIO, name: str,
              on_chunk: Callable[[int], None] | None) -> int:
        n = 0
        while True:
            try:
                chunk = src.read(CHUNK)
            except DataError:
                raise
            except READ_ERRORS as exc:
                raise DataError(f"{self.label}: member {name!r} cannot be read "
                                f"({type(exc).__name__}: {exc})") from None
            if not chunk:
                return n
            n += len(chunk)
            self.written += len(chunk)
            if n > self.limits.clip_bytes:
                raise DataError(f"{self.label}: member {name!r} holds more than "
                                f"{human(self.limits.clip_bytes)} (more than its header "
                                f"says?); {_limit('max_clip_mb', self.limits.max_clip_mb)}")
            if self.written > self.limits.total_bytes:
                raise DataError(f"{self.label}: member {name!r} takes the total past "
                                f"{human(self.limits.total_bytes)}; "
                                f"{_limit('max_total_gb', self.limits.max_total_gb)}")
            if on_chunk is not None:
                on_chunk(n)
            out.write(chunk)
