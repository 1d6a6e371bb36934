"""Read Rustwatch's VOC, COCO and YOLO exports with Datumaro, and print what it found.

Datumaro pins numpy < 2.5 and Pillow < 13, below this project's pins, so it is
not a dependency: run this script from a venv of its own.

    .venv/bin/python manage.py export_voc --out OUT/seed-voc.zip  --format voc
    .venv/bin/python manage.py export_voc --out OUT/seed-coco.zip --format coco
    .venv/bin/python manage.py export_voc --out OUT/seed-yolo.zip --format yolo
    python3.12 -m venv /tmp/dm && /tmp/dm/bin/pip install datumaro==1.13.12
    /tmp/dm/bin/python benchmarks/datumaro_read.py OUT
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path

import datumaro as dm
from datumaro.components.annotation import AnnotationType

READERS = {"voc": "voc", "coco": "coco_instances", "yolo": "yolo"}


def read(archive: Path, reader: str) -> dict[str, list[tuple[float, ...]]]:
    """{item id: sorted (x, y, w, h) boxes} as Datumaro reads the unpacked zip."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        dataset = dm.Dataset.import_from(tmp, reader)
        return {
            Path(item.id).name: sorted(
                (a.x, a.y, a.w, a.h) for a in item.annotations if a.type == AnnotationType.bbox
            )
            for item in dataset
        }


def same_boxes(a: dict[str, list], b: dict[str, list], tol: float = 1e-3) -> bool:
    """The same items with the same boxes, to `tol` pixels."""
    if a.keys() != b.keys():
        return False
    for key in a:
        if len(a[key]) != len(b[key]):
            return False
        for p, q in zip(a[key], b[key], strict=True):
            if any(abs(x - y) > tol for x, y in zip(p, q, strict=True)):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder", type=Path, help="holds seed-voc.zip, seed-coco.zip, seed-yolo.zip"
    )
    args = parser.parse_args()
    found = {fmt: read(args.folder / f"seed-{fmt}.zip", r) for fmt, r in READERS.items()}
    print(f"{'format':8}{'datumaro reader':18}{'items':>7}{'boxes':>7}  same boxes as voc")
    for fmt, reader in READERS.items():
        boxes = found[fmt]
        same = same_boxes(boxes, found["voc"])
        total = sum(map(len, boxes.values()))
        print(f"{fmt:8}{reader:18}{len(boxes):>7}{total:>7}  {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
