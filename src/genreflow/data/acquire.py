"""Real GTZAN into ``data/``: from a folder, a tar/zip archive (Marsyas ``genres.tar.gz``,
Kaggle's zip) or an http(s) URL of one. ``SOURCE.json`` records where it came from."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.config import GTZAN_GENRES, IntakeConfig
from genreflow.core.errors import DataError
from genreflow.core.safe_text import printable
from genreflow.data.archive import archive_kind, extract
from genreflow.data.download import check_sha, download, is_url, redact_url, sha256_of
from genreflow.data.layout import Tree, find_tree, no_tree_error
from genreflow.data.limits import Budget, check_free
from genreflow.data.staging import Log, Staging, resolve_dest, token

GTZAN_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"


def _budget_folder(tree: Tree, budget: Budget, dest: Path) -> None:
    """Clip count, sizes and free disk of a folder source, checked before copying."""
    budget.check_count(tree.n_clips)
    for genre, files in tree.files.items():
        for f in files:
            budget.declare(f"{genre}/{f.name}", f.stat().st_size)
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


def _copy_tree(tree: Tree, staging: Path, move: bool, budget: Budget) -> dict[str, int]:
    counts: dict[str, int] = {}
    for genre, files in tree.files.items():
        (staging / genre).mkdir()
        for f in files:
            target = staging / genre / f.name
            if move:  # extracted by us, already within the budget
                os.replace(f, target)
                continue
            with _open_regular(f) as src:  # bounded: a file may grow after the scan
                budget.copy(src, target, f"{genre}/{f.name}")
        counts[genre] = len(files)
    return counts


def _report(tree: Tree, dropped: list[str], log: Log) -> None:
    unknown = sorted(g for g in tree.files if g not in GTZAN_GENRES)
    if unknown:
        log(f"note: genre folder(s) not in GTZAN, copied anyway: {unknown}")
    missing = [g for g in GTZAN_GENRES if g not in tree.files]
    if missing and len(missing) < len(GTZAN_GENRES):
        log(f"note: GTZAN genre(s) absent from the source: {missing}")
    if tree.ignored:
        log(f"ignored {len(tree.ignored)} file(s) not named <genre>.NNNNN.<audio ext> "
            f"(e.g. {', '.join(tree.ignored[:5])}; audio ext: {', '.join(AUDIO_EXTENSIONS)})")
    if tree.duplicates:
        log(f"ignored {tree.duplicates} duplicate clip(s) (same id, another format)")
    if tree.links:
        log(f"skipped {len(tree.links)} link(s) leaving the source folder or to a folder "
            f"(e.g. {', '.join(tree.links[:5])})")
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
    """Bring GTZAN into ``dest`` as ``dest/<genre>/<genre>.000NN.<ext>`` and write SOURCE.json.

    ``source`` is a folder (GTZAN layout, possibly a few levels down), a
    ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive or an http(s) URL of one.
    ``dest`` must be absent, empty or a tree genreflow staged; it is replaced
    only once the new tree is complete. ``limits`` bound what is accepted
    (defaults: :class:`IntakeConfig`). Returns the SOURCE.json record, whose
    ``origin`` is a URL without credentials or query. Raises :class:`DataError`
    on any failure.
    """
    source = str(source)
    limits = limits or IntakeConfig()
    label = redact_url(source) if is_url(source) else printable(source)
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
            tree = _tree_from_archive(archive, kind, label, dest, cleanup, budget, dropped, log)
            move = True
        else:
            tree, move = _local_tree(source, dest, sha256, cleanup, budget, dropped, log)
        _report(tree, dropped, log)
        if not move:
            _budget_folder(tree, budget, dest)
        log(f"{'moving' if move else 'copying'} {tree.n_clips} clips from {tree.root} ...")
        counts = _copy_tree(tree, staging.path, move, budget)
        info = {
            "source": "gtzan",
            "origin": label,
            "n_clips": sum(counts.values()),
            "genres": counts,
        }
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


def _local_tree(source: str, dest: Path, sha256: str | None, cleanup: list[Path],
                budget: Budget, dropped: list[str], log: Log) -> tuple[Tree, bool]:
    """The clips of a local folder (copied) or archive (extracted, then moved)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"{source}: no such file or folder; expected a GTZAN folder "
            "(<genre>/<genre>.000NN.wav|au|...), a .tar.gz/.tgz/.tar/.zip archive "
            "or an http(s) URL"
        )
    if path.is_dir():
        if sha256:
            log(f"note: --sha256 ignored for folder source {source}")
        found = find_tree(path)
        if found is None:
            raise no_tree_error(source)
        return found, False
    kind = archive_kind(path)
    if kind is None:
        raise DataError(
            f"{source}: unsupported file; expected a folder in GTZAN layout or an "
            "archive ending in .tar.gz, .tgz, .tar or .zip"
        )
    if sha256:
        check_sha(sha256_of(path), sha256, source)
    return _tree_from_archive(path, kind, source, dest, cleanup, budget, dropped, log), True


def _tree_from_archive(archive: Path, kind: str, label: str, dest: Path, cleanup: list[Path],
                       budget: Budget, dropped: list[str], log: Log) -> Tree:
    work = dest.with_name(f".{dest.name}.extract-{token()}")
    os.mkdir(work)  # an OSError here is reported by get_data
    cleanup.append(work)
    log(f"extracting audio from {label} ...")
    done = extract(archive, kind, work, label, budget)
    dropped.extend(done.dropped)
    tree = find_tree(work) if done.n else None
    if tree is None:
        raise no_tree_error(label)
    return tree
