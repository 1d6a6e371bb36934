"""COCO JSON (object detection), as CVAT's "COCO 1.0" and Label Studio/Roboflow move it.

Writing: annotations/instances_default.json and images/default/<file_name>.
Boxes are `[x, y, width, height]` in pixels from the top-left corner, the same
continuous coordinates our VOC boxes use (xmin, ymin, xmax - xmin, ymax - ymin),
so a box survives a round trip exactly. Category ids start at 1, in the label
table's order; a difficult box carries `attributes.difficult` (CVAT's place
for attributes); `iscrowd` is 0.

Reading: every JSON file of the source with `images`, `annotations` and
`categories`; an image's `file_name` is found beside the JSON, in
images/<subset>/ or images/, or by its unique base name. A crowd annotation
becomes a difficult box (both mean: do not count it when evaluating).
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from inspection.errors import InvalidArchive
from inspection.models import Label
from inspection.services.archives import MAX_JSON_BYTES, Entry, read_text_entry
from inspection.services.dataset_io import (
    ExportPhoto,
    ImportItem,
    SourceItems,
    is_image,
    upright_size,
)
from ml.voc import VocAnnotation, VocBox, VocError

SUBSET = "default"
ANNOTATION_FILE = f"annotations/instances_{SUBSET}.json"
IMAGE_DIR = f"images/{SUBSET}"


# --- writing ---------------------------------------------------------------------


def coco_document(photos: list[ExportPhoto], labels: list[Label]) -> dict[str, Any]:
    """The COCO dict of the photos: one image entry each, one annotation per box."""
    category_ids = {label.name: i for i, label in enumerate(labels, 1)}
    images, annotations = [], []
    for image_id, export in enumerate(photos, 1):
        ann = export.annotation
        images.append(
            {
                "id": image_id,
                "file_name": export.image_name,
                "width": ann.width,
                "height": ann.height,
                "license": 0,
                "date_captured": "",
            }
        )
        for box in ann.boxes:
            w, h = box.xmax - box.xmin, box.ymax - box.ymin
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_ids[box.name],
                    "bbox": [box.xmin, box.ymin, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [],
                    "attributes": {"difficult": bool(box.difficult)},
                }
            )
    return {
        "info": {
            "description": "Rustwatch export",
            "version": "1.0",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [{"id": 0, "name": "", "url": ""}],
        "categories": [
            {"id": category_ids[label.name], "name": label.name, "supercategory": ""}
            for label in labels
        ],
        "images": images,
        "annotations": annotations,
    }


def write_zip(
    zf: zipfile.ZipFile,
    photos: list[ExportPhoto],
    labels: list[Label],
    tick: Callable[[int], None],
) -> None:
    for done, export in enumerate(photos, 1):
        zf.writestr(
            f"{IMAGE_DIR}/{export.image_name}",
            export.image_bytes(),
            compress_type=zipfile.ZIP_STORED,
        )
        tick(done)
    zf.writestr(ANNOTATION_FILE, json.dumps(coco_document(photos, labels), indent=1))


# --- reading ---------------------------------------------------------------------


def _load_json(entry: Entry) -> Any:
    try:
        return json.loads(read_text_entry(entry, MAX_JSON_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArchive(f"{entry.path}: not valid JSON ({exc}).") from exc


def _is_coco(doc: Any) -> bool:
    return isinstance(doc, dict) and all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _box(raw: Any, names: dict[Any, str], where: str) -> VocBox:
    """One COCO annotation as a box in whole pixels (VocError naming it if malformed)."""
    if not isinstance(raw, dict):
        raise VocError(f"{where}: an annotation must be an object")
    bbox = raw.get("bbox")
    nums = [_number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
    if nums is None or any(v is None for v in nums):
        raise VocError(f"{where}: bbox must be [x, y, width, height] numbers, not {bbox!r}")
    x, y, w, h = nums
    if w <= 0 or h <= 0:
        raise VocError(f"{where}: bbox {bbox!r} has no area")
    name = names.get(raw.get("category_id"))
    if name is None:
        raise VocError(f"{where}: category_id {raw.get('category_id')!r} is not in categories")
    attributes = raw.get("attributes") if isinstance(raw.get("attributes"), dict) else {}
    difficult = bool(attributes.get("difficult")) or raw.get("iscrowd") in (1, True)
    return VocBox(round(x), round(y), round(x + w), round(y + h), name, difficult)


def _clip(box: VocBox, width: int, height: int) -> VocBox:
    """Float boxes may overshoot an edge by a rounding error: clip 1 px, leave more to refuse."""

    def clip(value: int, top: int) -> int:
        return min(max(value, 0), top) if -1 <= value <= top + 1 else value

    return dataclasses.replace(
        box,
        xmin=clip(box.xmin, width),
        ymin=clip(box.ymin, height),
        xmax=clip(box.xmax, width),
        ymax=clip(box.ymax, height),
    )


def _resolver(entries: list[Entry]) -> Callable[[PurePosixPath, str], Entry | None]:
    by_path = {e.path: e for e in entries}
    by_name: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_name[e.path.name].append(e)

    def find(json_path: PurePosixPath, file_name: str) -> Entry | None:
        rel = PurePosixPath(file_name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts:
            return None
        base = json_path.parent
        roots = [base, base.parent / "images" / SUBSET, base.parent / "images", base.parent]
        subset = json_path.stem.removeprefix("instances_")
        roots.insert(1, base.parent / "images" / subset)
        for root in roots:
            hit = by_path.get(root / rel)
            if hit is not None:
                return hit
        same = by_name.get(rel.name, [])
        return same[0] if len(same) == 1 else None

    return find


def read_items(entries: Iterable[Entry]) -> SourceItems:
    """Images named by the COCO files of the source, with their boxes."""
    entries = list(entries)
    find = _resolver(entries)
    errors: list[str] = []
    items: list[ImportItem] = []
    claimed: set[PurePosixPath] = set()
    documents = 0
    for entry in sorted(entries, key=lambda e: e.path):
        if entry.path.suffix.lower() != ".json":
            continue
        doc = _load_json(entry)
        if not _is_coco(doc):
            errors.append(f"{entry.path}: not a COCO file (no images/annotations/categories).")
            continue
        documents += 1
        names = {
            c.get("id"): str(c.get("name", "")).strip()
            for c in doc["categories"]
            if isinstance(c, dict)
        }
        by_image: dict[Any, list[tuple[int, Any]]] = defaultdict(list)
        for n, raw in enumerate(doc["annotations"]):
            image_id = raw.get("image_id") if isinstance(raw, dict) else None
            by_image[image_id].append((n, raw))
        for image in doc["images"]:
            if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
                errors.append(f"{entry.path}: an image without a file_name; skipped.")
                continue
            file_name = image["file_name"]
            found = find(entry.path, file_name)
            if found is None:
                errors.append(f"{entry.path}: image {file_name!r} is not in the archive; skipped.")
                continue
            if found.path in claimed:
                errors.append(f"{entry.path}: image {file_name!r} is listed twice; kept the first.")
                continue
            claimed.add(found.path)
            items.append(
                ImportItem(
                    image=found,
                    load=_loader(entry.path, image, by_image.get(image.get("id"), []), names),
                    annotation_name=f"{entry.path}#{file_name}",
                )
            )
    if not documents:
        raise InvalidArchive(
            "No COCO annotation file found: a .json with images, annotations and categories."
        )
    # Images no COCO file mentions come in without boxes, as in a VOC folder.
    for entry in sorted(entries, key=lambda e: e.path):
        if is_image(entry.path) and entry.path not in claimed:
            items.append(ImportItem(image=entry, load=lambda _data: None))
    return SourceItems(items=items, errors=errors)


def _loader(
    json_path: PurePosixPath,
    image: dict[str, Any],
    raws: list[tuple[int, Any]],
    names: dict[Any, str],
) -> Callable[[bytes], VocAnnotation | None]:
    where = f"{json_path}#{image['file_name']}"

    def load(data: bytes) -> VocAnnotation:
        width, height = _number(image.get("width")), _number(image.get("height"))
        if image.get("width") is None and image.get("height") is None:
            width, height = upright_size(data)  # some tools leave the size out
        if not width or not height or width <= 0 or height <= 0:
            raise VocError(f"{where}: width and height must be positive numbers")
        boxes = [
            _clip(_box(raw, names, f"{where}: annotation {n}"), int(width), int(height))
            for n, raw in raws
        ]
        return VocAnnotation(
            filename=image["file_name"], width=int(width), height=int(height), boxes=boxes
        )

    return load
