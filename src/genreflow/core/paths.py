"""Where the pipeline's artefacts live: written once here, used by every command.

``dvc.yaml`` names the same paths (a test checks that they agree).
"""

from __future__ import annotations

from pathlib import Path

SPLIT_MANIFEST = Path("artifacts/split.csv")
FEATURES_DIR = Path("artifacts/features")
EMBEDDINGS_DIR = Path("artifacts/embeddings")
MODELS_DIR = Path("models")
VALIDATE_REPORTS = Path("reports/validate")
VALIDATE_REPORT = VALIDATE_REPORTS / "validate.json"
SPLIT_REPORTS = Path("reports/split")
TRAIN_REPORTS = Path("reports/train")
TUNE_REPORTS = Path("reports/tune")
REGISTER_REPORT = Path("reports/register.json")
FIGURES_DIR = Path("plots/figures")
REPORT_DIR = Path("reports/report")

