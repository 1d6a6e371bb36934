"""Files under MEDIA_ROOT (photos, thumbnails, their XML), written atomically.

A reader (the web process serving an image, a worker making a thumbnail, an
export) sees the old file or the new one, never half of one: the bytes go to
a temp file in the same folder, are fsynced and renamed over the name
(`ml.voc.write_atomic`, the one atomic writer).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ml.voc import write_atomic


def media_file_mode() -> int:
    """The permissions of a stored file (Django's FILE_UPLOAD_PERMISSIONS, 0644 by default)."""
    return settings.FILE_UPLOAD_PERMISSIONS or 0o644


def write_media_path(path: Path, data: bytes) -> None:
    """Write a file at a path under MEDIA_ROOT atomically, readable like an upload."""
    write_atomic(path, data, mode=media_file_mode())


def write_media(name: str, data: bytes) -> None:
    """Write the storage file `name` atomically, replacing what is there."""
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:  # object storage: one PUT is all or nothing already
        if default_storage.exists(name):
            default_storage.delete(name)
        default_storage.save(name, ContentFile(data))
        return
    write_media_path(path, data)
