"""The environment TensorFlow reads once, at import: set it before anything imports it.

- ``TF_CPP_MIN_LOG_LEVEL=2``: no C++ start-up chatter in the stage logs.
- ``TF_ENABLE_ONEDNN_OPTS=1``: oneDNN kernels on every x86 CPU. TensorFlow turns them on
  by itself only on its newest CPU generations; on older x86 CPUs they make both training
  and the served forward pass much faster (see docs/benchmarks.md, oneDNN kernels). Results
  differ from the Eigen kernels by float rounding.

Values already in the environment win (``TF_ENABLE_ONEDNN_OPTS=0`` turns oneDNN off).
"""

from __future__ import annotations

import os

TF_ENV: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}


def set_tf_environment() -> None:
    """Fill in :data:`TF_ENV` where the environment does not say otherwise (no effect once
    TensorFlow is imported)."""
    for name, value in TF_ENV.items():
        os.environ.setdefault(name, value)
