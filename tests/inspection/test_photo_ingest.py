"""Photo ingest: real validation, EXIF orientation, duplicates, near-duplicates, thumbnails."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inspection.errors import DuplicatePhoto, InvalidImage, TooLarge, UnsupportedMediaType
from inspection.models import Photo, PhotoEvent
from inspection.services.photos import ingest_photo, ingest_photos
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def noisy_jpeg(width: int = 200, height: int = 120, seed: int = 1, **save) -> bytes:
    """A photo-like image with structure (phash needs more than a flat colour)."""
    import random

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            v = (x * 3 + y * 2 + rng.randint(0, 40)) % 256
            px[x, y] = (v, (v * 7) % 256, 255 - v)
    for _ in range(6):  # a few blobs so the low frequencies differ between seeds
        x0, y0 = rng.randint(0, width - 40), rng.randint(0, height - 30)
        img.paste((rng.randint(0, 255),) * 3, (x0, y0, x0 + 40, y0 + 30))
    buf = io.BytesIO()
    img.save(buf, save.pop("fmt", "JPEG"), **save)
    return buf.getvalue()


def ingest(inspection, data: bytes, name: str = "p.jpg", user=None) -> Photo:
    return ingest_photo(inspection=inspection, file=io.BytesIO(data), filename=name, user=user)


def media_files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def test_jpeg_is_stored_by_content_hash_with_history(inspection, inspector, settings):
    data = jpeg_bytes(64, 48)
    photo = ingest(inspection, data, "hull.jpg", inspector)
    assert photo.width == 64 and photo.height == 48
    assert photo.content_type == "image/jpeg"
    assert photo.image.name == f"photos/{photo.sha256[:2]}/{photo.sha256}.jpg"
    assert Path(photo.image.path).read_bytes() == data  # original bytes kept untouched
    assert photo.uploaded_by == inspector and photo.original_name == "hull.jpg"
    assert len(photo.phash) == 16
    event = PhotoEvent.objects.get(photo=photo)
    assert event.action == PhotoEvent.Action.UPLOAD and event.actor == inspector


@pytest.mark.parametrize(
    ("fmt", "ctype", "ext"), [("PNG", "image/png", "png"), ("WEBP", "image/webp", "webp")]
)
def test_png_and_webp_are_accepted(inspection, fmt, ctype, ext):
    photo = ingest(inspection, jpeg_bytes(30, 20, fmt=fmt), f"x.{ext}")
    assert (photo.content_type, photo.width, photo.height) == (ctype, 30, 20)
    assert photo.image.name.endswith(f".{ext}")


def test_uploaded_file_object_is_accepted(inspection):
    upload = SimpleUploadedFile("u.jpg", jpeg_bytes(), content_type="image/jpeg")
    assert ingest_photo(inspection=inspection, file=upload, filename="u.jpg", user=None).pk


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidImage),
        (b"hello, this is a text file\n" * 10, UnsupportedMediaType),
        (jpeg_bytes(fmt="GIF"), UnsupportedMediaType),
        (jpeg_bytes(fmt="BMP"), UnsupportedMediaType),
        (jpeg_bytes(fmt="TIFF"), UnsupportedMediaType),
    ],
    ids=["empty", "text", "gif", "bmp", "tiff"],
)
def test_bad_files_are_refused_with_a_clear_status(inspection, data, error):
    with pytest.raises(error) as info:
        ingest(inspection, data, "bad.jpg")
    assert info.value.status in {400, 415}
    assert "bad.jpg" in info.value.message
    assert not Photo.objects.exists()


def test_truncated_jpeg_is_invalid_and_nothing_is_left(inspection, settings):
    data = noisy_jpeg(300, 200)
    with pytest.raises(InvalidImage) as info:
        ingest(inspection, data[: len(data) // 2], "cut.jpg")
    assert info.value.status == 400
    assert "truncated" in info.value.message or "damaged" in info.value.message
    assert not Photo.objects.exists()
    assert media_files(Path(settings.MEDIA_ROOT)) == []


def test_too_many_bytes_is_413(inspection, settings):
    settings.RUSTWATCH_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(TooLarge) as info:
        ingest(inspection, noisy_jpeg(200, 200))
    assert info.value.status == 413 and "1,000 bytes" in info.value.message


def test_pixel_bomb_is_refused_before_decoding(inspection, settings):
    # A 20000x20000 PNG of one colour compresses to a few hundred kB but would
    # need 1.2 GB decoded: refused from its header.
    buf = io.BytesIO()
    Image.new("L", (20000, 20000), 0).save(buf, "PNG", optimize=False)
    data = buf.getvalue()
    assert len(data) < settings.RUSTWATCH_MAX_UPLOAD_BYTES
    with pytest.raises(TooLarge) as info:
        ingest(inspection, data, "bomb.png")
    assert info.value.status == 413 and "pixels" in info.value.message


def test_small_pixel_limit_applies(inspection, settings):
    settings.RUSTWATCH_MAX_PIXELS = 100 * 100
    with pytest.raises(TooLarge):
        ingest(inspection, jpeg_bytes(101, 100))
    assert ingest(inspection, jpeg_bytes(100, 100)).pk


def test_exif_rotated_jpeg_is_stored_upright(inspection):
    # Camera wrote 80x40 pixels, with "rotate 90 CW to view" (orientation 6).
    img = Image.new("RGB", (80, 40), (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, 20, 40))  # blue stripe on the left of the raw frame
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    raw = buf.getvalue()

    photo = ingest(inspection, raw, "phone.jpg")
    assert (photo.width, photo.height) == (40, 80)  # swapped
    stored = Path(photo.image.path).read_bytes()
    assert stored != raw
    import hashlib

    assert photo.sha256 == hashlib.sha256(stored).hexdigest()
    with Image.open(io.BytesIO(stored)) as up:
        assert up.size == (40, 80)
        assert up.getexif().get(0x0112, 1) == 1  # applied once, never again
        # Orientation 6 = rotate 90 CW: the raw left stripe is now at the top.
        r, g, b = up.convert("RGB").getpixel((20, 5))
        assert b > 150 and r < 100


def test_same_bytes_twice_is_409_naming_the_photo(inspection, settings):
    data = jpeg_bytes()
    first = ingest(inspection, data, "a.jpg")
    with pytest.raises(DuplicatePhoto) as info:
        ingest(inspection, data, "b.jpg")
    assert info.value.status == 409
    assert info.value.extra["photo_id"] == first.pk
    assert str(first.pk) in info.value.message and "a.jpg" in info.value.message
    assert Photo.objects.count() == 1
    stored = media_files(Path(settings.MEDIA_ROOT) / "photos")
    assert [p.suffix for p in stored] == [".jpg", ".xml"]  # the one image and its XML


def test_resized_reencoded_copy_is_linked_to_the_group_root(inspection):
    original = noisy_jpeg(400, 300, seed=3, quality=92)
    with Image.open(io.BytesIO(original)) as img:
        buf = io.BytesIO()
        img.resize((200, 150), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=70)
        smaller = buf.getvalue()
        buf = io.BytesIO()
        img.save(buf, "PNG")
        as_png = buf.getvalue()
    other = noisy_jpeg(400, 300, seed=99)

    root = ingest(inspection, original, "orig.jpg")
    copy = ingest(inspection, smaller, "small.jpg")
    third = ingest(inspection, as_png, "orig.png")
    unrelated = ingest(inspection, other, "other.jpg")
    assert root.near_duplicate_of is None
    assert copy.near_duplicate_of_id == root.pk
    assert third.near_duplicate_of_id == root.pk  # the root, not the copy
    assert unrelated.near_duplicate_of is None
    assert copy.duplicate_group == root.duplicate_group == root.pk


def test_failed_database_write_leaves_no_file(inspection, settings, monkeypatch):
    from inspection.services import photos as photos_service

    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(photos_service, "record_event", boom)
    with pytest.raises(RuntimeError):
        ingest(inspection, jpeg_bytes(), "a.jpg")
    assert not Photo.objects.exists()
    assert media_files(Path(settings.MEDIA_ROOT)) == []


def test_several_files_one_bad_does_not_lose_the_others(inspection):
    good1, good2 = jpeg_bytes(color=(1, 2, 3)), jpeg_bytes(color=(200, 100, 0), fmt="PNG")
    results = ingest_photos(
        inspection=inspection,
        files=[
            (io.BytesIO(good1), "1.jpg"),
            (io.BytesIO(b"nope"), "2.jpg"),
            (io.BytesIO(good2), "3.png"),
            (io.BytesIO(good1), "4.jpg"),
        ],
        user=None,
    )
    assert isinstance(results[0], Photo) and isinstance(results[2], Photo)
    assert isinstance(results[1], UnsupportedMediaType)
    assert isinstance(results[3], DuplicatePhoto)
    assert results[3].extra["photo_id"] == results[0].pk
    assert Photo.objects.count() == 2


def test_thumbnail_is_made_after_commit(inspection, django_capture_on_commit_callbacks, settings):
    settings.RUSTWATCH_THUMBNAIL_SIZE = 50
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        photo = ingest(inspection, noisy_jpeg(400, 200), "big.jpg")
    assert len(callbacks) == 1
    photo.refresh_from_db()
    assert photo.thumbnail.name == f"thumbs/{photo.sha256[:2]}/{photo.sha256}.jpg"
    with Image.open(photo.thumbnail.path) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 50 and thumb.size == (50, 25)


def test_thumbnail_task_is_idempotent_and_tolerates_missing_photo(inspection):
    from inspection.tasks import make_thumbnail

    photo = ingest(inspection, noisy_jpeg(), "x.jpg")
    first = make_thumbnail.delay(photo.pk).get()
    mtime = Path(photo.image.storage.path(first)).stat().st_mtime_ns
    assert make_thumbnail.delay(photo.pk).get() == first
    assert Path(photo.image.storage.path(first)).stat().st_mtime_ns == mtime
    assert make_thumbnail.delay(10**9).get() == ""


def test_leftover_file_of_a_crash_is_replaced(inspection, settings):
    import hashlib

    data = noisy_jpeg(seed=5)
    sha = hashlib.sha256(data).hexdigest()
    leftover = Path(settings.MEDIA_ROOT) / "photos" / sha[:2] / f"{sha}.jpg"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(data[:100])  # half-written by a process that died
    photo = ingest(inspection, data)
    assert Path(photo.image.path) == leftover and leftover.read_bytes() == data


def test_media_files_are_written_atomically_and_readable(inspection, settings, monkeypatch):
    """Photo, XML and thumbnail appear whole under their names (temp file + rename), with
    upload permissions; a write that fails leaves the previous file as it was."""
    import ml.voc
    from inspection.services.photos import render_thumbnail
    from inspection.services.voc_files import voc_path

    photo = ingest(inspection, noisy_jpeg(300, 200), "a.jpg")
    thumb = Path(settings.MEDIA_ROOT) / render_thumbnail(photo)
    for f in (Path(photo.image.path), voc_path(photo), thumb):
        assert f.stat().st_mode & 0o777 == 0o644, f
    before = thumb.read_bytes()

    def no_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ml.voc.os, "replace", no_rename)
    photo.thumbnail.name = ""  # make it render again
    settings.RUSTWATCH_THUMBNAIL_SIZE = 40
    with pytest.raises(OSError):
        render_thumbnail(photo)
    assert thumb.read_bytes() == before
    assert not [f for f in thumb.parent.iterdir() if f.name.startswith(".")]  # no temp left
