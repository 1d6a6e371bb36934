"""The prediction API's work: photos in, rust probability and boxes out, on a `predict` worker.

The web process validates the image exactly as an upload is validated, keeps it
in the media storage (a temporary name, or a stored photo of an inspection when
the client asks to keep it), creates a Job of kind `predict` with the storage
names only, and waits a few seconds for the worker's answer. TensorFlow never
loads in the web process.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from inspection.errors import DomainError, DuplicatePhoto
from inspection.models import DeployedModel, Inspection, Job, Photo
from inspection.services.history import actor_or_none
from inspection.services.photos import ingest_photo, read_upload, validate_image

log = logging.getLogger(__name__)

__all__ = [
    "NoModelDeployed",
    "prediction_result",
    "request_prediction",
    "run_prediction_job",
    "wait_for_job",
]

TEMP_PREFIX = "predict"


class NoModelDeployed(DomainError):
    """Nothing to predict with yet: no classifier or detector is deployed."""

    status = 503
    code = "no_model"


def request_prediction(
    *,
    files: list[tuple[Any, str]],
    user: AbstractBaseUser | None,
    inspection: Inspection | None = None,
) -> Job:
    """Validate the images, keep them in storage and queue a `predict` job for them.

    With `inspection`, each image is stored as a photo of it through the normal
    upload service (a photo uploaded before is predicted as it is), and the job's
    answer is stored as its suggestions: the photo is scored once, not once for the
    answer and again by the upload's scoring task. A bad image is the upload's 4xx,
    naming the file; then nothing is queued or kept.
    """
    if not files:
        raise DomainError("Attach an image to predict.", field="image")
    if not DeployedModel.objects.exists():
        raise NoModelDeployed(
            "No model is deployed yet: train and deploy one, then ask again.",
        )
    checked = [
        (validate_image(read_upload(file), filename=name), name) for file, name in files
    ]  # every file before anything is kept
    images: list[dict[str, Any]] = []
    try:
        for image, name in checked:
            if inspection is not None:
                try:
                    photo = ingest_photo(
                        inspection=inspection,
                        file=ContentFile(image.data, name=name),
                        filename=name,
                        user=user,
                        score=False,  # the job's answer becomes its suggestions
                    )
                    stored = True
                except DuplicatePhoto as dup:
                    photo = Photo.objects.get(pk=dup.extra["photo_id"])
                    stored = False
                images.append(
                    {
                        "name": photo.image.name,
                        "sha256": photo.sha256,
                        "filename": name,
                        "photo": photo.pk,
                        "stored": stored,
                        "temporary": False,
                    }
                )
            else:
                temp = f"{TEMP_PREFIX}/{uuid.uuid4().hex}.{image.extension}"
                temp = default_storage.save(temp, ContentFile(image.data))
                images.append(
                    {
                        "name": temp,
                        "sha256": image.sha256,
                        "filename": name,
                        "photo": None,
                        "stored": False,
                        "temporary": True,
                    }
                )
        with transaction.atomic():
            job = Job.objects.create(
                kind=Job.Kind.PREDICT,
                params={"images": images},
                progress_total=len(images),
                created_by=actor_or_none(user),
            )
            transaction.on_commit(lambda: _send(job.pk), robust=True)
    except BaseException:
        for item in images:
            if item["temporary"]:
                default_storage.delete(item["name"])
        _score_later([item["photo"] for item in images if item["stored"]])
        raise
    return job


def _score_later(photo_ids: list[int]) -> None:
    """Photos kept for a prediction that will not answer: score them the usual way."""
    from inspection.services.suggestions import schedule_scoring

    if photo_ids:
        schedule_scoring(photo_ids, reason="prediction not answered")


def _send(job_id: int) -> None:
    from inspection.tasks.scoring import predict_job_task

    result = predict_job_task.delay(job_id)
    Job.objects.filter(pk=job_id, celery_task_id="").update(celery_task_id=result.id or "")


def wait_for_job(job: Job, timeout: float | None = None) -> Job:
    """The job after it finished, or as it is after `timeout` seconds (polling the row)."""
    timeout = settings.RUSTWATCH_PREDICT_WAIT_S if timeout is None else timeout
    deadline = time.monotonic() + timeout
    interval = 0.02
    while True:
        job.refresh_from_db()
        if job.finished or time.monotonic() >= deadline:
            return job
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.25)


def prediction_result(job: Job) -> dict[str, Any]:
    """The job as the API shows it: state, and the predictions once it succeeded."""
    return {
        "job": job.pk,
        "state": job.state,
        "error": job.error,
        "predictions": job.result.get("predictions", []) if job.result else [],
        "model_versions": job.result.get("model_versions", {}) if job.result else {},
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


# --- the worker side ------------------------------------------------------------------------------


def run_prediction_job(job_id: int) -> str:
    """Predict the job's images with the deployed models; idempotent by job id."""
    from inspection.services.suggestions import predict_files, store_prediction
    from inspection.serving import deployed_models, local_file

    job = Job.objects.filter(pk=job_id, kind=Job.Kind.PREDICT).first()
    if job is None:
        log.warning("predict job %s no longer exists", job_id)
        return "missing"
    if job.finished:
        return job.state
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING,
        started_at=timezone.now(),
        attempts=job.attempts + 1,
        worker=socket.gethostname(),
    )
    images = job.params.get("images", [])
    t0 = time.perf_counter()
    try:
        models = deployed_models()
        if models.empty:
            raise NoModelDeployed("No model is deployed any more; ask again after a deploy.")
        import contextlib

        with contextlib.ExitStack() as stack:
            paths = [stack.enter_context(local_file(item["name"])) for item in images]
            predictions = predict_files(paths, [item["sha256"] for item in images], models)
        threshold = (
            float(models.classifier.model.threshold) if models.classifier is not None else None
        )
        floor = settings.RUSTWATCH_SUGGESTION_MIN_SCORE
        out = []
        kept = {
            p.pk: p for p in Photo.objects.filter(pk__in=[i["photo"] for i in images if i["photo"]])
        }
        for item, pred in zip(images, predictions, strict=True):
            if item["photo"] in kept:  # a photo of an inspection: the answer is its suggestion
                store_prediction(kept[item["photo"]], pred)
            boxes = [
                {
                    "xmin": round(float(b[0]), 1),
                    "ymin": round(float(b[1]), 1),
                    "xmax": round(float(b[2]), 1),
                    "ymax": round(float(b[3]), 1),
                    "score": round(float(s), 4),
                }
                for b, s in zip(pred.boxes, pred.box_scores, strict=True)
                if s >= floor
            ][: settings.RUSTWATCH_SUGGESTION_MAX_BOXES]
            verdict = None
            if pred.prob is not None and threshold is not None:
                verdict = "rust" if pred.prob >= threshold else "norust"
            out.append(
                {
                    "filename": item["filename"],
                    "photo": item["photo"],
                    "stored": item["stored"],
                    "rust_probability": None if pred.prob is None else round(pred.prob, 4),
                    "threshold": threshold,
                    "verdict": verdict,
                    "boxes": boxes,
                }
            )
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.SUCCEEDED,
            result={
                "predictions": out,
                "model_versions": models.versions(),
                "seconds": round(time.perf_counter() - t0, 3),
            },
            progress_step=len(images),
            finished_at=timezone.now(),
        )
        return Job.State.SUCCEEDED
    except Exception as exc:
        log.exception("predict job %s failed", job.pk)
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        Job.objects.filter(pk=job.pk).update(
            state=Job.State.FAILED, error=message[:2000], finished_at=timezone.now()
        )
        _score_later([item["photo"] for item in images if item.get("stored")])
        return Job.State.FAILED
    finally:
        for item in images:
            if item.get("temporary"):
                default_storage.delete(item["name"])
