"""Celery tasks, one module per kind of work; thin, ids in payloads, idempotent.

Routing is by module (settings.CELERY_TASK_ROUTES): `training` runs on the `train`
queue, `scoring` on `predict`, everything else on `default`. Importing the modules
here registers their tasks for the worker (Celery autodiscovers `inspection.tasks`).
"""

from inspection.tasks.media import make_thumbnail

__all__ = ["make_thumbnail"]
