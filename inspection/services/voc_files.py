"""The labelImg XML kept beside each stored image (photos/<sha[:2]>/<sha>.xml).

The rows make boxes queryable; the XML is the interchange format a person can
open in labelImg. Only human boxes and accepted model boxes are written:
suggestions are not annotations until a person accepts them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from inspection.models import Box, Photo
from ml.voc import VocAnnotation, VocBox, to_xml_bytes, write_atomic

log = logging.getLogger(__name__)


def voc_path(photo: Photo) -> Path:
    """Where the photo's VOC XML lives: next to the image, same stem, `.xml`."""
    return Path(photo.image.path).with_suffix(".xml")


def annotation_boxes(photo: Photo) -> list[Box]:
    """The boxes that count as annotations: human ones and accepted model ones."""
    return list(
        Box.objects.filter(photo_id=photo.pk)
        .exclude(source=Box.Source.MODEL, state__in=[Box.State.SUGGESTED, Box.State.REJECTED])
        .select_related("label")
        .order_by("id")
    )


def _depth(image_path: Path) -> int:
    """labelImg writes 1 for greyscale images and 3 otherwise."""
    try:
        with Image.open(image_path) as img:
            return 1 if img.mode in {"1", "L", "LA", "I", "I;16", "F"} else 3
    except OSError:
        return 3


def photo_annotation(
    photo: Photo, *, filename: str | None = None, folder: str | None = None, path: str | None = None
) -> VocAnnotation:
    """The photo's annotation in labelImg's fields (the stored file's name by default)."""
    image_path = Path(photo.image.path)
    return VocAnnotation(
        filename=filename if filename is not None else image_path.name,
        folder=folder if folder is not None else image_path.parent.name,
        path=path if path is not None else str(image_path.resolve()),
        width=photo.width,
        height=photo.height,
        depth=_depth(image_path),
        verified=photo.verified,
        boxes=[
            VocBox(
                xmin=b.xmin,
                ymin=b.ymin,
                xmax=b.xmax,
                ymax=b.ymax,
                name=b.label.name,
                difficult=b.difficult,
            )
            for b in annotation_boxes(photo)
        ],
    )


def write_photo_voc(photo: Photo) -> Path:
    """Rewrite the photo's XML atomically from its rows; call inside the transaction.

    If the surrounding transaction is rolled back afterwards, the previous XML
    is put back (see `restoring_voc`), so rows and file never disagree.
    """
    target = voc_path(photo)
    write_atomic(target, to_xml_bytes(photo_annotation(photo)))
    return target


@contextlib.contextmanager
def restoring_voc(photo: Photo) -> Iterator[None]:
    """Put the photo's previous XML back if the block (a transaction) fails."""
    target = voc_path(photo)
    previous = target.read_bytes() if target.exists() else None
    try:
        yield
    except BaseException:
        try:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                write_atomic(target, previous)
        except OSError:
            log.exception("could not restore %s after a failed save", target)
        raise
