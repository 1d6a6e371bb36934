"""The real seed set (45 photos, 169 boxes) exported in COCO and YOLO, read by their readers,
and imported back box for box (VOC: tests/inspection/test_seed_voc.py)."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from inspection.models import Box, Photo
from inspection.services.dataset_io import export_dataset, import_dataset
from tests.inspection.test_formats import YOLO_LINE, clear_photos, img2label_path
from tests.inspection.test_seed_voc import box_set

pytestmark = pytest.mark.django_db


def test_seed_set_in_coco_and_yolo_read_by_their_readers_and_imported_back(seed_dir, tmp_path):
    report = import_dataset(seed_dir / "detection", format="voc", inspection_name="seed")
    assert (report.photos_created, report.boxes, report.errors) == (45, 169, [])
    inspection = Photo.objects.first().inspection
    imported = box_set(Photo.objects.all())  # {name: [(xmin, ymin, xmax, ymax, label, difficult)]}

    coco_zip, yolo_zip = tmp_path / "coco.zip", tmp_path / "yolo.zip"
    assert (
        export_dataset(coco_zip, format="coco").boxes,
        export_dataset(yolo_zip, format="yolo").boxes,
    ) == (169, 169)

    # pycocotools reads every image and box, coordinate for coordinate.
    with zipfile.ZipFile(coco_zip) as zf:
        zf.extractall(tmp_path / "coco")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "coco/annotations/instances_default.json"))
    assert (len(coco.getImgIds()), len(coco.getAnnIds())) == (45, 169)
    for image in coco.loadImgs(coco.getImgIds()):
        boxes = sorted(
            (x, y, x + w, y + h, "rust", a["attributes"]["difficult"])
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
            for x, y, w, h in [a["bbox"]]
        )
        assert boxes == imported[image["file_name"]]

    # The YOLO text: one normalised line per box, class ids from data.yaml.
    root = tmp_path / "yolo"
    with zipfile.ZipFile(yolo_zip) as zf:
        zf.extractall(root)
    names = yaml.safe_load((root / "data.yaml").read_text())["names"]
    lines = 0
    for image in sorted((root / "images").iterdir()):
        with Image.open(image) as img:
            width, height = img.size
        got = []
        for line in Path(img2label_path(str(image))).read_text().splitlines():
            match = YOLO_LINE.match(line)
            assert match, line
            cx, cy, w, h = map(float, match.groups()[1:])
            corners = ((cx - w / 2) * width, (cy - h / 2) * height)
            corners += ((cx + w / 2) * width, (cy + h / 2) * height)
            got.append((*(round(v) for v in corners), names[int(match[1])]))
        assert sorted(got) == [b[:5] for b in imported[image.name]]
        lines += len(got)
    assert lines == 169

    for fmt, archive in (("coco", coco_zip), ("yolo", yolo_zip)):
        clear_photos()
        again = import_dataset(archive, format=fmt, inspection=inspection)
        assert (again.photos_created, again.boxes, again.errors) == (45, 169, []), fmt
        back = box_set(Photo.objects.all())
        if fmt == "yolo":  # YOLO has no 'difficult' flag
            back = {k: [b[:5] for b in v] for k, v in back.items()}
            assert back == {k: [b[:5] for b in v] for k, v in imported.items()}
        else:
            assert back == imported
    assert Box.objects.count() == 169
