"""COCO and YOLO export/import, and VOC in CVAT's layout, on small made-up photos.

Each export is read by a reader we did not write: pycocotools' COCO() (and its
COCOeval, scoring the ground truth against itself), the YOLO text checked
against Ultralytics' published label format (one `class cx cy w h` line per
box, normalised, zero-based class ids from data.yaml) with Ultralytics' own
image -> label path rule; then each file is imported back.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inspection.errors import DomainError, InvalidArchive
from inspection.models import Asset, Box, Inspection, Label, Photo, PhotoEvent
from inspection.services.dataset_io import export_dataset, import_dataset
from ml.voc import parse_voc
from tests.api.conftest import scene_bytes

pytestmark = pytest.mark.django_db


def rows(photo: Photo) -> list[tuple]:
    """The photo's boxes that count as its annotation: human ones (suggestions aside)."""
    return sorted(
        photo.boxes.filter(source="human").values_list(
            "xmin", "ymin", "xmax", "ymax", "label__name"
        )
    )


def unpack(zip_path: Path, into: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
        return set(zf.namelist())


def clear_photos() -> None:
    PhotoEvent.objects.all().delete()
    Box.objects.all().delete()
    Photo.objects.all().delete()


def by_name() -> dict[str, list[tuple]]:
    return {p.original_name: rows(p) for p in Photo.objects.all()}


# --- COCO ------------------------------------------------------------------------


def test_coco_export_is_read_by_pycocotools_and_imports_back(
    tmp_path, annotated_photos, inspection
):
    expected = {p.original_name: rows(p) for p in annotated_photos}
    out = tmp_path / "coco.zip"
    report = export_dataset(out, format="coco", inspection=inspection)
    assert (report.photos, report.boxes) == (3, 4)
    names = unpack(out, tmp_path / "coco")
    assert "annotations/instances_default.json" in names

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco = COCO(str(tmp_path / "coco/annotations/instances_default.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["rust", "paint"]
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 4
    for image in coco.loadImgs(coco.getImgIds()):
        with Image.open(tmp_path / "coco/images/default" / image["file_name"]) as img:
            assert (image["width"], image["height"]) == img.size
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        got = sorted(
            (*(round(v) for v in (x, y, x + w, y + h)), coco.loadCats(a["category_id"])[0]["name"])
            for a in anns
            for x, y, w, h in [a["bbox"]]
        )
        assert got == expected[image["file_name"]]
        assert all(a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)

    # COCOeval scores the ground truth, offered as detections, as perfect: it read every box.
    detections = [{**a, "score": 1.0} for a in coco.loadAnns(coco.getAnnIds())]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]

    clear_photos()
    again = import_dataset(out, format="coco", inspection=inspection)
    assert (again.photos_created, again.boxes, again.errors) == (3, 4, [])
    assert by_name() == expected
    assert Box.objects.filter(difficult=True).count() == 1


def test_coco_import_skips_and_names_bad_annotations(tmp_path, inspection):
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "c.jpg", "width": 40, "height": 30},
            {"id": 4, "file_name": "../../etc/passwd", "width": 4, "height": 3},
            {"id": 5, "file_name": "d.jpg"},  # no size: the image's own
        ],
        "categories": [{"id": 7, "name": "rust"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1.2, 2, 20.4, 10.5], "iscrowd": 1},
            {"id": 2, "image_id": 2, "category_id": 7, "bbox": [1, 2, "wide", 3]},
            {"id": 3, "image_id": 3, "category_id": 99, "bbox": [1, 2, 3, 4]},
            {"id": 4, "image_id": 5, "category_id": 7, "bbox": [30.2, 0, 10.6, 30.4]},
        ],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("export/instances.json", json.dumps(doc))
        for i, name in enumerate("abcd"):
            zf.writestr(f"export/{name}.jpg", scene_bytes(10 + i, (40, 30)))
    buf.seek(0)
    report = import_dataset(buf, format="coco", inspection=inspection)
    assert (report.photos_created, report.boxes) == (2, 2)
    errors = " | ".join(report.errors)
    assert "b.jpg: annotation 1: bbox must be [x, y, width, height] numbers" in errors
    assert "c.jpg: annotation 2: category_id 99 is not in categories" in errors
    assert "'../../etc/passwd' is not in the archive" in errors
    # Rounded to whole pixels; a crowd region is kept as a difficult box; a rounding
    # overshoot of the edge (40.8 of 40) is clipped.
    assert list(
        Box.objects.order_by("id").values_list("xmin", "ymin", "xmax", "ymax", "difficult")
    ) == [
        (1, 2, 22, 12, True),
        (30, 0, 40, 30, False),
    ]


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"a.jpg": b"x"}, "No COCO annotation file"),
        ({"a.json": b"{not json", "a.jpg": b"x"}, "not valid JSON"),
        ({"../a.json": b"{}"}, "Unsafe path"),
    ],
)
def test_coco_source_without_a_readable_coco_file_is_refused(inspection, files, needle):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    buf.seek(0)
    with pytest.raises(InvalidArchive, match=needle):
        import_dataset(buf, format="coco", inspection=inspection)
    assert not Photo.objects.exists()


# --- YOLO ------------------------------------------------------------------------

# Ultralytics' label line: class id, then x_center y_center width height normalised to 0..1
# (https://docs.ultralytics.com/datasets/detect/); we write 6 decimals.
YOLO_LINE = re.compile(r"^(\d+) ([01]\.\d{6}) ([01]\.\d{6}) ([01]\.\d{6}) ([01]\.\d{6})$")


def img2label_path(image_path: str) -> str:
    """ultralytics.data.utils.img2label_paths, ported: /images/ -> /labels/, suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def test_yolo_export_follows_the_ultralytics_format_and_imports_back(
    tmp_path, annotated_photos, inspection
):
    expected = {p.original_name: rows(p) for p in annotated_photos}
    out = tmp_path / "yolo.zip"
    report = export_dataset(out, format="yolo", inspection=inspection)
    assert (report.photos, report.boxes) == (3, 4)
    root = tmp_path / "yolo"
    unpack(out, root)
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert data["names"] == {0: "rust", 1: "paint"} and data["nc"] == 2
    assert (root / data["train"]).is_dir() and (root / data["val"]).is_dir()
    assert "path" not in data  # Ultralytics then uses the yaml's own folder

    images = sorted((root / data["train"]).iterdir())
    assert len(images) == 3
    for image in images:
        label = Path(img2label_path(str(image)))
        lines = label.read_text().splitlines()
        with Image.open(image) as img:
            width, height = img.size
        got = []
        for line in lines:
            match = YOLO_LINE.match(line)
            assert match, line
            cls, cx, cy, w, h = int(match[1]), *map(float, match.groups()[1:])
            assert 0 < w <= 1 and 0 < h <= 1 and 0 <= cx <= 1 and 0 <= cy <= 1
            box = ((cx - w / 2) * width, (cy - h / 2) * height)
            box += ((cx + w / 2) * width, (cy + h / 2) * height)
            got.append((*box, data["names"][cls]))
        want = expected[image.name]
        assert len(got) == len(want)  # one line per box, none for a photo without boxes
        for g, e in zip(sorted(got), want, strict=True):
            assert g[4] == e[4]
            assert all(abs(a - b) < 1e-3 for a, b in zip(g[:4], e[:4], strict=True))

    clear_photos()
    again = import_dataset(out, format="yolo", inspection=inspection)
    assert (again.photos_created, again.boxes, again.errors) == (3, 4, [])
    assert by_name() == expected  # YOLO has no 'difficult': coordinates and labels only


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("3 0.5 0.5 0.2 0.2", "class 3 is not in the 1 class names"),
        ("0 0.5 1.5 0.2 0.2", "must be normalised to 0..1"),
        ("0 0.5 0.5 0.2", "expected 'class cx cy w h', got 4 fields"),
        ("rust 0.5 0.5 0.2 0.2", "expected 'class cx cy w h' numbers"),
        ("0 0.5 0.5 0.0 0.2", "less than a pixel"),
    ],
)
def test_yolo_bad_label_line_skips_its_photo_and_names_the_line(inspection, line, needle):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.yaml", "names: [rust]\n")
        zf.writestr("images/a.jpg", scene_bytes(1, (50, 40)))
        zf.writestr("labels/a.txt", f"0 0.5 0.5 0.4 0.4\n{line}\n")
        zf.writestr("images/b.jpg", scene_bytes(2, (50, 40)))
        zf.writestr("labels/b.txt", "0 0.100000 0.125000 0.200000 0.250000\n")
    buf.seek(0)
    report = import_dataset(buf, format="yolo", inspection=inspection)
    assert (report.photos_created, report.boxes) == (1, 1)
    assert len(report.errors) == 1
    assert report.errors[0].startswith("labels/a.txt:2: ") and needle in report.errors[0]
    assert list(Box.objects.values_list("xmin", "ymin", "xmax", "ymax")) == [(0, 0, 10, 10)]


def test_yolo_labels_without_class_names_are_refused(inspection):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("images/a.jpg", scene_bytes(1, (50, 40)))
        zf.writestr("labels/a.txt", "0 0.5 0.5 0.4 0.4\n")
    buf.seek(0)
    with pytest.raises(InvalidArchive, match="needs a data.yaml with `names`"):
        import_dataset(buf, format="yolo", inspection=inspection)


# --- VOC in CVAT's layout ------------------------------------------------------------


def test_voc_export_has_cvat_layout_with_an_xml_for_every_photo(
    tmp_path, annotated_photos, inspection
):
    out = tmp_path / "voc.zip"
    export_dataset(out, format="voc", inspection=inspection)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        labelmap = zf.read("labelmap.txt").decode().splitlines()
        listed = zf.read("ImageSets/Main/default.txt").decode().split()
        flags = dict(
            line.split()
            for line in zf.read("ImageSets/Main/rust_default.txt").decode().splitlines()
        )
        clean = parse_voc(zf.read("Annotations/clean.xml"))
    assert {f"Annotations/{s}.xml" for s in ("deck", "clean", "x")} <= names
    assert listed == ["deck", "clean", "x"]
    assert flags == {"deck": "1", "clean": "-1", "x": "1"}
    assert clean.boxes == [] and (clean.width, clean.height) == (50, 40)
    assert labelmap == [
        "# label:color_rgb:parts:actions",
        "background:0,0,0::",
        "rust:232,89,12::",
        "paint:28,126,214::",
    ]


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotation><folder></folder><filename>frame_1.jpg</filename>
<source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
<size><width>60</width><height>40</height><depth></depth></size><segmented>0</segmented>
<object><name>corrosion</name><truncated>0</truncated><occluded>0</occluded><difficult>0</difficult>
<bndbox><xmin>4.0</xmin><ymin>5.0</ymin><xmax>30.5</xmax><ymax>20.0</ymax></bndbox>
<attributes><attribute><name>occluded</name><value>False</value></attribute></attributes>
</object></annotation>
"""


def test_cvat_voc_zip_imports_with_its_labelmap_and_without_masks(inspection):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("JPEGImages/frame_1.jpg", scene_bytes(5, (60, 40)))
        zf.writestr("Annotations/frame_1.xml", CVAT_XML)
        zf.writestr("ImageSets/Main/default.txt", "frame_1\n")
        zf.writestr("ImageSets/Segmentation/default.txt", "frame_1\n")
        zf.writestr("SegmentationClass/frame_1.png", scene_bytes(6, (60, 40), fmt="PNG"))
        zf.writestr("SegmentationObject/frame_1.png", scene_bytes(7, (60, 40), fmt="PNG"))
        zf.writestr(
            "labelmap.txt",
            "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncorrosion:255,0,16::\n",
        )
    buf.seek(0)
    report = import_dataset(buf, format="voc", inspection=inspection)
    assert (report.photos_created, report.boxes, report.errors) == (1, 1, [])
    assert Label.objects.get(name="corrosion").color == "#ff0010"
    assert list(Box.objects.values_list("xmin", "ymin", "xmax", "ymax", "label__name")) == [
        (4, 5, 30, 20, "corrosion")
    ]


# --- one entry point for every format --------------------------------------------------


def test_unknown_format_is_a_clear_error_and_progress_is_reported(
    tmp_path, annotated_photos, inspection
):
    with pytest.raises(DomainError, match="Unknown format 'pascal'; use one of: voc, coco, yolo"):
        export_dataset(tmp_path / "x.zip", format="pascal")
    assert not (tmp_path / "x.zip").exists()
    seen: list[tuple[int, int]] = []
    export_dataset(tmp_path / "p.zip", format="yolo", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    seen.clear()
    clear_photos()
    import_dataset(
        tmp_path / "p.zip",
        format="yolo",
        inspection=inspection,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert Asset.objects.count() == 1 and Inspection.objects.count() == 1
