"""Keep C-level noise (decoders, TensorFlow start-up) out of the user's stderr.

mpg123 and libvorbis print warnings ("Illegal Audio-MPEG-Header", "Xing stream size
off") straight to file descriptor 2, and TensorFlow prints its oneDNN notice there at
import, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect. The decode result or the import
says what matters; ``GENREFLOW_DECODER_STDERR=1`` keeps the noise for debugging.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

from genreflow.core.tfenv import set_tf_environment

_stderr_lock = threading.Lock()
_stderr_state = {"depth": 0, "saved": -1}


@contextlib.contextmanager
def quiet_c_stderr() -> Iterator[None]:
    """Send the C-level stderr (fd 2) to /dev/null inside the block. Thread-safe: nested
    and concurrent blocks share one redirection (other threads' stderr is dropped for
    that time too, which is why the blocks are kept short)."""
    if os.environ.get("GENREFLOW_DECODER_STDERR") == "1":
        yield
        return
    with _stderr_lock:
        if _stderr_state["depth"] == 0:
            with contextlib.suppress(Exception):  # a closed stderr is no reason to fail
                sys.stderr.flush()
            _stderr_state["saved"] = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _stderr_state["depth"] += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_state["depth"] -= 1
            if _stderr_state["depth"] == 0:
                os.dup2(_stderr_state["saved"], 2)
                os.close(_stderr_state["saved"])


def import_tensorflow() -> None:
    """Import TensorFlow and Keras without their start-up notices on stderr."""
    set_tf_environment()
    if "tensorflow" in sys.modules:
        return
    with quiet_c_stderr():
        # deferred: Keras import (see docs/benchmarks.md, Import cost)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
