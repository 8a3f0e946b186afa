"""A labelled collection into ``data/``: GTZAN or label folders from a folder, a tar/zip
archive (Marsyas ``genres.tar.gz``, Kaggle's zip) or an http(s) URL of one, or the files a
manifest lists (:mod:`.sources`). ``SOURCE.json`` records where it came from."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from genreflow.core.config import IntakeConfig
from genreflow.core.errors import DataError
from genreflow.core.safe_text import bare_url, printable
from genreflow.data.archive import archive_kind, extract
from genreflow.data.collection import INDEX_FILE
from genreflow.data.download import check_sha, download, is_url, sha256_of
from genreflow.data.limits import Budget, check_free, check_name
from genreflow.data.manifest import is_manifest, write_index
from genreflow.data.sources import Plan, find_plan, layouts_hint, manifest_plan
from genreflow.data.staging import Log, Staging, resolve_dest, token

GTZAN_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"


def _budget_folder(plan: Plan, budget: Budget, dest: Path) -> None:
    """Clip count, sizes and free disk of a folder source, checked before copying."""
    budget.check_count(len(plan.items))
    for f, target in plan.items:
        budget.declare(target, f.stat().st_size)
    check_free(dest.parent, budget.total, budget.label)


def _open_regular(f: Path) -> BinaryIO:
    """``f`` (or the in-tree file it links to, checked by the scan) for reading, refusing a
    link or a non-regular file swapped in since the scan."""
    real = f.resolve() if f.is_symlink() else f
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise DataError(f"{f}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{f}: no longer a regular file; refusing to copy it")
    return os.fdopen(fd, "rb")  # not copy2 later: sources may be read-only


def _copy_plan(plan: Plan, staging: Path, move: bool, budget: Budget) -> None:
    for f, target in plan.items:
        parts = target.split("/")
        check_name(parts, target, staging, budget.label)
        out = staging.joinpath(*parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        if move:  # extracted by us, already within the budget
            os.replace(f, out)
            continue
        with _open_regular(f) as src:  # bounded: a file may grow after the scan
            budget.copy(src, out, target)
    if plan.index is not None:
        write_index(staging / INDEX_FILE, plan.index)


def _report(plan: Plan, dropped: list[str], log: Log) -> None:
    for note in plan.notes:
        log(printable(note))
    if dropped:
        log(f"ignored {len(dropped)} link(s)/device(s) in the archive, never extracted "
            f"(e.g. {', '.join(dropped[:5])})")


def get_data(
    source: str,
    dest: Path = Path("data"),
    sha256: str | None = None,
    log: Log = print,
    limits: IntakeConfig | None = None,
) -> dict:
    """Bring a labelled collection into ``dest`` as ``dest/<label>/...`` and write SOURCE.json.

    ``source`` is a folder (GTZAN layout or label folders, possibly a few levels
    down; see :mod:`.sources`), a ``.tar.gz``/``.tgz``/``.tar``/``.zip``
    archive or an http(s) URL of one, or a manifest (``.csv``/``.parquet``).
    ``dest`` must be absent, empty or a tree genreflow staged; it is replaced
    only once the new tree is complete. ``limits`` bound what is accepted
    (defaults: :class:`IntakeConfig`). Returns the SOURCE.json record, whose
    ``origin`` is a URL without credentials or query. Raises :class:`DataError`
    on any failure.
    """
    source = str(source)
    limits = limits or IntakeConfig()
    label = bare_url(source) if is_url(source) else printable(source)
    dest = resolve_dest(Path(dest))
    cleanup: list[Path] = []
    staging = Staging(dest)
    dropped: list[str] = []
    budget = Budget(limits, label)
    try:
        if is_url(source):
            archive = download(source, dest.parent, sha256, log, limits)
            cleanup.append(archive)
            kind = archive_kind(archive, Path(urlsplit(source).path).name)
            if kind is None:
                raise DataError(f"{label}: downloaded file is not a tar or zip archive")
            plan = _plan_from_archive(archive, kind, label, dest, cleanup, budget, dropped, log)
            move = True
        else:
            plan, move = _local_plan(source, dest, sha256, cleanup, budget, dropped, log)
        _report(plan, dropped, log)
        if not move:
            _budget_folder(plan, budget, dest)
        log(printable(f"{'moving' if move else 'copying'} {len(plan.items)} clips "
                      f"({plan.source} layout) from {plan.root} ..."))
        _copy_plan(plan, staging.path, move, budget)
        info = plan.record(label)
        staging.commit(info)
        return info
    except OSError as exc:  # a full disk, a permission, a name the file system refuses
        raise DataError(f"{label}: cannot bring the audio into {dest} ({exc.strerror or exc}"
                        f"{': ' + str(exc.filename) if exc.filename else ''})") from None
    finally:
        staging.cleanup()
        for p in cleanup:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _local_plan(source: str, dest: Path, sha256: str | None, cleanup: list[Path],
                budget: Budget, dropped: list[str], log: Log) -> tuple[Plan, bool]:
    """The clips of a local folder or manifest (copied) or archive (extracted, then moved)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{printable(source)}: no such file or folder; {layouts_hint()}, "
                        "a .tar.gz/.tgz/.tar/.zip archive of one, or an http(s) URL")
    if sha256 and (path.is_dir() or is_manifest(path)):
        log(f"note: --sha256 ignored for {printable(source)} (not an archive)")
    if path.is_dir():
        found = find_plan(path)
        if found is None:
            raise no_source_error(printable(source))
        return found, False
    if is_manifest(path):
        return manifest_plan(path, budget.limits.max_members), False
    kind = archive_kind(path)
    if kind is None:
        raise DataError(f"{printable(source)}: unsupported file; {layouts_hint()}, or an "
                        "archive ending in .tar.gz, .tgz, .tar or .zip")
    if sha256:
        check_sha(sha256_of(path), sha256, source)
    return _plan_from_archive(path, kind, source, dest, cleanup, budget, dropped, log), True


def _plan_from_archive(archive: Path, kind: str, label: str, dest: Path, cleanup: list[Path],
                       budget: Budget, dropped: list[str], log: Log) -> Plan:
    work = dest.with_name(f".{dest.name}.extract-{token()}")
    os.mkdir(work)  # an OSError here is reported by get_data
    cleanup.append(work)
    log(f"extracting audio from {label} ...")
    done = extract(archive, kind, work, label, budget)
    dropped.extend(done.dropped)
    plan = find_plan(work) if done.n else None
    if plan is None:
        raise no_source_error(label)
    return plan


def no_source_error(where: str) -> DataError:
    return DataError(f"{where}: no labelled audio found; {layouts_hint()}")
