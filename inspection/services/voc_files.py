"""The labelImg XML kept beside each stored image (photos/<sha[:2]>/<sha>.xml).

The rows make boxes queryable; the XML is the interchange format a person can
open in labelImg. Only human boxes and accepted model boxes are written:
suggestions are not annotations until a person accepts them.

The rows are the truth and the file follows them: `write_photo_voc` is the one
writer, and it renders the XML from the rows while holding the photo's row
lock, so two writers cannot interleave a read of the rows and a write of the
file. A change wraps its transaction in `voc_follows_rows`: if the change fails
(a stale version, bad boxes, a failed commit), the XML is rewritten from the
rows as they are then, under the lock, never from a copy taken before it.
`check_voc` (a management command) finds and repairs what a crash between the
file write and the commit can leave behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction
from PIL import Image

from inspection.models import Box, Photo
from inspection.selectors import LABEL_BOXES
from inspection.services.media import write_media_path
from ml.voc import VocAnnotation, VocBox, VocError, parse_voc, to_xml_bytes

log = logging.getLogger(__name__)


def voc_path(photo: Photo) -> Path:
    """Where the photo's VOC XML lives: next to the image, same stem, `.xml`."""
    return Path(photo.image.path).with_suffix(".xml")


def annotation_boxes(photo: Photo) -> list[Box]:
    """The boxes that count as annotations: human ones and accepted model ones."""
    return list(
        Box.objects.filter(LABEL_BOXES, photo_id=photo.pk).select_related("label").order_by("id")
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


def photo_voc_bytes(photo: Photo) -> bytes:
    """The XML the photo's rows say its file should hold (what `check_voc` compares)."""
    return to_xml_bytes(photo_annotation(photo))


def write_photo_voc(photo: Photo | int) -> Path | None:
    """Write the photo's XML from its rows, atomically, holding the photo's row lock.

    Inside a change's transaction (the lock already held) it writes the state
    about to be committed; on its own it writes the committed state. Returns
    the path, or None when the photo no longer exists.
    """
    pk = photo.pk if isinstance(photo, Photo) else photo
    with transaction.atomic():
        locked = Photo.objects.select_for_update().filter(pk=pk).first()
        if locked is None:
            return None
        target = voc_path(locked)
        write_media_path(target, photo_voc_bytes(locked))
    return target


@contextlib.contextmanager
def voc_follows_rows(photo: Photo | int) -> Iterator[None]:
    """Wrap a transaction that changes a photo's annotation (boxes, verified, verdict).

    If the block fails, the XML is rewritten from the rows as they are after
    the rollback, read under the row lock: a save that lost a race, or whose
    commit failed, never leaves its own (or a stale) file over the winner's.
    """
    pk = photo.pk if isinstance(photo, Photo) else photo
    try:
        yield
    except BaseException:
        try:
            write_photo_voc(pk)
        except (OSError, DatabaseError):
            log.exception(
                "photo %s: could not rewrite its XML after a failed change; "
                "`manage.py check_voc --repair` will",
                pk,
            )
        raise


# --- checking and repairing the files against the rows -----------------------------


@dataclass
class VocCheckReport:
    """What `check_voc` found (and, with repair, did); `problems` are the ones left."""

    photos: int = 0
    missing: list[int] = field(default_factory=list)  # photo ids without an XML
    differing: list[int] = field(default_factory=list)  # photo ids whose XML disagrees
    orphans: list[Path] = field(default_factory=list)  # XML files of no photo
    repaired: list[str] = field(default_factory=list)  # what --repair did, in words
    failed: list[str] = field(default_factory=list)  # repairs that did not work

    @property
    def problems(self) -> int:
        """How many problems remain after this run."""
        if self.repaired or self.failed:
            return len(self.failed)
        return len(self.missing) + len(self.differing) + len(self.orphans)


def _content(ann: VocAnnotation) -> tuple:
    """What must agree between file and rows: the image, its size, verified and the boxes."""
    boxes = sorted((b.xmin, b.ymin, b.xmax, b.ymax, b.name, b.difficult) for b in ann.boxes)
    return (ann.filename, ann.width, ann.height, ann.verified, boxes)


def _file_state(photo: Photo) -> str:
    """'ok', 'missing' or 'differs' for one photo's XML against its rows (as read now)."""
    target = voc_path(photo)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return "missing"
    try:
        on_disk = parse_voc(data, str(target), check_bounds=False)
    except VocError:
        return "differs"
    return "ok" if _content(on_disk) == _content(photo_annotation(photo)) else "differs"


def _settled_state(photo: Photo) -> str:
    """The state again under the row lock, so a save in progress is not reported."""
    with transaction.atomic():
        locked = Photo.objects.select_for_update().filter(pk=photo.pk).first()
        return "ok" if locked is None else _file_state(locked)


def check_voc_files(*, repair: bool = False) -> VocCheckReport:
    """Compare every photo's XML with its rows, and find XML files of no photo.

    With `repair`, a missing or disagreeing XML is rewritten from the rows
    (`write_photo_voc`, under the lock) and an XML of no photo is removed.
    """
    report = VocCheckReport()
    expected: set[Path] = set()
    for photo in Photo.objects.order_by("id").iterator(chunk_size=500):
        report.photos += 1
        expected.add(voc_path(photo).resolve())
        state = _file_state(photo)
        if state != "ok":
            state = _settled_state(photo)
        if state == "ok":
            continue
        (report.missing if state == "missing" else report.differing).append(photo.pk)
        if repair:
            try:
                write_photo_voc(photo)
                report.repaired.append(f"photo {photo.pk}: XML {state}, rewritten from its rows")
            except (OSError, DatabaseError) as exc:
                report.failed.append(f"photo {photo.pk}: XML {state}, not rewritten ({exc})")
    root = Path(settings.MEDIA_ROOT) / "photos"
    for xml in sorted(root.rglob("*.xml")) if root.is_dir() else []:
        if xml.resolve() in expected or xml.name.startswith("."):
            continue
        if Photo.objects.filter(sha256=xml.stem).exists():
            continue  # a photo uploaded while we looked
        report.orphans.append(xml)
        if repair:
            try:
                xml.unlink()
                report.repaired.append(f"{xml}: the XML of no photo, removed")
            except OSError as exc:
                report.failed.append(f"{xml}: the XML of no photo, not removed ({exc})")
    return report
