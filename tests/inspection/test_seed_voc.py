"""Acceptance on the real seed photos: import, export, re-import, labelImg's reader."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from lxml import etree
from PIL import Image

from inspection.models import Box, Photo, PhotoEvent
from inspection.services.photos import ingest_photo
from inspection.services.voc_io import export_voc, import_voc

pytestmark = pytest.mark.django_db


class LabelImgVocReader:
    """labelImg's PascalVocReader.parseXML (libs/pascal_voc_io.py), ported line for line.

    labelImg's constructor swallows every parse error (`except: pass`); here the
    parse is called directly so that a file labelImg could not read fails the test.
    """

    def __init__(self, filepath: str) -> None:
        self.shapes: list[tuple] = []
        self.filepath = filepath
        self.verified = False
        self.filename: str | None = None
        self.parse_xml()

    def add_shape(self, label, bndbox, difficult) -> None:
        xmin = int(float(bndbox.find("xmin").text))
        ymin = int(float(bndbox.find("ymin").text))
        xmax = int(float(bndbox.find("xmax").text))
        ymax = int(float(bndbox.find("ymax").text))
        points = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax)]
        self.shapes.append((label, points, None, None, difficult))

    def parse_xml(self) -> bool:
        assert self.filepath.endswith(".xml"), "Unsupport file format"
        parser = etree.XMLParser(encoding="utf-8")
        xmltree = ElementTree.parse(self.filepath, parser=parser).getroot()
        self.filename = xmltree.find("filename").text
        try:
            verified = xmltree.attrib["verified"]
            if verified == "yes":
                self.verified = True
        except KeyError:
            self.verified = False
        for object_iter in xmltree.findall("object"):
            bndbox = object_iter.find("bndbox")
            label = object_iter.find("name").text
            difficult = False
            if object_iter.find("difficult") is not None:
                difficult = bool(int(object_iter.find("difficult").text))
            self.add_shape(label, bndbox, difficult)
        return True


def box_set(photos) -> dict[str, list[tuple]]:
    """{original name: sorted boxes} of the given photos."""
    out: dict[str, list[tuple]] = {}
    for photo in photos:
        out[photo.original_name] = sorted(
            photo.boxes.values_list("xmin", "ymin", "xmax", "ymax", "label__name", "difficult")
        )
    return out


def seed_boxes(seed_dir: Path) -> dict[str, list[tuple]]:
    """The boxes as the seed's XML files hold them, read with labelImg's own reader."""
    out = {}
    for xml in sorted((seed_dir / "detection").rglob("*.xml")):
        reader = LabelImgVocReader(str(xml))
        out[xml.with_suffix(".jpg").name] = sorted(
            (pts[0][0], pts[0][1], pts[2][0], pts[2][1], label, difficult)
            for label, pts, _, _, difficult in reader.shapes
        )
    return out


def clear_database() -> None:
    from inspection.models import Asset, Inspection

    PhotoEvent.objects.all().delete()
    Box.objects.all().delete()
    Photo.objects.all().delete()
    Inspection.objects.all().delete()
    Asset.objects.all().delete()


def test_detection_import_export_reimport_round_trip(seed_dir, tmp_path):
    report = import_voc(seed_dir / "detection", inspection_name="seed detection")
    assert (report.photos_created, report.boxes, report.duplicates, report.errors) == (
        45,
        169,
        0,
        [],
    )
    assert Photo.objects.count() == 45 and Box.objects.count() == 169
    imported = box_set(Photo.objects.all())
    assert imported == seed_boxes(seed_dir)  # coordinate for coordinate, from the files

    # Every photo's own XML beside the image is readable by labelImg.
    for photo in Photo.objects.all():
        xml = Path(photo.image.path).with_suffix(".xml")
        reader = LabelImgVocReader(str(xml))
        assert reader.filename == Path(photo.image.path).name
        assert len(reader.shapes) == photo.boxes.count()

    out = tmp_path / "seed.zip"
    exported = export_voc(out)
    assert (exported.photos, exported.boxes) == (45, 169)

    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        zf.extractall(unpacked)
    # CVAT's "Pascal VOC 1.1" layout.
    assert {n.split("/")[0] for n in names} == {
        "JPEGImages",
        "Annotations",
        "ImageSets",
        "labelmap.txt",
    }
    listed = (unpacked / "ImageSets/Main/default.txt").read_text().split()
    assert len(listed) == 45
    assert "rust:232,89,12::" in (unpacked / "labelmap.txt").read_text().splitlines()
    xmls = sorted((unpacked / "Annotations").glob("*.xml"))
    assert len(xmls) == 45
    total = 0
    for xml in xmls:
        reader = LabelImgVocReader(str(xml))
        assert (unpacked / "JPEGImages" / reader.filename).is_file()
        expected = imported[reader.filename]
        got = sorted(
            (p[0][0], p[0][1], p[2][0], p[2][1], lab, d) for lab, p, _, _, d in reader.shapes
        )
        assert got == expected
        total += len(reader.shapes)
    assert total == 169

    clear_database()
    again = import_voc(out, inspection_name="re-import")
    assert (again.photos_created, again.boxes, again.errors) == (45, 169, [])
    assert box_set(Photo.objects.all()) == imported
    # The exported zip says every photo with boxes has rust.
    assert again.verdicts == 45


def test_classification_folders_import_as_verdicts(seed_dir):
    report = import_voc(seed_dir / "classification", inspection_name="seed classes")
    assert report.photos_created == 149
    assert report.duplicates == 6 and len(report.duplicate_files) == 6
    assert report.errors == []
    assert report.verdicts == 149
    assert Photo.objects.filter(verdict="rust").count() == 82  # 83 files, one pair
    assert Photo.objects.filter(verdict="norust").count() == 67  # 72 files, five pairs
    dup_names = " ".join(report.duplicate_files)
    for name in ("norust.56.jpg", "norust.57.jpg", "norust.55.jpg", "rust.76.jpg"):
        assert name in dup_names
    # The seed has no near-duplicates beyond its byte-identical pairs ...
    assert report.near_duplicates == 0
    # ... but a resized, re-encoded copy of one of its photos is found and linked.
    original = Photo.objects.get(original_name="rust.29.jpg")
    with Image.open(seed_dir / "classification/rust/rust.29.jpg") as img:
        buf = io.BytesIO()
        img.resize((img.width * 2 // 3, img.height * 2 // 3)).save(buf, "JPEG", quality=75)
    copy = ingest_photo(
        inspection=original.inspection,
        file=io.BytesIO(buf.getvalue()),
        filename="rust.29-small.jpg",
        user=None,
    )
    assert copy.near_duplicate_of_id == original.pk


def test_whole_seed_merges_boxes_and_verdicts_of_the_same_photos(seed_dir):
    report = import_voc(seed_dir, inspection_name="everything")
    # 45 detection photos are also in classification/rust: one photo each, with
    # both their boxes and their verdict.
    assert Photo.objects.count() == 149
    assert Box.objects.count() == 169
    assert report.errors == []
    assert Photo.objects.filter(verdict="rust", boxes__isnull=False).distinct().count() == 45
