"""What ``make repro`` runs first: real data from ``GTZAN_DIR`` when it is set, else what
``genreflow data get`` brought, else the synthetic set (announced loudly); and ``dvc add``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from genreflow.audio.decode import SOURCE_FILE
from genreflow.core.config import IntakeConfig
from genreflow.core.errors import DataError, GenreflowError
from genreflow.core.safe_text import bare_url, printable
from genreflow.data.acquire import get_data
from genreflow.data.collection import discover
from genreflow.data.download import is_url
from genreflow.data.sources import find_plan
from genreflow.data.staging import Log
from genreflow.data.synth import SynthSpec, synth

BROUGHT = ("gtzan", "folder", "manifest")  # SOURCE.json sources `data get` writes

_BANNER = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  NO REAL GTZAN FOUND: using the SYNTHETIC stand-in data set in {dest}
!!  (10 generated classes named like GTZAN's genres; source=synthetic).
!!  Every number produced from it is NOT a GTZAN result.
!!  To use the real data set:
!!      GTZAN_DIR=/path/to/gtzan make repro
!!  or  genreflow data get /path/to/genres.tar.gz   (archive, folder or URL)
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _disk_counts(dest: Path) -> dict[str, int]:
    if not dest.is_dir():
        return {}
    try:
        return discover(dest).counts
    except GenreflowError:  # an index or labels that no longer check out: not up to date
        return {}


def _brought(dest: Path, current: dict | None, log: Log) -> dict | None:
    """The collection ``data get`` staged in ``dest``, when it is intact (kept, not replaced
    by the synthetic set)."""
    if not current or current.get("source") not in BROUGHT:
        return None
    if _disk_counts(dest) != current.get("genres"):
        return None
    log(printable(f"{dest}: using the {current['source']} data `genreflow data get` brought "
                  f"from {current.get('origin')} ({current.get('n_clips')} clips); set "
                  "GTZAN_DIR, or run `genreflow data synth`, to replace it"))
    return current


def prepare_default(
    dest: Path = Path("data"),
    gtzan_dir: str | None = None,
    log: Log = print,
    limits: IntakeConfig | None = None,
    **synth_kwargs: object,
) -> dict:
    """Real GTZAN from ``gtzan_dir`` (folder, archive or URL) when given, else what
    ``genreflow data get`` already brought into ``dest`` (when intact), else the synthetic set.

    The synthetic fallback is announced with a loud banner. When ``dest``
    already holds exactly what would be written, nothing is rewritten.
    """
    dest = Path(dest)
    current = _read_json(dest / SOURCE_FILE)
    if gtzan_dir:
        url = is_url(gtzan_dir)
        origin = bare_url(gtzan_dir) if url else printable(gtzan_dir)  # as get_data records it
        path = Path(gtzan_dir).expanduser()
        if not url and not path.exists():
            raise DataError(
                f"GTZAN_DIR={origin}: no such file or folder; point it at a GTZAN folder, "
                "genres.tar.gz or the Kaggle zip (or unset it to use the synthetic set)"
            )
        if current and current.get("source") in BROUGHT and current.get("origin") == origin:
            on_disk = _disk_counts(dest)
            expected = current.get("genres")
            if path.is_dir():
                plan = find_plan(path)
                expected = plan.counts if plan else None
            if on_disk and on_disk == current.get("genres") == expected:
                log(f"{dest}: up to date ({current['source']} from {origin}, "
                    f"{current.get('n_clips')} clips)")
                return current
        return get_data(gtzan_dir, dest, log=log, limits=limits)

    kept = _brought(dest, current, log)
    if kept is not None:
        return kept
    log(_BANNER.format(dest=dest))
    spec = SynthSpec(**synth_kwargs)  # type: ignore[arg-type]
    want = spec.source_info()
    if current == want and _disk_counts(dest) == want["genres"]:
        log(f"{dest}: up to date (synthetic, seed {want['seed']}, {want['n_clips']} clips)")
        return current
    return synth(dest, log=log, **synth_kwargs)


# ------------------------------------------------------------------------------------- DVC
def _dvc_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / ".dvc").is_dir():
            return d
    return None


def track_with_dvc(dest: Path, log: Log = print) -> bool:
    """``dvc add dest`` (updating ``<dest>.dvc``) when inside a DVC repo; False otherwise."""
    dest = Path(dest)
    root = _dvc_root(Path.cwd().resolve()) or _dvc_root(dest.resolve().parent)
    if root is None:
        log(f"not inside a DVC repository; {dest} is not tracked")
        return False
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "add", str(dest.resolve())],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DataError(f"`dvc add {dest}` failed: {(proc.stderr or proc.stdout).strip()}")
    log(f"tracked {dest} with DVC ({dest.name}.dvc updated)")
    return True
