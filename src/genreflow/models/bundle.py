"""The model bundle: a folder with ``model.keras`` and ``preprocess.json`` (model kind, class
names, the kind's front-end as its typed, versioned ``FrontEnd`` wrote it, data source; the
front-end is read back only through the kind, ``ModelKind.front_end``). Training writes it; the served pyfunc
model, ``register`` and ``genreflow predict`` read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from genreflow.core.errors import GenreflowError

BUNDLE_MODEL = "model.keras"
BUNDLE_META = "preprocess.json"


@dataclass
class Preprocess:
    """Everything needed to turn audio into model inputs (``preprocess.json``)."""

    kind: str
    classes: list[str]
    front_end: dict   # the kind's FrontEnd.to_json(): read it with ModelKind.front_end
    data_source: str

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Preprocess:
        raw = json.loads(Path(path).read_text())
        if "front_end" not in raw:
            raise GenreflowError(f"{path}: a bundle from an older genreflow (no 'front_end'); "
                                 "retrain the model (`dvc repro` or `genreflow train KIND`)")
        raw.pop("extra", None)  # an always-empty field that earlier bundles carry
        return cls(**raw)
