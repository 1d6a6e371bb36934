"""Media tasks: thumbnails (idempotent: late acks may run them twice)."""

from __future__ import annotations

import logging

from celery import shared_task

from inspection.models import Photo
from inspection.services.photos import render_thumbnail

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=False)
def make_thumbnail(photo_id: int) -> str:
    """Make the photo's thumbnail; returns its storage name ("" if the photo is gone)."""
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None:
        log.warning("thumbnail: photo %s no longer exists", photo_id)
        return ""
    return render_thumbnail(photo)
