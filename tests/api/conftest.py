"""Fixtures of the API tests: real photos ingested through the services, token clients."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.models import Box, Label, Photo
from tests.conftest import jpeg_bytes, make_user


@pytest.fixture
def nobody(db):
    """A signed-in user in no role group."""
    return make_user("nora", None)


def scene_bytes(seed: int, size: tuple[int, int] = (200, 100), fmt: str = "JPEG") -> bytes:
    """A photo of a 'scene': random 8x8 blocks, so different seeds are not near-duplicates
    (solid colours all share one perceptual hash) while one seed at two sizes is."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    small = Image.new("RGB", (8, 8))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64)])
    buf = io.BytesIO()
    small.resize(size, Image.Resampling.BILINEAR).save(buf, fmt, quality=92)
    return buf.getvalue()


def ingest(inspection, user=None, *, name="p.jpg", seed=1, size=(200, 100)) -> Photo:
    """A real photo stored through the ingest service (validation, hashes, history)."""
    from inspection.services.photos import ingest_photo

    return ingest_photo(
        inspection=inspection,
        file=io.BytesIO(scene_bytes(seed, size)),
        filename=name,
        user=user,
    )


def add_suggestion(photo: Photo, **coords) -> Box:
    """A model box as the predict task will write it (there is no model in these tests)."""
    c = {"xmin": 10, "ymin": 10, "xmax": 50, "ymax": 40, **coords}
    return Box.objects.create(
        photo=photo,
        label=Label.objects.get(name="rust"),
        source=Box.Source.MODEL,
        state=Box.State.SUGGESTED,
        score=0.8,
        model_version="det-1",
        **c,
    )


@pytest.fixture
def photo(inspection, inspector) -> Photo:
    return ingest(inspection, inspector)


@pytest.fixture
def token_client(db):
    """token_client(user) -> an APIClient sending a real API token of `user` (None: anonymous)."""
    from rest_framework.test import APIClient

    from inspection.models import ApiToken

    def make(user):
        c = APIClient()
        if user is not None:
            _, key = ApiToken.objects.create(user=user, name=f"client {ApiToken.objects.count()}")
            c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return c

    return make


def voc_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


VOC_XML = """<annotation>
  <folder>imgs</folder><filename>{name}</filename><path>{name}</path>
  <source><database>Unknown</database></source>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object><name>rust</name><pose>Unspecified</pose><truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
</annotation>
"""


def labelimg_zip(n: int = 1) -> bytes:
    """A zip as labelImg leaves a folder: images with same-stem XML beside them."""
    files: dict[str, bytes] = {}
    for i in range(n):
        name = f"hull_{i}.jpg"
        files[f"imgs/{name}"] = jpeg_bytes(64, 48, color=(20 + 40 * i, 200 - 30 * i, 90))
        files[f"imgs/hull_{i}.xml"] = VOC_XML.format(name=name, w=64, h=48).encode()
    return voc_zip(files)


def post_job(client, path: str, data: dict, *, format: str):
    """POST an import or export; the job it answers with runs on commit (eager Celery here)."""
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(path, data, format=format)


def import_zip(client, data: bytes, name: str = "v.zip", **fields):
    """POST /api/v1/import/ with a zip: the response (202 with the job, or the refusal)."""
    upload = SimpleUploadedFile(name, data, content_type="application/zip")
    return post_job(client, "/api/v1/import/", {"file": upload, **fields}, format="multipart")


def finished_job(client, response) -> dict:
    """The job a 202 answered with, as it is now (after it ran)."""
    assert response.status_code == 202, response.content
    job = client.get(f"/api/v1/jobs/{response.json()['id']}/").json()
    assert job["state"] == "succeeded", job
    return job


def imported(client, data: bytes, **fields) -> dict:
    """Import a zip and return the import's report (the job's result)."""
    return finished_job(client, import_zip(client, data, **fields))["result"]


def exported(client, **fields):
    """Export as a job and download its zip: (the download response, the open zip)."""
    job = finished_job(client, post_job(client, "/api/v1/export/", fields, format="json"))
    download = client.get(job["file_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    return download, zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
