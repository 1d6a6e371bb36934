"""Import and export as jobs: the upload and the zip live in storage under `jobs/<id>/`.

The web process saves the upload (`start_import`) and answers 202 with the job; the
`default` worker imports it with `inspection.services.voc_io.import_voc`. An export job
writes its zip with `export_voc` into storage; the job's result names it for download.
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


def start_import(
    *,
    upload: Any,
    user: AbstractBaseUser,
    inspection: Inspection | None = None,
    inspection_name: str | None = None,
    asset_name: str | None = None,
) -> Job:
    """Keep the upload in storage and queue its import; returns the queued job."""
    from inspection.tasks.jobs import import_job

    with transaction.atomic():
        job = jobs.create_job(
            kind=Job.Kind.IMPORT,
            params={
                "inspection_id": inspection.pk if inspection else None,
                "inspection_name": inspection_name,
                "asset_name": asset_name,
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
    from inspection.services.voc_io import import_voc

    p = job.params
    inspection = Inspection.objects.filter(pk=p.get("inspection_id")).first()
    jobs.report_progress(job, step=0, total=1, phase="import")
    with default_storage.open(p["upload"], "rb") as fh:
        report = import_voc(
            fh,
            inspection=inspection,
            inspection_name=p.get("inspection_name"),
            asset_name=p.get("asset_name"),
            user=job.created_by,
        )
    default_storage.delete(p["upload"])
    return report.as_dict()


def start_export(
    *, user: AbstractBaseUser, inspection: Inspection | None = None, asset: Asset | None = None
) -> Job:
    """Queue an export of one inspection, one asset or everything."""
    from inspection.tasks.jobs import export_job

    with transaction.atomic():
        job = jobs.create_job(
            kind=Job.Kind.EXPORT,
            params={
                "inspection_id": inspection.pk if inspection else None,
                "asset_id": asset.pk if asset else None,
            },
            user=user,
        )
        jobs.enqueue_on_commit(job, export_job)
    return job


def run_export_job(job: Job) -> dict[str, Any]:
    from inspection.services.voc_io import export_voc

    p = job.params
    inspection = Inspection.objects.filter(pk=p.get("inspection_id")).first()
    asset = Asset.objects.filter(pk=p.get("asset_id")).first()
    jobs.report_progress(job, step=0, total=1, phase="export")
    with tempfile.TemporaryFile(suffix=".zip") as out:
        report = export_voc(out, inspection=inspection, asset=asset)
        out.seek(0)
        name = default_storage.save(f"jobs/{job.pk}/export.zip", File(out))
    return {"file": name, **{k: v for k, v in vars(report).items() if _jsonable(v)}}


def _jsonable(value: Any) -> bool:
    return isinstance(value, int | float | str | bool | list | dict) or value is None
