"""Queue tasks (queue `default`): thin; the work is in inspection.services.queue."""

from __future__ import annotations

import logging

from celery import shared_task

from inspection.services.queue import rerank_queue

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=600, time_limit=660)
def rerank_queue_task() -> int:
    """Recompute the unlabelled photos' queue priority from their cached scores.

    The django-celery-beat PeriodicTask "queue re-rank" (editable in the admin) runs it;
    no model runs, so it is cheap (100,000 photos in seconds). Idempotent.
    """
    changed = rerank_queue()
    log.info("queue re-ranked: %d photos", changed)
    return changed
