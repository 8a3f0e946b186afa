"""uvicorn's h11 protocol with a deadline for each request head, and the head's size."""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from genreflow.serving.limits import limits_from_env

MAX_HEADER_BYTES = 16 * 2**10  # request line + headers (and a chunk-size line), h11's limit
CROWDED_HEAD_SECONDS = 1.0  # head deadline of a connection over --max-connections


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head: ``header_timeout``
    seconds from the connection or from the previous answer (a second for a connection over
    ``--max-connections``, which uvicorn answers 503 anyway). Not reset by trickled bytes."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        crowded = (self.limit_concurrency is not None
                   and len(self.connections) > self.limit_concurrency)
        self._arm(CROWDED_HEAD_SECONDS if crowded else limits_from_env().header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(limits_from_env().header_timeout)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
