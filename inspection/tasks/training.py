"""Training tasks (queue `train`): thin; the work is in inspection.services.training.

The payload is the job id only. Late acks and idempotency by job id: a task
handed out again (a redelivery, a worker lost) for a finished job does nothing,
for a job another worker runs does nothing, and for a job this worker was running
when it died runs it once more (then fails it). One run at a time: while another
run is running anywhere, the task waits (a Celery retry after
RUSTWATCH_TRAIN_WAIT_S) instead of training beside it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings

from inspection.models import Job
from inspection.services import jobs
from inspection.services.training import cleanup_run, execute_run, maybe_start_label_run

log = logging.getLogger(__name__)

SOFT, HARD = settings.RUSTWATCH_JOB_TIME_LIMITS["train"]


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=SOFT,
    time_limit=HARD,
    max_retries=None,
    ignore_result=True,
)
def train_run(self, job_id: int) -> None:
    """Run the training run of job `job_id` (snapshot, train, evaluate, gate, deploy)."""
    try:
        job = jobs.claim_job(
            job_id,
            task_id=self.request.id or "",
            worker=self.request.hostname or "",
            exclusive=True,
        )
    except jobs.Busy:
        log.info("job %s waits: another training run is running", job_id)
        raise self.retry(countdown=settings.RUSTWATCH_TRAIN_WAIT_S) from None
    if job is None:
        return
    try:
        result = execute_run(job)
    except jobs.JobCancelled:
        cleanup_run(job)
        jobs.mark_cancelled(job)
        return
    except SoftTimeLimitExceeded:
        cleanup_run(job)
        jobs.fail_job(job, f"The run took longer than its time limit ({SOFT} s) and was stopped.")
        return
    except Exception as exc:
        log.exception("training run of job %s failed", job_id)
        cleanup_run(job)
        jobs.fail_job(job, f"{type(exc).__name__}: {exc}")
        return
    jobs.succeed_job(job, result)


@shared_task(acks_late=True, ignore_result=True)
def check_label_trigger() -> None:
    """Start a run when enough new human labels arrived (beat tick and after label saves)."""
    maybe_start_label_run()


@shared_task(acks_late=True, ignore_result=True)
def nightly_run() -> None:
    """The nightly run (django-celery-beat PeriodicTask "nightly training")."""
    from inspection.models import TrainingRun
    from inspection.services.training import active_run, start_run

    if active_run() is not None:
        log.info("nightly run skipped: a run is already queued or running")
        return
    start_run(user=None, trigger=TrainingRun.Trigger.NIGHTLY)


@worker_ready.connect
def _reap_on_start(sender=None, **_kwargs) -> None:
    """A worker that starts fails the runs a dead worker left running (its own name too)."""
    hostname = getattr(sender, "hostname", None)
    try:
        reaped = jobs.reap_lost_jobs(kinds=(Job.Kind.TRAIN,), worker=hostname)
    except Exception:  # the database may not be migrated yet
        log.exception("could not look for lost training runs")
        return
    if reaped:
        log.warning("failed %d training run(s) whose worker was lost: %s", len(reaped), reaped)
