"""MLflow's error messages made genreflow's: no echo of the input, and a ``reason``."""

from __future__ import annotations

import json
import re

from genreflow.audio.contract import ALL_REASONS

_MLFLOW_PREFIX = re.compile(r"^Failed to predict data .*?\nError: ", re.DOTALL)
_SCHEMA_PREFIX = re.compile(r"^Failed to enforce schema of data .*? with schema .*?'\. Error: ",
                            re.DOTALL)
_NOT_JSON = re.compile(r"Ensure that input is a valid JSON formatted string\. Error: '(.*?)'\nInput: ",
                       re.DOTALL)
_REASON = re.compile(r"^(?:row \d+|request): ([a-z_]+): ")


def clean_message(message: str) -> tuple[str, str | None]:
    """MLflow's error message without its echo of the input; and genreflow's reason class."""
    not_json = _NOT_JSON.search(message)
    if not_json:  # MLflow echoes the whole unparsed body after "Input:": keep only why
        message = f"request: bad_request: the body is not valid JSON ({not_json.group(1)})"
    message = _MLFLOW_PREFIX.sub("", message, count=1)
    schema = _SCHEMA_PREFIX.sub("", message, count=1)
    if schema != message:  # MLflow refused the table before the model saw it
        message = f"request: bad_request: {' '.join(schema.split())}"
    match = _REASON.match(message)
    reason = match.group(1) if match and match.group(1) in ALL_REASONS else None
    return message, reason


class Rewriter:
    """``send`` that rewrites MLflow's JSON error bodies (status >= 400) to genreflow's."""

    def __init__(self, send) -> None:
        self.send = send
        self.start: dict | None = None
        self.started = False  # a response start went out (it cannot be replaced)
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            self.started = self.started or message["type"] == "http.response.start"
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(self.chunks)
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and isinstance(payload.get("message"), str):
                payload["message"], reason = clean_message(payload["message"])
                if reason is not None:
                    payload["reason"] = reason
                body = json.dumps(payload).encode()
        except ValueError:  # not JSON (a plain-text 415, the 504 text): pass it on
            pass
        headers = [(k, v) for k, v in self.start.get("headers", [])
                   if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        self.started = True
        await self.send({**self.start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})
