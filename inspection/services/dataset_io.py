"""Import and export of annotated photo sets: Pascal VOC, COCO JSON and YOLO (Ultralytics).

The one entry point per direction, used by the API, the management commands and
background jobs alike:

    import_dataset(source, format="voc" | "coco" | "yolo", ...) -> ImportReport
    export_dataset(out, format=..., inspection=..., asset=...) -> ExportReport

Both take an optional `progress(done, total)` callback. A format module
(`voc_io`, `coco_io`, `yolo_io`) only knows its files: `read_items` turns the
checked entries of a source (see `archives`) into images with their boxes, and
`write_zip` lays out a selection. Everything else is here, once for all formats:
each image is ingested like an upload (validated, deduplicated, near-duplicates
linked), its boxes and verdict are saved through the same services as an edit
in the browser (history and XML follow), and an export's boxes are those of
`voc_files.photo_annotation`, the one rule for which boxes count as the
annotation (human boxes and accepted suggestions).
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import ExifTags, Image, UnidentifiedImageError

from inspection.errors import DomainError, DuplicatePhoto, InvalidArchive
from inspection.models import Asset, Inspection, Label, Photo, PhotoEvent, Verdict
from inspection.services.archives import Entry, open_source
from inspection.services.boxes import annotation_state, save_boxes
from inspection.services.catalog import get_or_create_inspection
from inspection.services.photos import ingest_photo, set_verdict
from inspection.services.voc_files import photo_annotation
from ml.voc import VocAnnotation, VocBox, VocError, check_box

log = logging.getLogger(__name__)

FORMATS = ("voc", "coco", "yolo")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
# progress(done, total): called after each photo of an import or an export.
Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What an import did; `errors` name each file that was skipped and why."""

    photos_created: int = 0
    duplicates: int = 0
    boxes: int = 0
    verdicts: int = 0
    errors: list[str] = field(default_factory=list)
    # One line per duplicate file: which existing photo it is.
    duplicate_files: list[str] = field(default_factory=list)
    near_duplicates: int = 0
    # Things a person should know that are not failures (e.g. labels added).
    notes: list[str] = field(default_factory=list)
    inspection_id: int | None = None
    format: str = "voc"

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "photos_created": self.photos_created,
            "duplicates": self.duplicates,
            "boxes": self.boxes,
            "verdicts": self.verdicts,
            "near_duplicates": self.near_duplicates,
            "errors": list(self.errors),
            "duplicate_files": list(self.duplicate_files),
            "notes": list(self.notes),
            "inspection_id": self.inspection_id,
        }


@dataclass
class ExportReport:
    photos: int = 0
    boxes: int = 0
    format: str = "voc"
    labels: list[str] = field(default_factory=list)


# --- what a format module reads and writes ---------------------------------------


@dataclass
class ImportItem:
    """One image of a source and how to get its annotation.

    `load(image_bytes)` returns the boxes in pixels of the image as the labeller
    saw it (None: no annotation file), or raises VocError naming the file; the
    image is then skipped.
    """

    image: Entry
    load: Callable[[bytes], VocAnnotation | None]
    verdict: str | None = None
    annotation_name: str = ""


@dataclass
class SourceItems:
    """What a format found in a source: its images, files it skipped, label colours."""

    items: list[ImportItem]
    errors: list[str] = field(default_factory=list)
    colors: dict[str, str] = field(default_factory=dict)  # label -> "#rrggbb" where declared


@dataclass
class ExportPhoto:
    """A photo of an export: its unique stem and file name, and its annotation."""

    photo: Photo
    stem: str
    image_name: str
    annotation: VocAnnotation

    def image_bytes(self) -> bytes:
        with default_storage.open(self.photo.image.name, "rb") as fh:
            return fh.read()


def format_module(name: str) -> ModuleType:
    """The module that reads and writes `name`; an unknown format is a 400."""
    if name == "voc":
        from inspection.services import voc_io as module
    elif name == "coco":
        from inspection.services import coco_io as module
    elif name == "yolo":
        from inspection.services import yolo_io as module
    else:
        raise DomainError(
            f"Unknown format {name!r}; use one of: {', '.join(FORMATS)}.", field="format"
        )
    return module


def is_image(path: Any) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


# --- EXIF: boxes drawn on the raw frame follow the photo when it is made upright ---

_TRANSFORMS: dict[int, Callable[[VocBox, int, int], tuple[int, int, int, int]]] = {
    2: lambda b, w, h: (w - b.xmax, b.ymin, w - b.xmin, b.ymax),
    3: lambda b, w, h: (w - b.xmax, h - b.ymax, w - b.xmin, h - b.ymin),
    4: lambda b, w, h: (b.xmin, h - b.ymax, b.xmax, h - b.ymin),
    5: lambda b, w, h: (b.ymin, b.xmin, b.ymax, b.xmax),
    6: lambda b, w, h: (h - b.ymax, b.xmin, h - b.ymin, b.xmax),
    7: lambda b, w, h: (h - b.ymax, w - b.xmax, h - b.ymin, w - b.xmin),
    8: lambda b, w, h: (b.ymin, w - b.xmax, b.ymax, w - b.xmin),
}


def raw_frame(data: bytes) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) of the file as written, from its header."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)
            return img.width, img.height, orientation
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return 0, 0, 1


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) of the image once EXIF orientation is applied (as it is stored)."""
    width, height, orientation = raw_frame(data)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _boxes_for_photo(ann: VocAnnotation, photo: Photo, data: bytes, source: str) -> list[VocBox]:
    """The annotation's boxes in the stored (upright) photo's pixels, checked."""
    if (ann.width, ann.height) == (photo.width, photo.height):
        boxes = ann.boxes
    else:
        raw_w, raw_h, orientation = raw_frame(data)
        if orientation in _TRANSFORMS and (ann.width, ann.height) == (raw_w, raw_h):
            boxes = []
            for b in ann.boxes:
                xmin, ymin, xmax, ymax = _TRANSFORMS[orientation](b, raw_w, raw_h)
                boxes.append(VocBox(xmin, ymin, xmax, ymax, b.name, b.difficult))
        else:
            raise VocError(
                f"{source}: the annotation says {ann.width}x{ann.height} but the image is "
                f"{photo.width}x{photo.height}"
            )
    for i, box in enumerate(boxes):
        check_box(box, photo.width, photo.height, f"{source}: object {i}")
    return boxes


def _labels_for(
    boxes: list[VocBox], source: str, report: ImportReport, colors: dict[str, str]
) -> None:
    """Create labels the source uses that the table does not know yet."""
    known = set(Label.objects.values_list("name", flat=True))
    for name in sorted({b.name for b in boxes} - known):
        if slugify(name) != name:
            raise VocError(f"{source}: class name {name!r} is not a valid label name")
        defaults = {"color": colors[name]} if name in colors else {}
        Label.objects.get_or_create(name=name, defaults=defaults)
        report.notes.append(f"{source}: new label '{name}' was added to the label table.")


# --- import ----------------------------------------------------------------------


def import_target(
    *,
    inspection: Inspection | None,
    inspection_name: str | None,
    asset_name: str | None,
    display: str,
    user: AbstractBaseUser | None,
) -> Inspection:
    """The inspection an import goes into: `inspection`, or the named one (created if missing).

    A new inspection named by the caller gets an asset of the same name; without a
    name, the source's name and today's date under the asset "Imports". Forbidden
    (403) when `user` may not create the missing asset.
    """
    if inspection is not None:
        return inspection
    return get_or_create_inspection(
        asset_name=asset_name or inspection_name or "Imports",
        inspection_name=inspection_name
        or f"{Path(display).stem or 'import'} {timezone.localdate():%Y-%m-%d}",
        user=user,
    )


def import_dataset(
    source: Path | str | IO[bytes],
    *,
    format: str = "voc",
    inspection: Inspection | None = None,
    inspection_name: str | None = None,
    asset_name: str | None = None,
    user: AbstractBaseUser | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a folder or zip in `format` into an inspection; returns what happened.

    Into `inspection`, or the one named `inspection_name` of asset `asset_name`
    (created when missing; a missing asset only for a supervisor or user=None,
    the command line). A file that cannot be imported is skipped and named in
    `errors`; the rest go in. Raises InvalidArchive for an unsafe or unreadable
    source, Forbidden when the user may not create the asset.
    """
    module = format_module(format)
    with open_source(source) as (entries, display):
        found: SourceItems = module.read_items(entries)
        if not found.items:
            raise InvalidArchive(
                f"{display}: no JPEG, PNG or WebP images found for the {format} format."
            )
        inspection = import_target(
            inspection=inspection,
            inspection_name=inspection_name,
            asset_name=asset_name,
            display=display,
            user=user,
        )
        report = ImportReport(errors=list(found.errors), inspection_id=inspection.pk, format=format)
        total = len(found.items)
        for done, item in enumerate(found.items, 1):
            _import_one(item, inspection=inspection, user=user, report=report, colors=found.colors)
            if progress is not None:
                progress(done, total)
    log.info(
        "import %s (%s): %d photos, %d duplicates, %d boxes, %d verdicts, %d errors",
        display,
        format,
        report.photos_created,
        report.duplicates,
        report.boxes,
        report.verdicts,
        len(report.errors),
    )
    return report


def _import_one(
    item: ImportItem,
    *,
    inspection: Inspection,
    user: AbstractBaseUser | None,
    report: ImportReport,
    colors: dict[str, str],
) -> None:
    source = item.image.path.as_posix()
    ann_source = item.annotation_name or source
    if item.image.size > settings.RUSTWATCH_MAX_UPLOAD_BYTES:
        report.errors.append(
            f"{source}: {item.image.size:,} bytes is over the upload limit; skipped."
        )
        return
    try:
        data = item.image.read()
        ann = item.load(data)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        report.errors.append(f"{source}: cannot be read from the archive ({exc}); skipped.")
        return
    except VocError as exc:
        report.errors.append(f"{exc}; skipped.")
        return

    stored: list[str] = []
    try:
        with transaction.atomic():
            created = True
            try:
                photo = ingest_photo(
                    inspection=inspection,
                    file=io.BytesIO(data),
                    filename=item.image.path.name,
                    user=user,
                    action=PhotoEvent.Action.IMPORT,
                )
                stored.append(photo.image.name)
            except DuplicatePhoto as dup:
                created = False
                photo = Photo.objects.get(pk=dup.extra["photo_id"])
                report.duplicates += 1
                report.duplicate_files.append(f"{source}: {dup.message}")
            # The class folder's verdict first: it is a person's choice, which the
            # boxes saved next then leave alone (boxes.verdict_follows_boxes).
            n_verdicts = 0
            if item.verdict and (created or photo.verdict == Verdict.UNKNOWN):
                if photo.verdict != item.verdict:
                    photo = set_verdict(photo=photo, verdict=item.verdict, user=user)
                    n_verdicts = 1
            n_boxes = 0
            if ann is not None:
                boxes = _boxes_for_photo(ann, photo, data, ann_source)
                _labels_for(boxes, ann_source, report, colors)
                # A duplicate only gains boxes if it has none yet: never overwrite work.
                if boxes and (created or not annotation_state(photo)["boxes"]):
                    photo = save_boxes(
                        photo=photo,
                        boxes=[
                            {
                                "xmin": b.xmin,
                                "ymin": b.ymin,
                                "xmax": b.xmax,
                                "ymax": b.ymax,
                                "label": b.name,
                                "difficult": b.difficult,
                            }
                            for b in boxes
                        ],
                        user=user,
                        expected_version=photo.version,
                        verified=ann.verified or None,
                        action=PhotoEvent.Action.IMPORT,
                    )
                    n_boxes = len(boxes)
    except (DomainError, VocError) as exc:
        _remove_files(stored)
        message = exc.message if isinstance(exc, DomainError) else str(exc)
        report.errors.append(f"{source}: {message}; skipped.")
        return
    except BaseException:
        _remove_files(stored)
        raise
    if created:
        report.photos_created += 1
        if photo.near_duplicate_of_id:
            report.near_duplicates += 1
    report.boxes += n_boxes
    report.verdicts += n_verdicts


def _remove_files(names: list[str]) -> None:
    """Undo the files of a photo whose rows were rolled back."""
    for name in names:
        try:
            default_storage.delete(name)
            xml = Path(default_storage.path(name)).with_suffix(".xml")
            xml.unlink(missing_ok=True)
        except (OSError, NotImplementedError):
            log.exception("could not remove %s after a failed import", name)


# --- export ----------------------------------------------------------------------

_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


def _stems(photos: list[Photo]) -> dict[int, str]:
    """A unique, filesystem-safe stem per photo: its original name where possible."""
    stems: dict[int, str] = {}
    used: set[str] = set()
    for photo in photos:
        original = Path(photo.original_name).stem if photo.original_name else ""
        stem = _SAFE_STEM.sub("_", original).strip("._") or str(photo.pk)
        if stem.lower() in used:
            stem = f"{stem}-{photo.pk}"
        used.add(stem.lower())
        stems[photo.pk] = stem
    return stems


def export_labels() -> list[Label]:
    """Every label, oldest first: class ids (COCO, YOLO) stay put when labels are added."""
    return list(Label.objects.order_by("id"))


def export_dataset(
    out: Path | str | IO[bytes],
    *,
    format: str = "voc",
    inspection: Inspection | None = None,
    asset: Asset | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write a zip in `format` of an inspection, an asset or everything.

    Every photo of the selection is in it, with or without boxes; its boxes are
    those that count as the annotation (`photo_annotation`: human and accepted
    ones). A path is written atomically (temp file + rename).
    """
    module = format_module(format)
    photos_qs = Photo.objects.select_related("inspection").order_by("id")
    if inspection is not None:
        photos_qs = photos_qs.filter(inspection=inspection)
    if asset is not None:
        photos_qs = photos_qs.filter(inspection__asset=asset)
    photos = list(photos_qs)
    stems = _stems(photos)
    report = ExportReport(format=format)
    labels = export_labels()
    report.labels = [label.name for label in labels]

    def write(fh: IO[bytes]) -> None:
        chosen = []
        for photo in photos:
            stem = stems[photo.pk]
            image_name = f"{stem}{Path(photo.image.name).suffix or '.jpg'}"
            annotation = photo_annotation(photo, filename=image_name, folder="", path=image_name)
            chosen.append(ExportPhoto(photo, stem, image_name, annotation))

        def tick(done: int) -> None:
            if progress is not None:
                progress(done, len(chosen))

        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            module.write_zip(zf, chosen, labels, tick)
        report.photos = len(chosen)
        report.boxes = sum(len(p.annotation.boxes) for p in chosen)

    if isinstance(out, str | os.PathLike):
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        write(out)
    log.info("export (%s): %d photos, %d boxes", format, report.photos, report.boxes)
    return report
