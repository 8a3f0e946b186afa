"""Class labels: which names are accepted, and ``data.genres: auto`` resolved to the data's.

A label becomes a folder name, an MLflow metric suffix, a served ``p_<label>`` column and a
plot tick, so it must be safe as all of them: a word character first, then word characters,
spaces, dots, plus or minus signs, at most 63 characters, no surrounding space, no trailing
dot, and no two labels equal after case folding (a case-insensitive file system, as on macOS
or Windows, would merge their folders).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from genreflow.core.errors import DataError
from genreflow.core.safe_text import printable

AUTO = "auto"  # data.genres: every label found in the data, sorted
MAX_CHARS = 63
_LABEL = re.compile(r"\w[\w .+-]{0," + str(MAX_CHARS - 1) + "}")
RULE = (f"a letter, digit or _ first, then letters, digits, _, space, '.', '+' or '-', "
        f"at most {MAX_CHARS} characters, not ending in a space or a dot")


def check_label(name: object) -> str | None:
    """Why ``name`` cannot be a label, or None when it can."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "empty"
    if name != name.strip():
        return "has leading or trailing spaces"
    if len(name) > MAX_CHARS:
        return f"longer than {MAX_CHARS} characters"
    if not _LABEL.fullmatch(name):
        return f"not a valid label ({RULE})"
    if name.endswith("."):
        return "ends in a dot"
    return None


def label_problems(names: Iterable[str]) -> list[str]:
    """Every problem of a set of labels: invalid names, and collisions after case folding."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name in names:
        why = check_label(name)
        if why:
            problems.append(f"{printable(str(name))!r}: {why}")
            continue
        key = name.casefold()
        if key in seen and seen[key] != name:
            problems.append(f"{seen[key]!r} and {name!r} differ only in case")
        seen.setdefault(key, name)
    return problems


def check_labels(names: Iterable[str], where: str = "labels") -> list[str]:
    """``names`` (sorted, unique) when all are valid labels; else :class:`DataError`."""
    names = sorted(set(names))
    problems = label_problems(names)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{where}: invalid label(s): {'; '.join(problems[:3])}{more}; "
                        f"labels must be {RULE}, and distinct ignoring case")
    return names


def resolve_labels(data_cfg: Any, found_labels: Iterable[str]) -> list[str]:
    """The labels to use: ``data.genres`` when it is a list (it selects and orders; labels
    absent from the data are kept for the caller to judge), every label found, sorted,
    when it is ``auto``."""
    genres = data_cfg.genres
    if isinstance(genres, str):  # "auto": DataConfig refuses any other string
        return check_labels(found_labels, "data")
    return list(genres)
