"""The ASGI ``receive`` channel under a deadline: wait for it, drain it, replay a body."""

from __future__ import annotations

import asyncio


def now() -> float:
    return asyncio.get_running_loop().time()


async def receive_by(receive, deadline: float) -> dict | None:
    """The next ASGI message, or None when the deadline passes first."""
    try:
        return await asyncio.wait_for(receive(), timeout=max(0.0, deadline - now()))
    except TimeoutError:
        return None


async def drain(receive, deadline: float) -> bool:
    """Read and drop the rest of an upload until the deadline; True when it all arrived (an
    ordinary client sends the whole body before reading the answer: it then gets the
    refusal instead of a reset connection)."""
    while True:
        message = await receive_by(receive, deadline)
        if message is None or message["type"] != "http.request":
            return False
        if not message.get("more_body"):
            return True


def replay(body: bytes, gone):
    """``receive`` for MLflow's app: the body read already, then the client's hang-up."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await asyncio.shield(gone)

    return receive
