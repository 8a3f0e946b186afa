"""Real GTZAN into ``data/``: from a folder, a tar/zip archive (Marsyas ``genres.tar.gz``,
Kaggle's zip) or an http(s) URL of one. ``SOURCE.json`` records where it came from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from genreflow.audio.decode import AUDIO_EXTENSIONS
from genreflow.core.config import GTZAN_GENRES
from genreflow.core.errors import DataError
from genreflow.data.archive import archive_kind, check_sha, download, extract, sha256_of
from genreflow.data.layout import Tree, find_tree, no_tree_error
from genreflow.data.staging import Log, Staging, resolve_dest, token

GTZAN_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"


def _copy_tree(tree: Tree, staging: Path, move: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for genre, files in tree.files.items():
        (staging / genre).mkdir()
        for f in files:
            target = staging / genre / f.name
            if move:
                os.replace(f, target)
            else:
                shutil.copyfile(f, target)  # not copy2: sources may be read-only
        counts[genre] = len(files)
    return counts


def get_data(
    source: str,
    dest: Path = Path("data"),
    sha256: str | None = None,
    log: Log = print,
) -> dict:
    """Bring GTZAN into ``dest`` as ``dest/<genre>/<genre>.000NN.<ext>`` and write SOURCE.json.

    ``source`` is a folder (GTZAN layout, possibly a few levels down), a
    ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive or an http(s) URL of one.
    ``dest`` is replaced wholesale only once the new tree is complete.
    Returns the SOURCE.json record. Raises :class:`DataError` on any failure.
    """
    source = str(source)
    dest = resolve_dest(Path(dest))
    cleanup: list[Path] = []
    staging = Staging(dest)
    try:
        if urlparse(source).scheme in ("http", "https"):
            archive = download(source, dest.parent, sha256, log)
            cleanup.append(archive)
            kind = archive_kind(archive, Path(urlparse(source).path).name)
            if kind is None:
                raise DataError(f"{source}: downloaded file is not a tar or zip archive")
            tree, move = _tree_from_archive(archive, kind, source, dest, cleanup, log), True
        else:
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
                tree, move = found, False
            else:
                kind = archive_kind(path)
                if kind is None:
                    raise DataError(
                        f"{source}: unsupported file; expected a folder in GTZAN layout or an "
                        "archive ending in .tar.gz, .tgz, .tar or .zip"
                    )
                if sha256:
                    check_sha(sha256_of(path), sha256, source)
                tree, move = _tree_from_archive(path, kind, source, dest, cleanup, log), True

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
        log(f"{'moving' if move else 'copying'} {tree.n_clips} clips from {tree.root} ...")
        counts = _copy_tree(tree, staging.path, move)
        info = {
            "source": "gtzan",
            "origin": source,
            "n_clips": sum(counts.values()),
            "genres": counts,
        }
        staging.commit(info)
        return info
    finally:
        staging.cleanup()
        for p in cleanup:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _tree_from_archive(
    archive: Path, kind: str, label: str, dest: Path, cleanup: list[Path], log: Log
) -> Tree:
    work = dest.with_name(f".{dest.name}.extract-{token()}")
    os.mkdir(work)
    cleanup.append(work)
    log(f"extracting audio from {label} ...")
    n = extract(archive, kind, work, label)
    tree = find_tree(work) if n else None
    if tree is None:
        raise no_tree_error(label)
    return tree

