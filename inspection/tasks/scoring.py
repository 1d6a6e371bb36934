"""Scoring tasks (queue `predict`): suggestions for photos, answers for the prediction API.

Thin: ids in, a service call, idempotent (late acks may run a task twice; scoring
again stores the same suggestions). The deployed models stay loaded in the worker
process (inspection/serving.py); a moved pointer is noticed at the next task.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init

from inspection.services import prediction, suggestions

log = logging.getLogger(__name__)

# A batch that takes longer than this is stuck (a seed batch of 16 takes ~2 s on 2 cores).
SOFT_LIMIT_S = 300


# The queue whose tasks use the deployed models (settings.CELERY_TASK_ROUTES).
SERVING_QUEUE = "predict"


def serves_predictions() -> bool:
    """Whether this worker consumes the `predict` queue (its children need the models)."""
    from inspection.celery import app

    return SERVING_QUEUE in app.amqp.queues.consume_from


@worker_process_init.connect
def _load_models_after_fork(**kwargs) -> None:
    """A `predict` worker's new pool process (a prefork child, or a solo worker) loads the models.

    Before its first task. Other workers (`train`, a `default`-only one) never score: they skip it.
    """
    if not serves_predictions():
        return
    from inspection.serving import warm_up

    warm_up()


@shared_task(acks_late=True, soft_time_limit=SOFT_LIMIT_S, time_limit=SOFT_LIMIT_S + 60)
def score_photos_task(photo_ids: list[int]) -> dict:
    """Score a batch of photos and store their suggestions."""
    try:
        return suggestions.score_photos(photo_ids)
    except Exception as exc:
        suggestions.mark_failed(photo_ids, f"{type(exc).__name__}: {exc}"[:1000])
        raise


@shared_task(acks_late=True, soft_time_limit=SOFT_LIMIT_S, time_limit=SOFT_LIMIT_S + 60)
def predict_job_task(job_id: int) -> str:
    """Answer one prediction request (a Job of kind predict); returns its final state."""
    return prediction.run_prediction_job(job_id)
