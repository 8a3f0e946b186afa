"""The pinned runtime requirements logged with every model (explicit, so that MLflow does not
load the model in a fresh interpreter to infer them)."""

from __future__ import annotations

from importlib import metadata

RUNTIME_PACKAGES: tuple[str, ...] = ("mlflow", "tensorflow-cpu", "keras", "librosa", "soundfile",
                                     "soxr", "numpy", "pandas")


def pip_requirements() -> list[str]:
    """Pinned runtime dependencies (genreflow itself is installed locally, not from PyPI)."""
    reqs = []
    for pkg in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs
