"""Run counts: how many predictions each model has had.

Counting a run with ``UPDATE model SET run_count = run_count + 1`` in the create's transaction
made every create of one model wait for the previous one's lock on the model's row. The create's
queueing script counts the run in Redis instead (``scheduling.starts.RUNS_KEY``, a hash of model
id → runs), and :func:`flush` adds what was counted to ``Model.run_count`` — the autoscaler's
leader does every few seconds, so pages and rankings lag by that much. Counts not yet flushed
when Redis loses its data are lost; run counts are a popularity figure, not a ledger.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F

from marketplace.catalog.models import Model
from marketplace.redisconn import as_text, get_redis
from marketplace.scheduling.starts import RUNS_KEY

logger = logging.getLogger(__name__)


def flush() -> int:
    """Add the runs counted in Redis to the models' run counts; how many runs it added."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.hgetall(RUNS_KEY)
    pipe.delete(RUNS_KEY)
    counted, _ = pipe.execute()
    if not counted:
        return 0
    added = 0
    try:
        with transaction.atomic():
            for model_id, runs in sorted((int(as_text(k)), int(v)) for k, v in counted.items()):
                Model.objects.filter(pk=model_id).update(run_count=F("run_count") + runs)
                added += runs
    except Exception:
        # Put them back for the next flush rather than lose them.
        pipe = get_redis().pipeline(transaction=False)
        for model_id, runs in counted.items():
            pipe.hincrby(RUNS_KEY, model_id, int(runs))
        pipe.execute()
        logger.exception("could not flush run counts; kept for the next flush")
        return 0
    return added
