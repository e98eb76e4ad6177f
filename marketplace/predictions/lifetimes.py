"""How long a prediction may wait and run: ``Cancel-After`` (a header) or ``lifetime`` (the body
form), parsed and bounded once for every create path, and the job that cancels a prediction
still queued at its deadline (``deadlines.expire`` is its body)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rq import Queue

from marketplace.predictions.refusals import InvalidParameter
from marketplace.redisconn import get_redis

EXPIRE = "workers.jobs.predictions.expire_prediction"
MIN_SECONDS = 5.0
# Bounded digit runs: int() and float() refuse numbers of thousands of digits.
_SECONDS_RE = re.compile(r"^\d{1,15}(?:\.\d{1,9})?$")
_DURATION_RE = re.compile(r"^(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,15}(?:\.\d{1,9})?)s)?$")


def parse_duration(value: str | None, field: str) -> timedelta | None:
    """``1h30m45s``, ``5m``, ``90s`` or bare seconds, from 5 s to ``PREDICTION_MAX_LIFETIME``;
    None when not given. Raises ``InvalidParameter`` naming ``field``."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().lower()
    if _SECONDS_RE.match(text):
        seconds = float(text)
    elif (match := _DURATION_RE.match(text)) and any(match.groups()):
        hours, minutes, secs = match.groups()
        seconds = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
    else:
        raise InvalidParameter(field, "must be a duration such as 90s, 5m or 1h30m")
    # Compared as plain numbers: a timedelta (and a deadline from it) overflows long before.
    if seconds < MIN_SECONDS:
        raise InvalidParameter(field, "must be at least 5 seconds")
    longest = settings.PREDICTION_MAX_LIFETIME
    if seconds > longest:
        raise InvalidParameter(field, f"must be at most {longest} seconds")
    return timedelta(seconds=seconds)


def deadline_from(*, cancel_after: str | None, lifetime: str | None) -> datetime | None:
    """The deadline a create asks for: the ``Cancel-After`` header wins over ``lifetime``."""
    duration = parse_duration(cancel_after, "Cancel-After") or parse_duration(lifetime, "lifetime")
    return None if duration is None else timezone.now() + duration


def schedule_expiry(prediction_id: str, deadline: datetime) -> None:
    """A job at the deadline that cancels the prediction if it never started."""
    Queue("default", connection=get_redis()).enqueue_at(
        deadline, EXPIRE, prediction_id, result_ttl=0, job_timeout=60
    )
