"""Who may use ``genreflow serve``: the optional API key and the exposure warning."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from genreflow.core.errors import GenreflowError

ENV_API_KEY = "GENREFLOW_API_KEY"  # the shared secret itself (or --api-key-file)
ENV_API_KEY_FILE = "GENREFLOW_SERVE_API_KEY_FILE"  # --api-key-file, for every worker process
API_KEY_HEADER = b"x-api-key"
API_KEY_CHARS = (16, 4096)
OPEN_PATHS = frozenset({"/ping", "/health"})  # liveness for load balancers: no key, no body


def read_api_key(path: Path | None) -> str | None:
    """The shared secret from ``path``, else from ``$GENREFLOW_API_KEY``, else None.
    Its value never appears in a message."""
    if path is None:
        key, source = os.environ.get(ENV_API_KEY), f"${ENV_API_KEY}"
        if key is None:
            return None
    else:
        source = f"--api-key-file {path}"
        if not path.is_file():
            raise GenreflowError(f"{source}: not a file")
        try:
            with open(path, "rb") as f:
                key = f.read(2 * API_KEY_CHARS[1]).decode("ascii")
        except OSError as exc:
            raise GenreflowError(f"{source}: cannot read it ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise GenreflowError(f"{source}: the key must be printable ASCII") from None
    key = key.strip()
    if not API_KEY_CHARS[0] <= len(key) <= API_KEY_CHARS[1]:
        raise GenreflowError(f"{source}: the key must be {API_KEY_CHARS[0]} to "
                             f"{API_KEY_CHARS[1]} characters, got {len(key)}")
    if not all("!" <= c <= "~" for c in key):
        raise GenreflowError(f"{source}: the key must be printable ASCII without spaces")
    return key


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (no lookup for an IP)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def exposure_warning(host: str, with_key: bool) -> str | None:
    """What ``serve`` prints when ``host`` is reachable from other machines."""
    if is_loopback(host):
        return None
    reach = f"--host {host} is not a loopback address: other machines can reach this server"
    if with_key:
        return (f"warning: {reach}. It speaks plain HTTP, so the API key and the audio cross "
                "the network in clear: put it behind a reverse proxy that terminates TLS "
                "(README, Registry, serving and prediction)")
    return (f"warning: {reach}, and it has no authentication: anyone who can connect can run "
            "the model. Pass --api-key-file, and put it behind a reverse proxy that terminates "
            "TLS and authenticates (README, Registry, serving and prediction)")
