"""Pascal VOC: labelImg folders, VOC trees and CVAT's "Pascal VOC 1.1" zips.

Reading: images pair with the same-stem XML beside them, or in Annotations/ of
a VOC tree; folders named rust/ and norust/, or ImageSets/Main/rust_<subset>.txt
(1 rust, -1 no rust), give verdicts; labelmap.txt (CVAT) gives new labels their
colours; Segmentation*/ folders (CVAT's masks) are ignored. XML goes through
`ml.voc` (entities and network off).

Writing, in CVAT's layout, which CVAT, Datumaro, labelImg and this importer read:
JPEGImages/, Annotations/ (an XML for every photo, boxes or not),
ImageSets/Main/default.txt (every photo), ImageSets/Main/rust_default.txt
(1 rust, -1 no rust, 0 not yet) and labelmap.txt.

The import and export themselves (ingest, boxes, history, zip safety) are
`dataset_io`'s, shared with COCO and YOLO.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Callable, Iterable
from os import PathLike
from pathlib import PurePosixPath
from typing import IO, Any

from inspection.models import Asset, Inspection, Label, Verdict
from inspection.services.archives import MAX_TEXT_BYTES, Entry
from inspection.services.dataset_io import (
    ExportPhoto,
    ExportReport,
    ImportItem,
    ImportReport,
    SourceItems,
    export_dataset,
    import_dataset,
    is_image,
)
from inspection.services.voc_files import voc_path
from ml.voc import VocAnnotation, VocError, parse_voc, to_xml_bytes

# Class folders whose name gives the photos in them a verdict.
VERDICT_FOLDERS = {"rust": Verdict.RUST, "norust": Verdict.NORUST}
VERDICT_LISTS = {f"rust_{subset}.txt" for subset in ("trainval", "train", "val", "test", "default")}
SUBSET = "default"  # CVAT's subset name: ImageSets/Main/default.txt
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


# --- reading ---------------------------------------------------------------------


def _verdict_from_path(path: PurePosixPath) -> str | None:
    for part in reversed(path.parts[:-1]):
        verdict = VERDICT_FOLDERS.get(part.lower())
        if verdict:
            return verdict
    return None


def _image_set_verdicts(by_path: dict[PurePosixPath, Entry]) -> dict[tuple[str, str], str]:
    """Verdicts from VOC `ImageSets/Main/rust_<subset>.txt` (1 rust, -1 no rust)."""
    verdicts: dict[tuple[str, str], str] = {}
    for path, entry in by_path.items():
        if path.name.lower() not in VERDICT_LISTS or entry.size > MAX_TEXT_BYTES:
            continue
        base = path.parent.parent.parent.as_posix()  # .../ImageSets/Main/x.txt -> ...
        for line in entry.read().decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in {"1", "-1"}:
                verdicts[(base, parts[0])] = Verdict.RUST if parts[1] == "1" else Verdict.NORUST
    return verdicts


def _labelmap_colors(by_path: dict[PurePosixPath, Entry]) -> tuple[dict[str, str], list[str]]:
    """Colours of CVAT's labelmap.txt lines `name:r,g,b:parts:actions` (background aside)."""
    colors: dict[str, str] = {}
    errors: list[str] = []
    for path, entry in by_path.items():
        if path.name.lower() != "labelmap.txt":
            continue
        if entry.size > MAX_TEXT_BYTES:
            errors.append(f"{path}: too large for a label map; ignored.")
            continue
        for n, line in enumerate(entry.read().decode("utf-8", "replace").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            color = rest.split(":", 1)[0].strip()
            if not name.strip() or name.strip() == "background":
                continue
            rgb = color.split(",")
            if len(rgb) == 3 and all(c.strip().isdigit() and int(c) < 256 for c in rgb):
                colors[name.strip()] = "#" + "".join(f"{int(c):02x}" for c in rgb)
            elif color:
                errors.append(f"{path}:{n}: colour {color!r} is not r,g,b; the label keeps ours.")
    return colors, errors


def _xml_loader(xml: Entry | None) -> Callable[[bytes], VocAnnotation | None]:
    def load(_image: bytes) -> VocAnnotation | None:
        if xml is None:
            return None
        if xml.size > MAX_TEXT_BYTES:
            raise VocError(f"{xml.path}: the XML file is too large")
        return parse_voc(xml.read(), xml.path.as_posix(), check_bounds=False)

    return load


def _ignored(path: PurePosixPath) -> bool:
    """VOC's and CVAT's Segmentation*/ folders (class and object masks) hold no photos."""
    return any(part.startswith("Segmentation") for part in path.parts[:-1])


def read_items(entries: Iterable[Entry]) -> SourceItems:
    """Images of a labelImg folder, VOC tree or CVAT VOC zip, each with its XML."""
    by_path = {e.path: e for e in entries if not _ignored(e.path)}
    xml_by_key: dict[tuple[str, str], Entry] = {}
    for path, entry in by_path.items():
        if path.suffix.lower() == ".xml":
            parent = path.parent
            # A VOC tree keeps XML in Annotations/ beside JPEGImages/.
            if parent.name == "Annotations":
                xml_by_key[(parent.parent.as_posix(), f"JPEGImages/{path.stem}")] = entry
            xml_by_key[(parent.as_posix(), path.stem)] = entry
    set_verdicts = _image_set_verdicts(by_path)
    colors, errors = _labelmap_colors(by_path)

    items: list[ImportItem] = []
    used_xml: set[PurePosixPath] = set()
    for path, entry in sorted(by_path.items()):
        if not is_image(path):
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
        items.append(
            ImportItem(
                image=entry,
                load=_xml_loader(xml),
                verdict=verdict,
                annotation_name=xml.path.as_posix() if xml else "",
            )
        )
    errors += [
        f"{p}: no image with the same name next to it; skipped."
        for p in sorted(by_path)
        if p.suffix.lower() == ".xml" and p not in used_xml
    ]
    return SourceItems(items=items, errors=errors, colors=colors)


# --- writing ---------------------------------------------------------------------


def _rgb(color: str) -> str:
    if not _HEX.match(color or ""):
        return ""
    return ",".join(str(int(color[i : i + 2], 16)) for i in (1, 3, 5))


def labelmap_text(labels: list[Label]) -> str:
    """CVAT's labelmap.txt: `# label:color_rgb:parts:actions`, background first."""
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{label.name}:{_rgb(label.color)}::" for label in labels]
    return "\n".join(lines) + "\n"


def _rust_flag(export: ExportPhoto) -> str:
    photo = export.photo
    has_rust = photo.verdict == Verdict.RUST or (
        photo.verdict == Verdict.UNKNOWN and any(b.name == "rust" for b in export.annotation.boxes)
    )
    return "1" if has_rust else "-1" if photo.verdict == Verdict.NORUST else "0"


def write_zip(
    zf: zipfile.ZipFile,
    photos: list[ExportPhoto],
    labels: list[Label],
    tick: Callable[[int], None],
) -> None:
    """Lay out the photos as CVAT's "Pascal VOC 1.1" export does."""
    for done, export in enumerate(photos, 1):
        zf.writestr(
            f"JPEGImages/{export.image_name}",
            export.image_bytes(),
            compress_type=zipfile.ZIP_STORED,
        )
        ann = dataclasses.replace(
            export.annotation, folder="JPEGImages", path=f"JPEGImages/{export.image_name}"
        )
        zf.writestr(f"Annotations/{export.stem}.xml", to_xml_bytes(ann))
        tick(done)
    zf.writestr(f"ImageSets/Main/{SUBSET}.txt", "".join(f"{p.stem}\n" for p in photos))
    zf.writestr(
        f"ImageSets/Main/rust_{SUBSET}.txt",
        "".join(f"{p.stem} {_rust_flag(p)}\n" for p in photos),
    )
    zf.writestr("labelmap.txt", labelmap_text(labels))


# --- the VOC entry points of before, kept for their callers ------------------------


def import_voc(source: str | PathLike | IO[bytes], **options: Any) -> ImportReport:
    """`import_dataset(source, format="voc", ...)`."""
    return import_dataset(source, format="voc", **options)


def export_voc(
    out: str | PathLike | IO[bytes],
    *,
    inspection: Inspection | None = None,
    asset: Asset | None = None,
    **options: Any,
) -> ExportReport:
    """`export_dataset(out, format="voc", ...)`."""
    return export_dataset(out, format="voc", inspection=inspection, asset=asset, **options)


__all__ = ["ExportReport", "ImportReport", "export_voc", "import_voc", "read_items", "voc_path"]
