"""`collect_events`: a process whose log lines another process prints (a Ray worker's) keeps its events, at the
level asked, redacted before they leave it, with the context they were logged in; the driver then logs them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from rtflow import log
from rtflow.log import collect_events, configure_logging, current_level, get_logger, log_collected
from rtflow.results.summary import in_worker_order

SECRET = "sk-proj-COLLECTED-EVENT-SECRET-0123456789"


@pytest.fixture(autouse=True)
def _own_pipeline() -> Iterator[None]:
    saved = log._current
    yield
    log._current = saved


def test_events_are_kept_at_the_level_asked_redacted_and_with_their_context() -> None:
    kept = collect_events(logging.INFO)
    assert current_level() == logging.INFO
    with structlog.contextvars.bound_contextvars(conversation="c1", turn=2):
        get_logger().warning("attempt.failed", error=f"401 for key {SECRET}")
        get_logger().debug("too.fine")
    ((method, fields),) = kept
    logged_at = fields.pop("logged_at")  # when it happened here: the printing process stamps its own time too
    assert method == "warning" and logged_at.endswith("Z")
    assert fields == {"event": "attempt.failed", "error": "401 for key [redacted]", "conversation": "c1", "turn": 2}


def test_the_driver_logs_them_under_the_workers_name() -> None:
    """What the Ray driver does with a drained worker's events: each logged as it was, with `worker`."""
    kept = collect_events(logging.INFO)
    get_logger().warning("attempt.failed", kind="rate_limit")
    events = list(kept)
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", stream=stream)
    log_collected(events, worker="worker-3")
    (line,) = stream.getvalue().splitlines()
    printed = json.loads(line)
    assert printed["logged_at"] == events[0][1]["logged_at"]  # the worker's own time goes along
    assert printed | {"timestamp": None, "logged_at": None} == {
        "event": "attempt.failed", "kind": "rate_limit", "worker": "worker-3", "level": "warning", "timestamp": None,
        "logger_name": "rtflow", "logged_at": None,
    }  # fmt: skip


def test_workers_are_listed_in_their_numbers_order() -> None:
    ordered = in_worker_order({"worker-10": 1, "worker-2": 5, "worker-1": 3})
    assert list(ordered) == ["worker-1", "worker-2", "worker-10"]
