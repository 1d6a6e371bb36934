"""Import and export as jobs: the format travels in the job, progress is per photo,
and a cancel stops an import between photos."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.errors import DomainError
from inspection.models import Job, Photo
from inspection.services.dataset_io import export_dataset
from inspection.services.job_files import run_export_job, run_import_job, start_export, start_import
from inspection.services.jobs import JobCancelled
from tests.inspection.test_formats import clear_photos

pytestmark = pytest.mark.django_db


def test_export_then_import_jobs_in_yolo_report_each_photo(
    annotated_photos, inspection, supervisor
):
    job = start_export(user=supervisor, inspection=inspection, format="coco")
    result = run_export_job(job)
    job.refresh_from_db()
    assert (job.progress_step, job.progress_total, job.progress["phase"]) == (3, 3, "export")
    assert (result["format"], result["photos"], result["boxes"]) == ("coco", 3, 4)
    with default_storage.open(result["file"], "rb") as fh:
        doc = json.loads(zipfile.ZipFile(fh).read("annotations/instances_default.json"))
    assert len(doc["images"]) == 3

    buf = io.BytesIO()
    export_dataset(buf, format="yolo", inspection=inspection)
    clear_photos()
    upload = SimpleUploadedFile("y.zip", buf.getvalue())
    job = start_import(upload=upload, user=supervisor, inspection=inspection, format="yolo")
    report = run_import_job(job)
    job.refresh_from_db()
    assert (report["format"], report["photos_created"], report["boxes"]) == ("yolo", 3, 4)
    assert (job.progress_step, job.progress_total) == (3, 3)


def test_cancelled_import_job_stops_between_photos(
    annotated_photos,
    inspection,
    supervisor,
    monkeypatch,
):
    from inspection.services import jobs

    buf = io.BytesIO()
    export_dataset(buf, format="voc", inspection=inspection)
    clear_photos()
    job = start_import(
        upload=SimpleUploadedFile("v.zip", buf.getvalue()), user=supervisor, inspection=inspection
    )
    report_progress = jobs.report_progress

    def cancel_after_the_first_photo(job, *, step=None, **kw):
        if step == 1:  # someone presses Cancel while photo 2 is read
            Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        report_progress(job, step=step, **kw)

    monkeypatch.setattr(jobs, "report_progress", cancel_after_the_first_photo)
    with pytest.raises(JobCancelled):
        run_import_job(job)
    assert Photo.objects.count() == 1  # the photo in hand went in; the rest did not


def test_unknown_format_is_refused_before_a_job_is_queued(supervisor):
    with pytest.raises(DomainError, match="Unknown format"):
        start_export(user=supervisor, format="csv")
    assert not Job.objects.exists()
