"""Import and export jobs (queue `default`): thin, by job id, idempotent."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from inspection.services import jobs
from inspection.services.job_files import run_export_job, run_import_job

log = logging.getLogger(__name__)

IMPORT_SOFT, IMPORT_HARD = settings.RUSTWATCH_JOB_TIME_LIMITS["import"]
EXPORT_SOFT, EXPORT_HARD = settings.RUSTWATCH_JOB_TIME_LIMITS["export"]


def _run(job_id: int, task_id: str, worker: str, work, limit: int) -> None:
    job = jobs.claim_job(job_id, task_id=task_id, worker=worker)
    if job is None:
        return
    try:
        result = work(job)
    except jobs.JobCancelled:
        jobs.mark_cancelled(job)
        return
    except SoftTimeLimitExceeded:
        jobs.fail_job(job, f"The job took longer than its time limit ({limit} s) and was stopped.")
        return
    except Exception as exc:
        log.exception("job %s failed", job_id)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        jobs.fail_job(job, message)
        return
    jobs.succeed_job(job, result)


@shared_task(bind=True, acks_late=True, soft_time_limit=IMPORT_SOFT, time_limit=IMPORT_HARD)
def import_job(self, job_id: int) -> None:
    """Import the VOC / COCO / YOLO upload of job `job_id`."""
    _run(job_id, self.request.id or "", self.request.hostname or "", run_import_job, IMPORT_SOFT)


@shared_task(bind=True, acks_late=True, soft_time_limit=EXPORT_SOFT, time_limit=EXPORT_HARD)
def export_job(self, job_id: int) -> None:
    """Write the export zip of job `job_id` into storage (downloaded from the job)."""
    _run(job_id, self.request.id or "", self.request.hostname or "", run_export_job, EXPORT_SOFT)
