"""YOLO detection labels in the Ultralytics layout.

Writing: images/<name>, labels/<stem>.txt and data.yaml. Each label file has
one line per box, `class cx cy w h`: the class id (0-based, `names` in
data.yaml, in the label table's order) and the box centre and size divided by
the image's width and height, with 6 decimals. A photo without boxes gets an
empty label file (Ultralytics reads that as background).

Reading: class names from a data.yaml (`names` as a list or an {id: name} map),
or classes.txt / obj.names (one per line, labelImg and Darknet). An image's
label file is the same path with the last images/ folder as labels/ and the
suffix .txt, or a same-stem .txt beside it. A polygon line (Ultralytics
segments) becomes the box around it.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

import yaml

from inspection.errors import InvalidArchive
from inspection.models import Label
from inspection.services.archives import MAX_TEXT_BYTES, Entry, read_text_entry
from inspection.services.dataset_io import (
    ExportPhoto,
    ImportItem,
    SourceItems,
    is_image,
    upright_size,
)
from ml.voc import VocAnnotation, VocBox, VocError

# Ultralytics rounds label coordinates to 6 decimals; a value this far outside 0..1 is
# a rounding error, not a box outside the image.
TOLERANCE = 1e-6
CLASS_LISTS = ("classes.txt", "obj.names")


# --- writing ---------------------------------------------------------------------


def label_line(box: VocBox, class_id: int, width: int, height: int) -> str:
    """`class cx cy w h`, normalised by the image size, 6 decimals."""
    cx = (box.xmin + box.xmax) / 2 / width
    cy = (box.ymin + box.ymax) / 2 / height
    w = (box.xmax - box.xmin) / width
    h = (box.ymax - box.ymin) / height
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def data_yaml(labels: list[Label]) -> str:
    """Ultralytics' dataset file; `path` is left out, so it is the file's own folder."""
    body = yaml.safe_dump(
        {
            "train": "images",
            "val": "images",
            "nc": len(labels),
            "names": {i: label.name for i, label in enumerate(labels)},
        },
        sort_keys=False,
    )
    return "# Rustwatch export: Ultralytics YOLO detection (images/, labels/)\n" + body


def write_zip(
    zf: zipfile.ZipFile,
    photos: list[ExportPhoto],
    labels: list[Label],
    tick: Callable[[int], None],
) -> None:
    class_ids = {label.name: i for i, label in enumerate(labels)}
    for done, export in enumerate(photos, 1):
        ann = export.annotation
        zf.writestr(
            f"images/{export.image_name}", export.image_bytes(), compress_type=zipfile.ZIP_STORED
        )
        lines = [label_line(b, class_ids[b.name], ann.width, ann.height) for b in ann.boxes]
        zf.writestr(f"labels/{export.stem}.txt", "".join(f"{line}\n" for line in lines))
        tick(done)
    zf.writestr("data.yaml", data_yaml(labels))


# --- reading ---------------------------------------------------------------------


def _names_from_yaml(entry: Entry) -> list[str] | None:
    try:
        doc = yaml.safe_load(read_text_entry(entry))
    except yaml.YAMLError as exc:
        raise InvalidArchive(f"{entry.path}: not valid YAML ({exc}).") from exc
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise InvalidArchive(f"{entry.path}: `names` keys must be class ids.") from exc
        if ids != list(range(len(ids))):
            raise InvalidArchive(f"{entry.path}: `names` must number the classes 0, 1, 2, ...")
        return [str(names.get(i, names.get(str(i)))) for i in ids]
    return None


def class_names(entries: list[Entry]) -> list[str] | None:
    """The class names a YOLO source declares (data.yaml first), or None."""
    for entry in sorted(entries, key=lambda e: (len(e.path.parts), e.path)):
        if entry.path.suffix.lower() in (".yaml", ".yml"):
            names = _names_from_yaml(entry)
            if names is not None:
                return names
    for entry in sorted(entries, key=lambda e: (len(e.path.parts), e.path)):
        if entry.path.name.lower() in CLASS_LISTS:
            text = read_text_entry(entry).decode("utf-8", "replace")
            return [line.strip() for line in text.splitlines() if line.strip()]
    return None


def _label_path(image: PurePosixPath) -> PurePosixPath | None:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return PurePosixPath(*parts).with_suffix(".txt")
    return None


def parse_label_text(
    text: str, names: list[str], width: int, height: int, source: str
) -> list[VocBox]:
    """A label file's lines as boxes in pixels of a width x height image."""
    boxes = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}:{n}"
        try:
            class_id = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError as exc:
            raise VocError(f"{where}: expected 'class cx cy w h' numbers, got {line!r}") from exc
        if not 0 <= class_id < len(names):
            raise VocError(f"{where}: class {class_id} is not in the {len(names)} class names")
        if not all(math.isfinite(v) and -TOLERANCE <= v <= 1 + TOLERANCE for v in values):
            raise VocError(f"{where}: coordinates must be normalised to 0..1, got {line!r}")
        if len(values) == 4:
            cx, cy, w, h = values
            x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
        elif len(values) >= 6 and len(values) % 2 == 0:  # a polygon: x1 y1 x2 y2 ...
            xs, ys = values[0::2], values[1::2]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        else:
            raise VocError(f"{where}: expected 'class cx cy w h', got {len(fields)} fields")
        box = VocBox(
            xmin=max(0, round(x0 * width)),
            ymin=max(0, round(y0 * height)),
            xmax=min(width, round(x1 * width)),
            ymax=min(height, round(y1 * height)),
            name=names[class_id],
        )
        if not (box.xmin < box.xmax and box.ymin < box.ymax):
            raise VocError(f"{where}: the box is less than a pixel wide or high: {line!r}")
        boxes.append(box)
    return boxes


def _loader(
    label: Entry | None, names: list[str], image_name: str
) -> Callable[[bytes], VocAnnotation | None]:
    def load(data: bytes) -> VocAnnotation | None:
        if label is None:
            return None
        if label.size > MAX_TEXT_BYTES:
            raise VocError(f"{label.path}: the label file is too large")
        width, height = upright_size(data)
        if not width or not height:
            return None  # not an image: the ingest says why
        text = label.read().decode("utf-8", "replace")
        boxes = parse_label_text(text, names, width, height, label.path.as_posix())
        return VocAnnotation(filename=image_name, width=width, height=height, boxes=boxes)

    return load


def read_items(entries: Iterable[Entry]) -> SourceItems:
    """Images of an Ultralytics (or Darknet) YOLO source, each with its label file."""
    entries = list(entries)
    by_path = {e.path: e for e in entries}
    names = class_names(entries)
    items: list[ImportItem] = []
    used: set[PurePosixPath] = set()
    for path, entry in sorted(by_path.items()):
        if not is_image(path):
            continue
        candidates = [_label_path(path), path.with_suffix(".txt")]
        label = next((by_path[c] for c in candidates if c is not None and c in by_path), None)
        if label is not None:
            used.add(label.path)
        items.append(
            ImportItem(
                image=entry,
                load=_loader(label, names or [], path.name),
                annotation_name=label.path.as_posix() if label else "",
            )
        )
    if names is None and used:
        raise InvalidArchive(
            "No class names: a YOLO source needs a data.yaml with `names`, or a classes.txt."
        )
    errors = [
        f"{path}: no image for this label file; skipped."
        for path in sorted(by_path)
        if path.suffix.lower() == ".txt" and "labels" in path.parts[:-1] and path not in used
    ]
    return SourceItems(items=items, errors=errors)
