"""What genreflow does when another process writes the same row first (tune workers sharing
one tracking store): the loser retries and uses the winner's row; other errors pass through."""

from __future__ import annotations

import pytest
from mlflow.exceptions import RestException

from genreflow.tracking.store import retry_store_setup

# the message a tracking server on PostgreSQL sent when two tune workers logged one dataset
_COLLISION = {"error_code": "BAD_REQUEST", "message": (
    '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint '
    '"dataset_pk"\nDETAIL:  Key (experiment_id, name, digest)=(1, gtzan-synthetic, a74d) '
    'already exists.')}


def test_a_row_written_first_by_another_process_is_retried():
    calls = []

    def log_input():
        calls.append(1)
        if len(calls) == 1:
            raise RestException(_COLLISION)
        return "logged"

    assert retry_store_setup(log_input, attempts=3) == "logged"
    assert len(calls) == 2


def test_other_store_errors_are_not_retried():
    calls = []

    def log_input():
        calls.append(1)
        raise RestException({"error_code": "BAD_REQUEST", "message": "Run 'x' not found"})

    with pytest.raises(RestException, match="not found"):
        retry_store_setup(log_input, attempts=3)
    assert len(calls) == 1
