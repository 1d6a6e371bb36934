"""Import and export as jobs: the upload and the zip live in storage under `jobs/<id>/`.

The web process saves the upload (`start_import`) and answers 202 with the job; the
`default` worker imports it with `inspection.services.dataset_io.import_dataset`. An
export job writes its zip with `export_dataset` into storage; the job's result names it
for download. Both take a `format` (voc, coco, yolo) and report progress per photo.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from inspection.models import Asset, Inspection, Job
from inspection.services import jobs
from inspection.services.archives import open_source
from inspection.services.dataset_io import (
    Progress,
    export_dataset,
    format_module,
    import_dataset,
    import_target,
)


def start_import(
    *,
    upload: Any,
    user: AbstractBaseUser,
    inspection: Inspection | None = None,
    inspection_name: str | None = None,
    asset_name: str | None = None,
    format: str = "voc",
) -> Job:
    """Keep the upload in storage and queue its import; returns the queued job.

    What can be refused at once is refused here, as the same 4xx a person would get
    from the import itself, not as a failed job later: an unknown format, an unsafe
    or unreadable zip (400), an asset the user may not create (403).
    """
    from inspection.tasks.jobs import import_job

    format_module(format)
    with open_source(upload) as (_entries, display):
        pass  # the zip's directory is checked (no `..`, links, absurd sizes); nothing read
    upload.seek(0)
    with transaction.atomic():
        inspection = import_target(
            inspection=inspection,
            inspection_name=inspection_name,
            asset_name=asset_name,
            display=display,
            user=user,
        )
        job = jobs.create_job(
            kind=Job.Kind.IMPORT,
            params={
                "inspection_id": inspection.pk,
                "inspection_name": inspection_name,
                "asset_name": asset_name,
                "format": format,
                "filename": getattr(upload, "name", "") or "upload.zip",
            },
            user=user,
        )
        name = default_storage.save(f"jobs/{job.pk}/upload.zip", File(upload))
        job.params = {**job.params, "upload": name}
        job.save(update_fields=["params"])
        jobs.enqueue_on_commit(job, import_job)
    return job


def run_import_job(job: Job) -> dict[str, Any]:
    p = job.params
    inspection = Inspection.objects.filter(pk=p.get("inspection_id")).first()
    jobs.report_progress(job, step=0, total=1, phase="import")
    with default_storage.open(p["upload"], "rb") as fh:
        report = import_dataset(
            fh,
            format=p.get("format", "voc"),
            progress=_progress(job, "import"),
            inspection=inspection,
            inspection_name=p.get("inspection_name"),
            asset_name=p.get("asset_name"),
            user=job.created_by,
        )
    default_storage.delete(p["upload"])
    return report.as_dict()


def start_export(
    *,
    user: AbstractBaseUser,
    inspection: Inspection | None = None,
    asset: Asset | None = None,
    format: str = "voc",
) -> Job:
    """Queue an export of one inspection, one asset or everything."""
    from inspection.tasks.jobs import export_job

    format_module(format)
    with transaction.atomic():
        job = jobs.create_job(
            kind=Job.Kind.EXPORT,
            params={
                "inspection_id": inspection.pk if inspection else None,
                "asset_id": asset.pk if asset else None,
                "format": format,
            },
            user=user,
        )
        jobs.enqueue_on_commit(job, export_job)
    return job


def run_export_job(job: Job) -> dict[str, Any]:
    p = job.params
    inspection = Inspection.objects.filter(pk=p.get("inspection_id")).first()
    asset = Asset.objects.filter(pk=p.get("asset_id")).first()
    jobs.report_progress(job, step=0, total=1, phase="export")
    with tempfile.TemporaryFile(suffix=".zip") as out:
        report = export_dataset(
            out,
            format=p.get("format", "voc"),
            inspection=inspection,
            asset=asset,
            progress=_progress(job, "export"),
        )
        out.seek(0)
        name = default_storage.save(f"jobs/{job.pk}/export.zip", File(out))
    return {"file": name, **{k: v for k, v in vars(report).items() if _jsonable(v)}}


def _progress(job: Job, phase: str) -> Progress:
    """A dataset_io progress callback that records photo `done` of `total` on the job.

    It raises JobCancelled when someone cancelled the job: the import stops after the
    photo in hand (each photo is its own transaction, so what came in stays in).
    """

    def report(done: int, total: int) -> None:
        jobs.report_progress(job, step=done, total=total, phase=phase)

    return report


def _jsonable(value: Any) -> bool:
    return isinstance(value, int | float | str | bool | list | dict) or value is None
