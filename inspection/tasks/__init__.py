"""Celery tasks, one module per kind of work; thin, ids in payloads, idempotent.

Routing is by module (settings.CELERY_TASK_ROUTES): `training` runs on the `train`
queue, `scoring` on `predict`, everything else on `default`. Importing the modules
here registers their tasks for the worker (Celery autodiscovers `inspection.tasks`).
"""

from inspection.tasks.jobs import export_job, import_job
from inspection.tasks.media import make_thumbnail
from inspection.tasks.queue import rerank_queue_task
from inspection.tasks.scoring import predict_job_task, score_photos_task
from inspection.tasks.training import check_label_trigger, nightly_run, train_run

__all__ = [
    "check_label_trigger",
    "export_job",
    "import_job",
    "make_thumbnail",
    "nightly_run",
    "predict_job_task",
    "rerank_queue_task",
    "score_photos_task",
    "train_run",
]
