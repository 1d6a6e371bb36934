"""VOC import/export on small made-up data: pairing, verdicts, EXIF, zip safety."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from inspection.errors import InvalidArchive
from inspection.models import Box, Label, Photo
from inspection.services.boxes import save_boxes
from inspection.services.voc_io import export_voc, import_voc
from ml.voc import VocAnnotation, VocBox, read_voc, to_xml_bytes
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def xml_for(name: str, w: int, h: int, boxes: list[tuple[int, int, int, int]], **kw) -> bytes:
    return to_xml_bytes(
        VocAnnotation(filename=name, width=w, height=h, boxes=[VocBox(*b) for b in boxes], **kw)
    )


def make_zip(entries: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


def test_folder_pairs_images_with_xml_and_class_folders(tmp_path_factory, inspection):
    tmp_path = tmp_path_factory.mktemp("src")  # not the test folder: MEDIA_ROOT lives there
    (tmp_path / "rust").mkdir()
    (tmp_path / "norust").mkdir()
    (tmp_path / "rust" / "a.jpg").write_bytes(jpeg_bytes(60, 40, (200, 0, 0)))
    (tmp_path / "rust" / "a.xml").write_bytes(
        xml_for("a.jpg", 60, 40, [(1, 2, 30, 20), (10, 10, 60, 40)], verified=True)
    )
    (tmp_path / "norust" / "b.png").write_bytes(jpeg_bytes(30, 30, (0, 200, 0), fmt="PNG"))
    (tmp_path / "c.webp").write_bytes(jpeg_bytes(20, 20, (0, 0, 200), fmt="WEBP"))
    (tmp_path / "orphan.xml").write_bytes(xml_for("gone.jpg", 5, 5, []))
    (tmp_path / "notes.txt").write_text("ignored")

    report = import_voc(tmp_path, inspection=inspection)
    assert (report.photos_created, report.boxes, report.verdicts) == (3, 2, 2)
    assert len(report.errors) == 1 and "orphan.xml" in report.errors[0]
    a = Photo.objects.get(original_name="a.jpg")
    assert a.verdict == "rust" and a.verified and a.inspection == inspection
    assert sorted(a.boxes.values_list("xmin", "ymin", "xmax", "ymax")) == [
        (1, 2, 30, 20),
        (10, 10, 60, 40),
    ]
    assert Photo.objects.get(original_name="b.png").verdict == "norust"
    assert Photo.objects.get(original_name="c.webp").verdict == "unknown"
    assert a.events.filter(action="import").exists()

    # Importing again changes nothing and says why.
    again = import_voc(tmp_path, inspection=inspection)
    assert (again.photos_created, again.duplicates, again.boxes) == (0, 3, 0)
    assert Box.objects.count() == 2


def test_bad_files_are_skipped_and_named_the_rest_goes_in(tmp_path_factory, inspection):
    tmp_path = tmp_path_factory.mktemp("src")  # not the test folder: MEDIA_ROOT lives there
    (tmp_path / "good.jpg").write_bytes(jpeg_bytes(50, 50))
    (tmp_path / "text.jpg").write_bytes(b"not an image")
    (tmp_path / "box.jpg").write_bytes(jpeg_bytes(40, 40, (1, 1, 1)))
    (tmp_path / "box.xml").write_bytes(xml_for("box.jpg", 40, 40, [(5, 5, 50, 20)]))
    (tmp_path / "evil.jpg").write_bytes(jpeg_bytes(40, 40, (9, 9, 9)))
    (tmp_path / "evil.xml").write_bytes(
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<annotation><filename>&x;</filename><size><width>40</width><height>40</height>"
        b"</size><object><name>rust</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        b"<xmax>&x;</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    (tmp_path / "sized.jpg").write_bytes(jpeg_bytes(40, 40, (90, 9, 9)))
    (tmp_path / "sized.xml").write_bytes(xml_for("sized.jpg", 80, 80, [(1, 1, 5, 5)]))
    report = import_voc(tmp_path, inspection=inspection)
    assert report.photos_created == 1
    text = "\n".join(report.errors)
    assert "text.jpg" in text and "box.xml" in text and "outside" in text
    assert "evil.xml" in text and "root:" not in text
    assert "sized.xml" in text and "80x80" in text
    assert list(Photo.objects.values_list("original_name", flat=True)) == ["good.jpg"]
    # Nothing of the skipped photos was left in the media folder.
    from django.conf import settings

    stored = [p for p in Path(settings.MEDIA_ROOT, "photos").rglob("*") if p.is_file()]
    assert sorted(p.suffix for p in stored) == [".jpg", ".xml"]  # good.jpg and its XML


def test_exif_rotated_photo_keeps_its_boxes_on_the_rust(tmp_path_factory, inspection):
    tmp_path = tmp_path_factory.mktemp("src")  # not the test folder: MEDIA_ROOT lives there
    # Raw frame 80x40 with a red patch at x 60..80, y 0..10; orientation 6 (rotate CW).
    img = Image.new("RGB", (80, 40), (20, 20, 20))
    img.paste((230, 20, 20), (60, 0, 80, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    (tmp_path / "phone.jpg").write_bytes(buf.getvalue())
    # labelImg draws on the raw frame (it does not apply EXIF orientation).
    (tmp_path / "phone.xml").write_bytes(xml_for("phone.jpg", 80, 40, [(60, 0, 80, 10)]))
    report = import_voc(tmp_path, inspection=inspection)
    assert report.errors == [] and report.boxes == 1
    photo = Photo.objects.get()
    assert (photo.width, photo.height) == (40, 80)
    box = photo.boxes.get()
    with Image.open(photo.image.path) as up:
        crop = up.convert("RGB").crop((box.xmin, box.ymin, box.xmax, box.ymax))
        r, g, b = crop.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert r > 180 and g < 80  # the box still sits on the red patch
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (30, 60, 40, 80)


def test_zip_upload_object_and_voc_tree_import(inspection):
    zipped = make_zip(
        {
            "set/JPEGImages/x.jpg": jpeg_bytes(50, 40),
            "set/Annotations/x.xml": xml_for("x.jpg", 50, 40, [(1, 1, 10, 10)]),
            "set/JPEGImages/y.jpg": jpeg_bytes(50, 40, (0, 0, 0)),
            "set/ImageSets/Main/rust_trainval.txt": b"x 1\ny -1\n",
            "__MACOSX/._x.jpg": b"junk",
        }
    )
    report = import_voc(zipped, inspection=inspection)
    assert (report.photos_created, report.boxes, report.verdicts, report.errors) == (2, 1, 2, [])
    assert Photo.objects.get(original_name="y.jpg").verdict == "norust"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../evil.jpg", "Unsafe"),
        ("/etc/evil.jpg", "Unsafe"),
        ("a/../../evil.jpg", "Unsafe"),
        ("C:/evil.jpg", "Unsafe"),
        ("..\\evil.jpg", "Unsafe"),
    ],
)
def test_zip_with_escaping_paths_is_refused(inspection, name, needle):
    with pytest.raises(InvalidArchive) as info:
        import_voc(make_zip({"ok.jpg": jpeg_bytes(), name: jpeg_bytes()}), inspection=inspection)
    assert info.value.status == 400 and needle in info.value.message
    assert not Photo.objects.exists()


def test_zip_with_a_symlink_is_refused(inspection):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.jpg", jpeg_bytes())
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    buf.seek(0)
    with pytest.raises(InvalidArchive) as info:
        import_voc(buf, inspection=inspection)
    assert "link" in info.value.message
    assert not Photo.objects.exists()


def test_zip_bomb_entry_is_refused(inspection):
    zipped = make_zip({"ok.jpg": jpeg_bytes(), "bomb.xml": b"\0" * (20 * 1024 * 1024)})
    with pytest.raises(InvalidArchive) as info:
        import_voc(zipped, inspection=inspection)
    assert "zip bomb" in info.value.message


def test_zip_over_the_total_size_limit_is_refused(inspection, settings):
    settings.RUSTWATCH_MAX_IMPORT_BYTES = 10_000
    zipped = make_zip(
        {f"{i}.jpg": jpeg_bytes(100, 100, (i, 0, 0)) for i in range(20)},
        compression=zipfile.ZIP_STORED,
    )
    with pytest.raises(InvalidArchive) as info:
        import_voc(zipped, inspection=inspection)
    assert "10,000 bytes" in info.value.message


def test_zip_with_too_many_entries_is_refused(inspection, settings):
    settings.RUSTWATCH_MAX_IMPORT_ENTRIES = 5
    zipped = make_zip({f"{i}.txt": b"x" for i in range(6)})
    with pytest.raises(InvalidArchive) as info:
        import_voc(zipped, inspection=inspection)
    assert "entries" in info.value.message


def test_not_a_zip_and_empty_zip_are_clear_errors(inspection):
    with pytest.raises(InvalidArchive) as info:
        import_voc(io.BytesIO(b"hello"), inspection=inspection)
    assert "not a zip" in info.value.message
    with pytest.raises(InvalidArchive) as info:
        import_voc(make_zip({"readme.txt": b"hi"}), inspection=inspection)
    assert "no JPEG, PNG or WebP" in info.value.message


def test_export_scopes_and_only_human_and_accepted_boxes(tmp_path, inspection, asset, inspector):
    from inspection.services.catalog import create_asset, create_inspection
    from inspection.services.photos import ingest_photo, set_verdict

    def add(insp, color, name):
        return ingest_photo(
            inspection=insp, file=io.BytesIO(jpeg_bytes(50, 50, color)), filename=name, user=None
        )

    other = create_inspection(asset=create_asset(name="Pipe 1"), name="June")
    p1 = add(inspection, (250, 0, 0), "same.jpg")
    p2 = add(inspection, (0, 250, 0), "same.jpg")  # same original name: made unique
    p3 = add(other, (0, 0, 250), "z.jpg")
    save_boxes(
        photo=p1,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}],
        user=inspector,
        expected_version=1,
    )
    rust = Label.objects.get(name="rust")
    Box.objects.create(
        photo=p1,
        label=rust,
        source="model",
        state="suggested",
        score=0.9,
        xmin=20,
        ymin=20,
        xmax=30,
        ymax=30,
    )
    set_verdict(photo=p2, verdict="norust", user=inspector)

    out = tmp_path / "one.zip"
    report = export_voc(out, inspection=inspection)
    assert (report.photos, report.boxes) == (2, 1)
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(
            [
                "JPEGImages/same.jpg",
                f"JPEGImages/same-{p2.pk}.jpg",
                "Annotations/same.xml",
                f"Annotations/same-{p2.pk}.xml",
                "ImageSets/Main/default.txt",
                "ImageSets/Main/rust_default.txt",
                "labelmap.txt",
            ]
        )
        classes = zf.read("ImageSets/Main/rust_default.txt").decode().split("\n")
        assert classes[:2] == ["same 1", f"same-{p2.pk} -1"]
        (tmp_path / "same.xml").write_bytes(zf.read("Annotations/same.xml"))
    ann = read_voc(tmp_path / "same.xml")
    assert [(b.xmin, b.xmax) for b in ann.boxes] == [(1, 9)]  # no suggestion
    assert ann.filename == "same.jpg" and ann.folder == "JPEGImages"

    assert export_voc(tmp_path / "asset.zip", asset=asset).photos == 2
    everything = export_voc(io.BytesIO())
    assert everything.photos == 3
    with zipfile.ZipFile(tmp_path / "asset.zip") as zf:
        assert "JPEGImages/z.jpg" not in zf.namelist()
    assert p3.pk
