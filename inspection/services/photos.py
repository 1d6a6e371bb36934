"""Photo ingest and verdicts.

Ingest validates for real (bytes, detected type, pixel count before decoding,
a full decode), applies the EXIF orientation once so that browser, boxes and
models agree on "up", stores the file by content hash, refuses the same bytes
twice (409 naming the photo) and links near-duplicates by perceptual hash.
Nothing half-written stays behind: the file is removed if the row cannot be
written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import imagehash
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from inspection.errors import (
    DomainError,
    DuplicatePhoto,
    InvalidImage,
    StaleEdit,
    TooLarge,
    UnsupportedMediaType,
)
from inspection.models import Inspection, Photo, PhotoEvent, SuggestionState, Verdict
from inspection.services.history import actor_or_none, check_version, photo_state, record_event
from inspection.services.media import write_media
from inspection.services.voc_files import voc_follows_rows, voc_path, write_photo_voc

__all__ = [
    "PhotoResult",
    "ValidatedImage",
    "find_near_duplicate_root",
    "ingest_photo",
    "ingest_photos",
    "photo_state",
    "read_upload",
    "render_thumbnail",
    "set_verdict",
    "delete_photo",
    "validate_image",
]

log = logging.getLogger(__name__)

# Pillow format -> (content type, file extension). Anything else is refused (415).
ACCEPTED_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class ValidatedImage:
    """An upload that passed validation: the bytes to store and what we learnt."""

    data: bytes
    sha256: str
    phash: str
    width: int
    height: int
    format: str
    content_type: str
    extension: str
    rotated: bool


# One entry per file of `ingest_photos`: the Photo, or the error for that file.
PhotoResult = Photo | DomainError


def read_upload(file: Any, *, limit: int | None = None) -> bytes:
    """Read an upload's bytes, refusing more than `limit` bytes (413) without reading them all."""
    limit = settings.RUSTWATCH_MAX_UPLOAD_BYTES if limit is None else limit
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > limit:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {limit:,} bytes.", limit=limit)
    if hasattr(file, "seek"):
        try:
            file.seek(0)
        except (OSError, ValueError):
            pass
    if hasattr(file, "chunks"):
        buf = bytearray()
        for chunk in file.chunks():
            buf += chunk
            if len(buf) > limit:
                break
        data = bytes(buf)
    else:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"The file is larger than the limit of {limit:,} bytes.", limit=limit)
    return data


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ExifTags.Base.Orientation, 1) or 1)
    except Exception:  # a broken EXIF block is not a broken image
        return 1


def validate_image(data: bytes, *, filename: str = "") -> ValidatedImage:
    """Check that `data` is a whole JPEG/PNG/WebP within the limits; make it upright.

    The pixel limit is checked from the header, before anything is decoded, so
    a decompression bomb never gets a chance to allocate its memory.
    """
    name = f" '{filename}'" if filename else ""
    if not data:
        raise InvalidImage(f"The file{name} is empty.")
    max_pixels = settings.RUSTWATCH_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"The image{name} has too many pixels: {exc}", limit=max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(
            f"The file{name} is not a JPEG, PNG or WebP image (its type was not recognised)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"The image{name} cannot be read: {exc}") from exc
    if img.format not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType(
            f"The file{name} is {img.format or 'of an unknown type'}; "
            "only JPEG, PNG and WebP images are accepted."
        )
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"The image{name} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise TooLarge(
            f"The image{name} is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {max_pixels:,} pixels.",
            limit=max_pixels,
        )
    truncated_setting = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        # Full decode: a truncated or corrupt file fails here, not in a worker later.
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"The image{name} is damaged or truncated: {exc}") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_setting

    fmt = img.format
    content_type, extension = ACCEPTED_FORMATS[fmt]
    rotated = _orientation(img) in {2, 3, 4, 5, 6, 7, 8}
    if rotated:
        upright = ImageOps.exif_transpose(img)
        data = _encode(upright, fmt, source=img)
        img = upright
        width, height = img.size
    return ValidatedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        phash=str(imagehash.phash(img)),
        width=width,
        height=height,
        format=fmt,
        content_type=content_type,
        extension=extension,
        rotated=rotated,
    )


def _encode(img: Image.Image, fmt: str, *, source: Image.Image) -> bytes:
    """Re-encode an image made upright, keeping its colour profile and other EXIF tags."""
    buf = io.BytesIO()
    options: dict[str, Any] = {}
    if icc := source.info.get("icc_profile"):
        options["icc_profile"] = icc
    if exif := img.info.get("exif"):
        options["exif"] = exif
    if fmt == "JPEG":
        if img.mode not in {"RGB", "L", "CMYK"}:
            img = img.convert("RGB")
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95, lossless=bool(source.info.get("lossless")))
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def find_near_duplicate_root(phash: str, *, exclude_id: int | None = None) -> Photo | None:
    """The root photo of the closest near-duplicate group, or None.

    Near-duplicates (re-encoded, resized, overlapping frames) are accepted but
    linked, so that a later dataset split keeps a group on one side.
    """
    limit = settings.RUSTWATCH_PHASH_DISTANCE
    best: tuple[int, int] | None = None  # (distance, root id)
    rows = Photo.objects.exclude(pk=exclude_id).values_list("id", "phash", "near_duplicate_of_id")
    for pk, other, root in rows.iterator(chunk_size=2000):
        if not other:
            continue
        distance = _hamming(phash, other)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, root or pk)
    return Photo.objects.filter(pk=best[1]).first() if best else None


def _duplicate_error(existing: Photo, filename: str) -> DuplicatePhoto:
    label = existing.original_name or existing.sha256[:12]
    what = f"'{filename}' is" if filename else "These bytes are"
    return DuplicatePhoto(
        f"{what} the same file as photo {existing.pk} ('{label}') in inspection "
        f"'{existing.inspection}'; it was not stored twice.",
        photo_id=existing.pk,
    )


def _store(name: str, data: bytes) -> bool:
    """Write the file under MEDIA_ROOT at exactly `name`; False if it was there already.

    The name is the content hash and files are written atomically, so a file
    of the same size already there holds these very bytes (a concurrent upload
    of the same photo): it is reused, not rewritten under a reader.
    """
    if default_storage.exists(name) and default_storage.size(name) == len(data):
        return False
    write_media(name, data)
    return True


def ingest_photo(
    *,
    inspection: Inspection,
    file: Any,
    filename: str,
    user: AbstractBaseUser | None,
    action: str = PhotoEvent.Action.UPLOAD,
    score: bool = True,
) -> Photo:
    """Validate, store and record one photo of an inspection; schedule its thumbnail.

    And its scoring by the deployed models, unless `score` is False: then the caller
    scores it and stores the prediction itself (the prediction API's `store`), and the
    photo says it is queued until then.

    Raises InvalidImage (400), UnsupportedMediaType (415), TooLarge (413) or
    DuplicatePhoto (409, `photo_id` names the existing photo).
    """
    filename = (filename or getattr(file, "name", "") or "").rsplit("/", 1)[-1][:255]
    image = validate_image(read_upload(file), filename=filename)
    existing = Photo.objects.filter(sha256=image.sha256).select_related("inspection").first()
    if existing is not None:
        raise _duplicate_error(existing, filename)

    root = find_near_duplicate_root(image.phash)
    name = f"photos/{image.sha256[:2]}/{image.sha256}.{image.extension}"
    created_file = _store(name, image.data)

    def remove_file() -> None:
        if created_file and not Photo.objects.filter(sha256=image.sha256).exists():
            default_storage.delete(name)
            Path(default_storage.path(name)).with_suffix(".xml").unlink(missing_ok=True)

    try:
        with transaction.atomic():
            photo = Photo(
                inspection=inspection,
                sha256=image.sha256,
                phash=image.phash,
                near_duplicate_of=root,
                width=image.width,
                height=image.height,
                content_type=image.content_type,
                original_name=filename,
                uploaded_by=actor_or_none(user),
                **({} if score else {"suggestion_state": SuggestionState.QUEUED}),
            )
            photo.image.name = name
            photo.save()
            record_event(
                photo=photo,
                action=action,
                user=user,
                before={},
                after={
                    "original_name": filename,
                    "sha256": image.sha256,
                    "width": image.width,
                    "height": image.height,
                    "rotated_upright": image.rotated,
                    "near_duplicate_of": root.pk if root else None,
                },
            )
            # Every photo has its XML from the start (no boxes yet), as CVAT exports do.
            write_photo_voc(photo)
            transaction.on_commit(lambda: _after_upload(photo.pk, score=score), robust=True)
    except IntegrityError as exc:
        remove_file()
        existing = Photo.objects.filter(sha256=image.sha256).first()
        if existing is not None:
            raise _duplicate_error(existing, filename) from exc
        raise
    except BaseException:
        remove_file()
        raise
    log.info(
        "photo %s stored (%s, %dx%d%s%s)",
        photo.pk,
        filename,
        image.width,
        image.height,
        ", rotated upright" if image.rotated else "",
        f", near-duplicate of {root.pk}" if root else "",
    )
    return photo


def _schedule_thumbnail(photo_id: int) -> None:
    from inspection.tasks import make_thumbnail

    make_thumbnail.delay(photo_id)


def _after_upload(photo_id: int, *, score: bool = True) -> None:
    """Once the photo is committed: its thumbnail, and its scoring by the deployed models."""
    from inspection.services.suggestions import photo_uploaded

    _schedule_thumbnail(photo_id)
    if score:
        photo_uploaded(photo_id)


def ingest_photos(
    *,
    inspection: Inspection,
    files: list[tuple[IO[bytes] | Any, str]],
    user: AbstractBaseUser | None,
    action: str = PhotoEvent.Action.UPLOAD,
) -> list[PhotoResult]:
    """Ingest several files; each result is the Photo or that file's DomainError.

    One bad file does not lose the others.
    """
    results: list[PhotoResult] = []
    for file, filename in files:
        try:
            results.append(
                ingest_photo(
                    inspection=inspection, file=file, filename=filename, user=user, action=action
                )
            )
        except DomainError as exc:
            results.append(exc)
    return results


def set_verdict(
    *,
    photo: Photo,
    verdict: str,
    user: AbstractBaseUser | None,
    expected_version: int | None = None,
) -> Photo:
    """Set a photo's human rust / no-rust verdict (audited, versioned, XML rewritten).

    A verdict set here is a person's choice: boxes no longer change it
    (`boxes.verdict_follows_boxes`).
    """
    if verdict not in Verdict.values:
        raise DomainError(
            f"Unknown verdict {verdict!r}; use one of: {', '.join(Verdict.values)}.",
            field="verdict",
        )
    with voc_follows_rows(photo), transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        if expected_version is not None and check_version(expected_version) != locked.version:
            raise StaleEdit(
                f"Photo {locked.pk} is at version {locked.version}, not {expected_version}: "
                "someone else changed it. Reload and try again.",
                current=photo_state(locked),
            )
        before = {"verdict": locked.verdict}
        locked.verdict = verdict
        locked.verdict_by = actor_or_none(user)
        locked.verdict_at = timezone.now()
        locked.version += 1
        locked.save(update_fields=["verdict", "verdict_by", "verdict_at", "version"])
        record_event(
            photo=locked,
            action=PhotoEvent.Action.VERDICT,
            user=user,
            before=before,
            after={"verdict": verdict},
        )
        write_photo_voc(locked)
    return locked


def render_thumbnail(photo: Photo) -> str:
    """Make (or find) the photo's JPEG thumbnail; returns its storage name. Idempotent."""
    name = f"thumbs/{photo.sha256[:2]}/{photo.sha256}.jpg"
    if photo.thumbnail and photo.thumbnail.name == name and default_storage.exists(name):
        return name
    size = settings.RUSTWATCH_THUMBNAIL_SIZE
    with default_storage.open(photo.image.name, "rb") as fh, Image.open(fh) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
        thumb = img.convert("RGB")
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=85, optimize=True)
    write_media(name, buf.getvalue())
    Photo.objects.filter(pk=photo.pk).update(thumbnail=name)
    photo.thumbnail.name = name
    return name


def delete_photo(*, photo: Photo) -> None:
    """Delete a photo with its boxes and history, and its files once the delete commits.

    If it was the root of a near-duplicate group, the oldest other member becomes
    the root, so the rest of the group stays linked.
    """
    names = [n for n in (photo.image.name, photo.thumbnail.name if photo.thumbnail else "") if n]
    xml = voc_path(photo)

    def remove_files() -> None:
        for name in names:
            default_storage.delete(name)
        xml.unlink(missing_ok=True)

    with transaction.atomic():
        members = list(
            Photo.objects.filter(near_duplicate_of=photo).exclude(pk=photo.pk).order_by("id")
        )
        if members:
            new_root = members[0]
            Photo.objects.filter(pk=new_root.pk).update(near_duplicate_of=None)
            Photo.objects.filter(pk__in=[m.pk for m in members[1:]]).update(
                near_duplicate_of=new_root
            )
        photo.delete()
        transaction.on_commit(remove_files, robust=True)
