"""The front door's limits: what one client may hold of a scoring worker."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from functools import cache

from genreflow.core.errors import GenreflowError

ENV_LIMITS = "GENREFLOW_SERVE_LIMITS"  # the front door's limits, for every worker process


@dataclass(frozen=True)
class Limits:
    """What one client may hold of a scoring worker (``genreflow serve`` options)."""

    timeout: float = 60.0  # one deadline per request: body, queue, model and answer
    header_timeout: float = 10.0  # a request head must arrive within this
    keep_alive: int = 5  # idle seconds between requests (uvicorn's timeout_keep_alive)
    max_connections: int = 256  # per worker; uvicorn answers 503 beyond (limit_concurrency)
    max_concurrent: int = 4  # requests running the model at once, per worker
    max_queued: int = 16  # requests waiting for the model, per worker; 503 beyond

    def check(self) -> Limits:
        """Itself, or a :class:`GenreflowError` naming the first option out of range."""
        least = {"max_queued": 0}
        for f in fields(self):
            value = getattr(self, f.name)
            if value < least.get(f.name, 1):
                option = "--keep-alive" if f.name == "keep_alive" else f"--{f.name.replace('_', '-')}"
                raise GenreflowError(f"{option}: expected at least {least.get(f.name, 1)}, "
                                     f"got {value}")
        if self.keep_alive > self.header_timeout:
            raise GenreflowError(f"--keep-alive ({self.keep_alive} s) is longer than "
                                 f"--header-timeout ({self.header_timeout:g} s), which ends it")
        return self

    def to_env(self) -> str:
        return json.dumps(asdict(self))


@cache
def limits_from_env() -> Limits:
    """The limits ``serve`` handed to this worker process (defaults otherwise)."""
    raw = os.environ.get(ENV_LIMITS)
    return Limits(**json.loads(raw)) if raw else Limits()
