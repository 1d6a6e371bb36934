"""A real Celery worker process makes the thumbnail of an uploaded photo.

Not eager: the upload commits, the thumbnail task goes through the broker
(the embedded filesystem broker, and Redis), a separate `celery worker`
process picks it up, renders the thumbnail into MEDIA_ROOT and saves the row.
"""

from __future__ import annotations

import io

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from tests.conftest import jpeg_bytes
from tests.integration.conftest import wait_for

WORKER_DEADLINE_S = 120  # worker start-up on a busy 2-core machine included

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def upload_and_wait_for_thumbnail(worker, settings) -> None:
    from inspection.models import Asset, Inspection, Photo
    from inspection.services.photos import ingest_photo

    asset = Asset.objects.create(name="Tank 3", kind="tank")
    inspection = Inspection.objects.create(asset=asset, name="worker check")
    photo = ingest_photo(
        inspection=inspection,
        file=ContentFile(jpeg_bytes(1200, 800, color=(150, 60, 20)), name="tank.jpg"),
        filename="tank.jpg",
        user=None,
    )
    assert photo.thumbnail.name == ""  # nothing ran in-process

    def thumbnail_done() -> str:
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        return Photo.objects.get(pk=photo.pk).thumbnail.name

    try:
        name = wait_for(thumbnail_done, timeout=WORKER_DEADLINE_S, what="the thumbnail")
    except TimeoutError as exc:
        pytest.fail(f"{exc}\nworker log:\n{worker.log_tail()}")

    path = settings.MEDIA_ROOT / name
    assert path.is_file(), f"thumbnail row says {name} but no file in {settings.MEDIA_ROOT}"
    with Image.open(io.BytesIO(path.read_bytes())) as thumb:
        thumb.load()
        assert max(thumb.size) <= settings.RUSTWATCH_THUMBNAIL_SIZE
        assert thumb.size[0] > thumb.size[1]  # the photo's landscape shape is kept
    assert "make_thumbnail" in worker.log_tail(20000)


def test_worker_process_makes_thumbnail_over_filesystem_broker(celery_worker_process, settings):
    worker = celery_worker_process("filesystem://")
    upload_and_wait_for_thumbnail(worker, settings)


def test_worker_process_makes_thumbnail_over_redis(celery_worker_process, redis_test_url, settings):
    worker = celery_worker_process(redis_test_url)
    upload_and_wait_for_thumbnail(worker, settings)
