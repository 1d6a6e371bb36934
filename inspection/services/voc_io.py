"""Pascal VOC import (labelImg folders, zips, class folders) and export (VOC zips).

Import reads a folder or a zip without trusting it: zip entries with `..`,
absolute paths or links, too many entries, absurd sizes or compression ratios
are refused before anything is read; XML goes through `ml.voc` (entities and
network off). Each image is ingested like an upload (validated, deduplicated,
near-duplicates linked) and its boxes and verdict are saved through the same
services as an edit in the browser, so history and XML files follow.

Export writes JPEGImages/, Annotations/ and ImageSets/Main/ into a zip that
labelImg, VOC tools and this importer all read.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
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
from inspection.services.boxes import annotation_state, save_boxes
from inspection.services.catalog import get_or_create_inspection
from inspection.services.photos import ingest_photo, set_verdict
from inspection.services.voc_files import photo_annotation, voc_path
from ml.voc import VocAnnotation, VocBox, VocError, check_box, parse_voc, to_xml_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
# Class folders whose name gives the photos in them a verdict.
VERDICT_FOLDERS = {"rust": Verdict.RUST, "norust": Verdict.NORUST}
# A zip entry that inflates more than this many times is a zip bomb, not a photo set.
MAX_COMPRESSION_RATIO = 200
MAX_XML_BYTES = 5 * 1024 * 1024


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

    def as_dict(self) -> dict[str, Any]:
        return {
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


# --- reading a source: a folder or a zip, as {relative posix path: reader} ---------


@dataclass(frozen=True)
class _Entry:
    path: PurePosixPath
    size: int
    read: Callable[[], bytes]


def _limit_bytes() -> int:
    return settings.RUSTWATCH_MAX_IMPORT_BYTES


def _max_entries() -> int:
    return getattr(settings, "RUSTWATCH_MAX_IMPORT_ENTRIES", 50_000)


def _is_hidden(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts)


def _safe_member_name(name: str) -> PurePosixPath:
    """The entry's path, or InvalidArchive if it could escape the import (`..`, absolute)."""
    normalised = name.replace("\\", "/")
    if (
        normalised.startswith("/")
        or re.match(r"^[A-Za-z]:", normalised)
        or "\x00" in normalised
        or any(part == ".." for part in normalised.split("/"))
    ):
        raise InvalidArchive(f"Unsafe path in the archive: {name!r} (absolute or uses '..').")
    return PurePosixPath(posixpath.normpath(normalised))


def _zip_entries(zf: zipfile.ZipFile) -> list[_Entry]:
    """Check every entry of the zip before reading any; return the files to read."""
    infos = zf.infolist()
    if len(infos) > _max_entries():
        raise InvalidArchive(
            f"The archive has {len(infos):,} entries; at most {_max_entries():,} are accepted."
        )
    total = 0
    entries: list[_Entry] = []
    for info in infos:
        path = _safe_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidArchive(
                f"The archive entry {info.filename!r} is a link; links are refused."
            )
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise InvalidArchive(f"The archive entry {info.filename!r} is encrypted.")
        total += info.file_size
        if total > _limit_bytes():
            raise InvalidArchive(
                f"The archive unpacks to more than {_limit_bytes():,} bytes; that is refused."
            )
        if info.file_size > 1024 * 1024 and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise InvalidArchive(
                f"The archive entry {info.filename!r} inflates {info.file_size:,} bytes from "
                f"{info.compress_size:,}: refused as a zip bomb."
            )
        if _is_hidden(path):
            continue

        def read(info: zipfile.ZipInfo = info) -> bytes:
            # zipfile stops at the declared size and checks the CRC, so a lying
            # header cannot make this read more than was checked above.
            with zf.open(info) as fh:
                return fh.read()

        entries.append(_Entry(path=path, size=info.file_size, read=read))
    return entries


def _folder_entries(root: Path) -> list[_Entry]:
    """Every regular file under the folder (links are not followed)."""
    entries: list[_Entry] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if name.startswith(".") or full.is_symlink() or not full.is_file():
                continue
            size = full.stat().st_size
            total += size
            if total > _limit_bytes():
                raise InvalidArchive(
                    f"The folder holds more than {_limit_bytes():,} bytes; that is refused."
                )
            if len(entries) >= _max_entries():
                raise InvalidArchive(f"The folder holds more than {_max_entries():,} files.")
            rel = PurePosixPath(full.relative_to(root).as_posix())
            entries.append(_Entry(path=rel, size=size, read=full.read_bytes))
    return entries


# --- pairing images with annotations and verdicts --------------------------------


@dataclass
class _Item:
    image: _Entry
    xml: _Entry | None
    verdict: str | None


def _verdict_from_path(path: PurePosixPath) -> str | None:
    for part in reversed(path.parts[:-1]):
        verdict = VERDICT_FOLDERS.get(part.lower())
        if verdict:
            return verdict
    return None


def _image_set_verdicts(by_path: dict[PurePosixPath, _Entry]) -> dict[tuple[str, str], str]:
    """Verdicts from VOC `ImageSets/Main/rust_trainval.txt` (1 rust, -1 no rust)."""
    verdicts: dict[tuple[str, str], str] = {}
    for path, entry in by_path.items():
        if path.name.lower() not in {
            "rust_trainval.txt",
            "rust_train.txt",
            "rust_val.txt",
            "rust_test.txt",
        }:
            continue
        if entry.size > MAX_XML_BYTES:
            continue
        base = path.parent.parent.parent.as_posix()  # .../ImageSets/Main/x.txt -> ...
        for line in entry.read().decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in {"1", "-1"}:
                verdicts[(base, parts[0])] = Verdict.RUST if parts[1] == "1" else Verdict.NORUST
    return verdicts


def _pair(entries: Iterable[_Entry]) -> tuple[list[_Item], list[str]]:
    by_path = {e.path: e for e in entries}
    xml_by_key: dict[tuple[str, str], _Entry] = {}
    for path, entry in by_path.items():
        if path.suffix.lower() == ".xml":
            parent = path.parent
            # A VOC tree keeps XML in Annotations/ beside JPEGImages/.
            if parent.name == "Annotations":
                xml_by_key[(parent.parent.as_posix(), f"JPEGImages/{path.stem}")] = entry
            xml_by_key[(parent.as_posix(), path.stem)] = entry
    set_verdicts = _image_set_verdicts(by_path)

    items: list[_Item] = []
    used_xml: set[PurePosixPath] = set()
    for path, entry in sorted(by_path.items()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        parent = path.parent
        xml = xml_by_key.get((parent.as_posix(), path.stem))
        verdict = _verdict_from_path(path)
        if parent.name == "JPEGImages":
            base = parent.parent.as_posix()
            xml = xml or xml_by_key.get((base, f"JPEGImages/{path.stem}"))
            verdict = verdict or set_verdicts.get((base, path.stem))
        if xml is not None:
            used_xml.add(xml.path)
        items.append(_Item(image=entry, xml=xml, verdict=verdict))
    orphans = [
        f"{p}: no image with the same name next to it; skipped."
        for p in sorted(by_path)
        if p.suffix.lower() == ".xml" and p not in used_xml
    ]
    return items, orphans


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


def _raw_frame(data: bytes) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) of the file as written, from its header."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)
            return img.width, img.height, orientation
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return 0, 0, 1


def _boxes_for_photo(ann: VocAnnotation, photo: Photo, data: bytes, source: str) -> list[VocBox]:
    """The annotation's boxes in the stored (upright) photo's pixels, checked."""
    if (ann.width, ann.height) == (photo.width, photo.height):
        boxes = ann.boxes
    else:
        raw_w, raw_h, orientation = _raw_frame(data)
        if orientation in _TRANSFORMS and (ann.width, ann.height) == (raw_w, raw_h):
            boxes = []
            for b in ann.boxes:
                xmin, ymin, xmax, ymax = _TRANSFORMS[orientation](b, raw_w, raw_h)
                boxes.append(VocBox(xmin, ymin, xmax, ymax, b.name, b.difficult))
        else:
            raise VocError(
                f"{source}: the XML says {ann.width}x{ann.height} but the image is "
                f"{photo.width}x{photo.height}"
            )
    for i, box in enumerate(boxes):
        check_box(box, photo.width, photo.height, f"{source}: object {i}")
    return boxes


def _labels_for(boxes: list[VocBox], source: str, report: ImportReport) -> None:
    """Create labels a labelImg folder uses that the table does not know yet."""
    known = set(Label.objects.values_list("name", flat=True))
    for name in {b.name for b in boxes} - known:
        if slugify(name) != name:
            raise VocError(f"{source}: class name {name!r} is not a valid label name")
        Label.objects.get_or_create(name=name)
        report.notes.append(f"{source}: new label '{name}' was added to the label table.")


# --- import ----------------------------------------------------------------------


def _open_source(source: Any) -> tuple[list[_Entry], Callable[[], None], str]:
    """Entries of a folder, a .zip path or a binary zip file; a closer; a display name."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return _folder_entries(path), lambda: None, path.name
        if not path.exists():
            raise InvalidArchive(f"{path}: no such folder or file.")
        fh: IO[bytes] = path.open("rb")
        name = path.name
    else:
        fh = source
        name = getattr(source, "name", "") or "upload.zip"
        name = Path(str(name)).name
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(source, str | os.PathLike):
            fh.close()
        raise InvalidArchive(f"{name}: not a zip archive or a folder ({exc}).") from exc

    def close() -> None:
        zf.close()
        if isinstance(source, str | os.PathLike):
            fh.close()

    try:
        entries = _zip_entries(zf)
    except BaseException:
        close()
        raise
    return entries, close, name


def import_voc(
    source: Path | str | IO[bytes],
    *,
    inspection: Inspection | None = None,
    inspection_name: str | None = None,
    asset_name: str | None = None,
    user: AbstractBaseUser | None = None,
) -> ImportReport:
    """Import a labelImg folder / VOC tree / zip into an inspection; returns what happened.

    Images pair with the same-stem XML beside them (or in Annotations/ of a
    VOC tree); folders named rust/ and norust/ give verdicts. A file that
    cannot be imported is skipped and named in `errors`; the rest go in.
    Raises InvalidArchive for an unsafe or unreadable archive.
    """
    entries, close, display = _open_source(source)
    try:
        items, orphans = _pair(entries)
        if not items:
            raise InvalidArchive(f"{display}: no JPEG, PNG or WebP images found.")
        if inspection is None:
            inspection = get_or_create_inspection(
                # A new inspection named by the caller gets an asset of the same name.
                asset_name=asset_name or inspection_name or "Imports",
                inspection_name=inspection_name
                or f"{Path(display).stem or 'import'} {timezone.localdate():%Y-%m-%d}",
                user=user,
            )
        report = ImportReport(errors=list(orphans), inspection_id=inspection.pk)
        for item in items:
            _import_one(item, inspection=inspection, user=user, report=report)
    finally:
        close()
    log.info(
        "import %s: %d photos, %d duplicates, %d boxes, %d verdicts, %d errors",
        display,
        report.photos_created,
        report.duplicates,
        report.boxes,
        report.verdicts,
        len(report.errors),
    )
    return report


def _import_one(
    item: _Item, *, inspection: Inspection, user: AbstractBaseUser | None, report: ImportReport
) -> None:
    source = item.image.path.as_posix()
    if item.image.size > settings.RUSTWATCH_MAX_UPLOAD_BYTES:
        report.errors.append(
            f"{source}: {item.image.size:,} bytes is over the upload limit; skipped."
        )
        return
    try:
        data = item.image.read()
        ann = None
        if item.xml is not None:
            if item.xml.size > MAX_XML_BYTES:
                raise VocError(f"{item.xml.path}: the XML file is too large")
            ann = parse_voc(item.xml.read(), item.xml.path.as_posix(), check_bounds=False)
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
            n_boxes = 0
            if ann is not None:
                boxes = _boxes_for_photo(ann, photo, data, item.xml.path.as_posix())
                _labels_for(boxes, item.xml.path.as_posix(), report)
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
            n_verdicts = 0
            if item.verdict and (created or photo.verdict == Verdict.UNKNOWN):
                if photo.verdict != item.verdict:
                    photo = set_verdict(photo=photo, verdict=item.verdict, user=user)
                    n_verdicts = 1
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


def export_voc(
    out: Path | str | IO[bytes],
    *,
    inspection: Inspection | None = None,
    asset: Asset | None = None,
) -> ExportReport:
    """Write a VOC zip of an inspection, an asset or everything.

    JPEGImages/ holds every photo; Annotations/ an XML for each labelled photo
    (boxes, a verdict or verified); ImageSets/Main/trainval.txt lists the
    labelled photos and rust_trainval.txt says 1 (rust), -1 (no rust) or 0
    (not yet) for every photo. Only human and accepted boxes are exported.
    """
    photos_qs = Photo.objects.select_related("inspection").order_by("id")
    if inspection is not None:
        photos_qs = photos_qs.filter(inspection=inspection)
    if asset is not None:
        photos_qs = photos_qs.filter(inspection__asset=asset)
    photos = list(photos_qs)
    stems = _stems(photos)
    report = ExportReport()

    if isinstance(out, str | os.PathLike):
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                _write_zip(fh, photos, stems, report)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:
        _write_zip(out, photos, stems, report)
    return report


def _write_zip(
    fh: IO[bytes], photos: list[Photo], stems: dict[int, str], report: ExportReport
) -> None:
    trainval: list[str] = []
    class_lines: list[str] = []
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for photo in photos:
            stem = stems[photo.pk]
            ext = Path(photo.image.name).suffix or ".jpg"
            image_name = f"{stem}{ext}"
            with default_storage.open(photo.image.name, "rb") as src:
                zf.writestr(
                    f"JPEGImages/{image_name}", src.read(), compress_type=zipfile.ZIP_STORED
                )
            ann = photo_annotation(
                photo, filename=image_name, folder="JPEGImages", path=f"JPEGImages/{image_name}"
            )
            labelled = bool(ann.boxes) or photo.verified or photo.verdict != Verdict.UNKNOWN
            if labelled:
                zf.writestr(f"Annotations/{stem}.xml", to_xml_bytes(ann))
                trainval.append(stem)
                report.boxes += len(ann.boxes)
            has_rust = photo.verdict == Verdict.RUST or (
                photo.verdict == Verdict.UNKNOWN and any(b.name == "rust" for b in ann.boxes)
            )
            flag = "1" if has_rust else "-1" if photo.verdict == Verdict.NORUST else "0"
            class_lines.append(f"{stem} {flag}")
            report.photos += 1
        zf.writestr("ImageSets/Main/trainval.txt", "".join(f"{s}\n" for s in trainval))
        zf.writestr("ImageSets/Main/rust_trainval.txt", "".join(f"{s}\n" for s in class_lines))


__all__ = ["ExportReport", "ImportReport", "export_voc", "import_voc", "voc_path"]
