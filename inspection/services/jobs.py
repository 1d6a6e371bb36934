"""Jobs: long work on a worker (training, import, export, re-scoring), seen live.

A job row is created by the web process and queued with its id only; the task
claims it (`claim_job`), reports progress and log lines, and ends it with
`succeed_job` / `fail_job`. Every step is idempotent by job id: a redelivered
task for a finished job, or for one another worker is running, does nothing.
Cancelling a queued job ends it at once; a running one is asked to stop
(`cancel_requested`) and stops at its next step (`check_cancel`).

A worker that dies (SIGKILL, lost machine) leaves its job "running" with a
heartbeat that stops moving: `reap_lost_jobs` fails such jobs in words, and
calls the kind's clean-up (e.g. removing a run's staging folders).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.utils import timezone

from inspection.errors import Conflict, DomainError
from inspection.models import Job, Role
from inspection.roles import has_role

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 8000
# A job whose worker died is run again once (the second attempt), then failed.
MAX_ATTEMPTS = 2


class JobCancelled(Exception):
    """Raised inside a task when a person cancelled its job; the task ends cleanly."""


class NotAllowed(DomainError):
    status = 403
    code = "permission_denied"


# Clean-up to run when a job of a kind is failed by `reap_lost_jobs` (kind -> fn(job)).
_LOST_HANDLERS: dict[str, Callable[[Job], None]] = {}


def on_job_lost(kind: str) -> Callable[[Callable[[Job], None]], Callable[[Job], None]]:
    """Register what to undo when a job of `kind` lost its worker."""

    def register(fn: Callable[[Job], None]) -> Callable[[Job], None]:
        _LOST_HANDLERS[kind] = fn
        return fn

    return register


def worker_name() -> str:
    """This process's name in job rows: the Celery hostname when set, else host:pid."""
    import os

    return os.environ.get("RUSTWATCH_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def create_job(
    *, kind: str, params: dict[str, Any] | None = None, user: AbstractBaseUser | None = None
) -> Job:
    """A queued job row (the caller enqueues its task on commit)."""
    if kind not in Job.Kind.values:
        raise DomainError(f"Unknown job kind {kind!r}.")
    job = Job(kind=kind, params=params or {}, created_by=user if user and user.pk else None)
    job.full_clean()
    job.save()
    return job


def enqueue_on_commit(job: Job, task: Any, **options: Any) -> None:
    """Send `task(job.id)` once the transaction that made the job commits."""

    def send() -> None:
        result = task.apply_async(args=[job.id], **options)
        Job.objects.filter(pk=job.pk, celery_task_id="").update(celery_task_id=result.id or "")

    transaction.on_commit(send)


class Busy(Exception):
    """Another job of the same exclusive kind is running: try again later."""


def claim_job(
    job_id: int, *, task_id: str = "", worker: str = "", exclusive: bool = False
) -> Job | None:
    """Mark a queued job running on this worker; None if there is nothing to do.

    Nothing to do: the job is gone, finished (a redelivery), or running with a
    fresh heartbeat on another worker. A job this same worker was running
    (its process was killed and the task handed out again) or whose heartbeat
    went stale is taken over once, then failed. With `exclusive`, raises Busy
    while another job of the kind runs (one training at a time, over all
    machines: the queued and running rows are locked while deciding).
    """
    worker = worker or worker_name()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.warning("job %s no longer exists", job_id)
            return None
        if job.finished:
            log.info("job %s is already %s; nothing to do", job_id, job.state)
            return None
        if job.state == Job.State.RUNNING:
            if job.worker != worker and not _stale(job):
                log.info("job %s is running on %s; not starting it twice", job_id, job.worker)
                return None
            if job.attempts >= MAX_ATTEMPTS:
                lost_job(job)
                return None
            log.warning(
                "job %s: attempt %d died on %s; running it again", job_id, job.attempts, job.worker
            )
            _run_lost_handler(job)
        if exclusive:
            others = list(
                Job.objects.select_for_update()
                .filter(kind=job.kind, state__in=[Job.State.QUEUED, Job.State.RUNNING])
                .exclude(pk=job.pk)
            )
            if any(o.state == Job.State.RUNNING and not _stale(o) for o in others):
                raise Busy(f"another {job.kind} job is running")
        now = timezone.now()
        job.state = Job.State.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.attempts += 1
        job.worker = worker
        if task_id:
            job.celery_task_id = task_id
        job.save(
            update_fields=[
                "state",
                "started_at",
                "heartbeat_at",
                "attempts",
                "worker",
                "celery_task_id",
            ]
        )
        return job


def _stale(job: Job) -> bool:
    limit = timedelta(seconds=settings.RUSTWATCH_JOB_STALE_S)
    return job.heartbeat_at is None or timezone.now() - job.heartbeat_at > limit


def report_progress(
    job: Job, *, step: int | None = None, total: int | None = None, **details: Any
) -> None:
    """Record step of total and live details (phase, epoch, loss); raises if cancelled."""
    update_progress(job, step=step, total=total, **details)
    check_cancel(job)


def update_progress(
    job: Job, *, step: int | None = None, total: int | None = None, **details: Any
) -> None:
    """Record step of total and live details, and refresh the heartbeat (no cancel check)."""
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if step is not None:
        fields["progress_step"] = job.progress_step = step
    if total is not None:
        fields["progress_total"] = job.progress_total = total
    if details:
        job.progress = merged_progress(job.progress, details)
        fields["progress"] = job.progress
    Job.objects.filter(pk=job.pk).update(**fields)


def merged_progress(progress: dict | None, details: dict[str, Any]) -> dict[str, Any]:
    """`details` over the job's progress; an epoch's loss is also kept in `losses`.

    `losses[i]` is epoch i + 1's loss (None for an epoch never reported), so the run
    page draws the whole curve whenever it is opened, not only the epochs it saw.
    """
    merged = {**(progress or {}), **details}
    epoch, loss = details.get("epoch"), details.get("loss")
    if isinstance(epoch, int) and epoch >= 1 and isinstance(loss, int | float):
        losses = list(merged.get("losses") or [])
        losses.extend([None] * (epoch - len(losses)))
        losses[epoch - 1] = float(loss)
        merged["losses"] = losses
    return merged


def append_log(job: Job, line: str) -> None:
    """Add a line to the job's log tail (the last LOG_TAIL_CHARS characters are kept)."""
    stamp = timezone.now().strftime("%H:%M:%S")
    job.log_tail = (job.log_tail + f"{stamp} {line}\n")[-LOG_TAIL_CHARS:]
    Job.objects.filter(pk=job.pk).update(log_tail=job.log_tail, heartbeat_at=timezone.now())
    log.info("job %s: %s", job.pk, line)


def stop_reason(job: Job) -> str | None:
    """Why a job must stop at its next step, in words; None while it may go on.

    The one rule every long job asks: a person asked it to stop (`cancel_requested`);
    or the job this worker claimed (`job.state` running here) is no longer running in
    the database (a reaper failed or re-queued it as lost while this worker went on),
    or was deleted, so it is no longer this worker's to run."""
    row = Job.objects.filter(pk=job.pk).values("cancel_requested", "state").first()
    if row is None:
        return "the job was deleted"
    if row["cancel_requested"]:
        return "cancelled"
    if job.state == Job.State.RUNNING and row["state"] != Job.State.RUNNING:
        return f"the job is no longer this worker's to run (it is {row['state']})"
    return None


def check_cancel(job: Job) -> None:
    """Raise JobCancelled if this running job must stop (see stop_reason)."""
    reason = stop_reason(job)
    if reason is not None:
        raise JobCancelled(f"job {job.pk}: {reason}")


def _finish(job: Job, state: str, **fields: Any) -> bool:
    """Move a running job to a final state; False if it was already finished."""
    updated = (
        Job.objects.filter(pk=job.pk)
        .exclude(state__in=Job.FINISHED)
        .update(state=state, finished_at=timezone.now(), **fields)
    )
    if updated:
        job.refresh_from_db()
    return bool(updated)


def succeed_job(job: Job, result: dict[str, Any] | None = None) -> bool:
    return _finish(job, Job.State.SUCCEEDED, result=result or {}, progress_step=job.progress_total)


def fail_job(job: Job, error: str) -> bool:
    """End a job as failed with `error`, a sentence a person can act on."""
    log.warning("job %s failed: %s", job.pk, error)
    return _finish(job, Job.State.FAILED, error=error[:4000])


def cancel_job(*, job: Job, user: AbstractBaseUser) -> Job:
    """Cancel: a queued job at once, a running one at its next step.

    Who started it, or a supervisor. A finished job cannot be cancelled (409).
    """
    if not (
        has_role(user, Role.SUPERVISOR) or (job.created_by_id and job.created_by_id == user.pk)
    ):
        raise NotAllowed("Only who started this job, or a supervisor, may cancel it.")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.finished:
            raise Conflict(f"The job is already {job.state}; there is nothing to cancel.")
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        if job.state == Job.State.QUEUED:
            job.state = Job.State.CANCELLED
            job.finished_at = timezone.now()
            job.error = f"Cancelled by {user.get_username()} before it started."
            job.save(update_fields=["state", "finished_at", "error"])
    return job


def mark_cancelled(job: Job) -> bool:
    return _finish(job, Job.State.CANCELLED, error="Cancelled while running.")


@contextmanager
def heartbeat(job: Job) -> Iterator[None]:
    """Keep the job's heartbeat fresh from a thread while long library calls run."""
    stop = threading.Event()
    every = max(1, settings.RUSTWATCH_JOB_HEARTBEAT_S)

    def beat() -> None:
        from django.db import connection

        try:
            while not stop.wait(every):
                try:
                    Job.objects.filter(pk=job.pk, state=Job.State.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as exc:  # busy database: the next beat tries again
                    log.warning("heartbeat of job %s: %s", job.pk, exc)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"job-{job.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


def reap_lost_jobs(*, kinds: tuple[str, ...] | None = None, worker: str | None = None) -> list[int]:
    """Fail running jobs whose worker is gone; returns their ids.

    Gone: the heartbeat is older than RUSTWATCH_JOB_STALE_S, or the job names
    `worker` (a worker that has just started under that name cannot be running it).
    """
    cutoff = timezone.now() - timedelta(seconds=settings.RUSTWATCH_JOB_STALE_S)
    qs = Job.objects.filter(state=Job.State.RUNNING)
    if kinds:
        qs = qs.filter(kind__in=kinds)
    lost = [
        j
        for j in qs
        if j.heartbeat_at is None or j.heartbeat_at < cutoff or (worker and j.worker == worker)
    ]
    return [job.pk for job in lost if lost_job(job)]


def lost_job(job: Job) -> bool:
    """Fail a job whose worker died, in words, and undo what it left; False if finished."""
    phase = (job.progress or {}).get("phase", "its work")
    failed = fail_job(
        job,
        f"The worker running it ({job.worker or 'unknown'}) stopped during {phase} "
        f"(killed or lost, attempt {job.attempts}); nothing it made was kept, and the "
        "deployed model is unchanged.",
    )
    if failed:
        _run_lost_handler(job)
    return failed


def _run_lost_handler(job: Job) -> None:
    handler = _LOST_HANDLERS.get(job.kind)
    if handler is not None:
        try:
            handler(job)
        except Exception:  # clean-up must not stop the reaper
            log.exception("clean-up of lost job %s failed", job.pk)
