"""Structured logs: the prediction a log line concerns, on every line emitted while handling it.

Code that works on one prediction (a runner slot, a webhook delivery, a deadline job, the API
create, the agent's hook server) wraps the work in :func:`prediction_context`; the
:class:`PredictionIdFilter` on the handlers copies the id onto every record, whichever logger
(ours, httpx, Django) emits it. ``LOG_FORMAT=json`` writes one JSON object per line
(python-json-logger) with a ``prediction_id`` key; the plain format appends
``prediction=<id>``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

current_prediction: ContextVar[str | None] = ContextVar("current_prediction", default=None)


@contextlib.contextmanager
def prediction_context(prediction_id: str | None) -> Iterator[None]:
    token = current_prediction.set(prediction_id)
    try:
        yield
    finally:
        current_prediction.reset(token)


class PredictionIdFilter(logging.Filter):
    """Adds ``prediction_id`` (None outside any prediction) and ``prediction_tag`` (the plain
    format's suffix) to every record; an explicit ``extra={"prediction_id": ...}`` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        pid = getattr(record, "prediction_id", None) or current_prediction.get()
        record.prediction_id = pid
        record.prediction_tag = f" prediction={pid}" if pid else ""
        return True
