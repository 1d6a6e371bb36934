"""Pascal VOC annotation files, read and written the way labelImg does.

labelImg (tzutalin/labelImg, ``libs/pascal_voc_io.py``) writes one XML file
per image with ``folder``, ``filename``, ``path``, ``source/database``,
``size``, ``segmented`` and one ``object`` per box. We write exactly those
fields, and read them back with lxml with entity resolution and network
access off, so a hostile XML file cannot read local files or call out.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree


class VocError(ValueError):
    """A VOC annotation that cannot be read; the message names the file."""


@dataclass(frozen=True)
class VocBox:
    """One box in original-image pixels, VOC style (xmin, ymin, xmax, ymax)."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int
    name: str = "rust"
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclass
class VocAnnotation:
    """The content of one labelImg XML file."""

    filename: str
    width: int
    height: int
    depth: int = 3
    boxes: list[VocBox] = field(default_factory=list)
    folder: str = ""
    path: str = ""
    database: str = "Unknown"
    verified: bool = False


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=True,
    )


def _int(node: etree._Element, tag: str, source: str) -> int:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise VocError(f"{source}: <{tag}> is missing")
    try:
        # labelImg itself reads int(float(text)): some tools write "12.0".
        return int(float(child.text.strip()))
    except ValueError as exc:
        raise VocError(f"{source}: <{tag}> is not a number: {child.text!r}") from exc


def _text(node: etree._Element, tag: str, default: str = "") -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def parse_voc(data: bytes, source: str = "<xml>", *, check_bounds: bool = True) -> VocAnnotation:
    """Parse labelImg/VOC XML bytes; raise VocError naming ``source`` if malformed."""
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise VocError(f"{source}: malformed XML: {exc}") from exc
    if root.tag != "annotation":
        raise VocError(f"{source}: root element is <{root.tag}>, expected <annotation>")
    size = root.find("size")
    if size is None:
        raise VocError(f"{source}: <size> is missing")
    width, height = _int(size, "width", source), _int(size, "height", source)
    depth_text = _text(size, "depth", "3")
    depth = int(depth_text) if depth_text.isdigit() else 3
    if width <= 0 or height <= 0:
        raise VocError(f"{source}: image size {width}x{height} is not positive")
    ann = VocAnnotation(
        filename=_text(root, "filename"),
        width=width,
        height=height,
        depth=depth,
        folder=_text(root, "folder"),
        path=_text(root, "path"),
        database=_text(
            root.find("source") if root.find("source") is not None else root, "database", "Unknown"
        ),
        verified=root.get("verified") == "yes",
    )
    for i, obj in enumerate(root.findall("object")):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise VocError(f"{source}: object {i} has no <bndbox>")
        name = _text(obj, "name")
        if not name:
            raise VocError(f"{source}: object {i} has no <name>")
        box = VocBox(
            xmin=_int(bnd, "xmin", source),
            ymin=_int(bnd, "ymin", source),
            xmax=_int(bnd, "xmax", source),
            ymax=_int(bnd, "ymax", source),
            name=name,
            difficult=_text(obj, "difficult", "0") == "1",
            truncated=_text(obj, "truncated", "0") == "1",
            pose=_text(obj, "pose", "Unspecified"),
        )
        if check_bounds:
            check_box(box, width, height, f"{source}: object {i}")
        ann.boxes.append(box)
    return ann


def read_voc(path: str | os.PathLike, *, check_bounds: bool = True) -> VocAnnotation:
    """Read one VOC XML file; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VocError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_voc(data, str(path), check_bounds=check_bounds)


def check_box(box: VocBox, width: int, height: int, where: str = "box") -> None:
    """Raise VocError unless the box is non-empty and inside a width x height image.

    VOC coordinates are 1-based, but labelImg and many tools write 0 for a box
    at the left or top edge, so 0..width and 0..height are accepted.
    """
    if not (box.xmin < box.xmax and box.ymin < box.ymax):
        raise VocError(f"{where}: empty box ({box.xmin},{box.ymin},{box.xmax},{box.ymax})")
    if box.xmin < 0 or box.ymin < 0 or box.xmax > width or box.ymax > height:
        raise VocError(
            f"{where}: box ({box.xmin},{box.ymin},{box.xmax},{box.ymax}) "
            f"is outside the {width}x{height} image"
        )


def is_truncated(box: VocBox, width: int, height: int) -> bool:
    """labelImg's rule: a box touching an image edge is marked truncated."""
    return box.xmin <= 1 or box.ymin <= 1 or box.xmax >= width or box.ymax >= height


def to_xml_bytes(ann: VocAnnotation) -> bytes:
    """Serialise in labelImg's layout and field order."""
    root = etree.Element("annotation")
    if ann.verified:
        root.set("verified", "yes")
    etree.SubElement(root, "folder").text = ann.folder
    etree.SubElement(root, "filename").text = ann.filename
    etree.SubElement(root, "path").text = ann.path or ann.filename
    source = etree.SubElement(root, "source")
    etree.SubElement(source, "database").text = ann.database or "Unknown"
    size = etree.SubElement(root, "size")
    etree.SubElement(size, "width").text = str(ann.width)
    etree.SubElement(size, "height").text = str(ann.height)
    etree.SubElement(size, "depth").text = str(ann.depth)
    etree.SubElement(root, "segmented").text = "0"
    for box in ann.boxes:
        obj = etree.SubElement(root, "object")
        etree.SubElement(obj, "name").text = box.name
        etree.SubElement(obj, "pose").text = box.pose or "Unspecified"
        truncated = box.truncated or is_truncated(box, ann.width, ann.height)
        etree.SubElement(obj, "truncated").text = "1" if truncated else "0"
        etree.SubElement(obj, "difficult").text = "1" if box.difficult else "0"
        bnd = etree.SubElement(obj, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            etree.SubElement(bnd, tag).text = str(getattr(box, tag))
    return etree.tostring(root, pretty_print=True, encoding="utf-8")


def write_atomic(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> None:
    """Write bytes so that readers see the old file or the new one, never half.

    `mode` sets the file's permissions before it appears under its name (a
    temp file starts as 0600, which a web server of another user cannot serve).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_voc(path: str | os.PathLike, ann: VocAnnotation) -> None:
    """Write one labelImg-compatible XML file atomically."""
    write_atomic(path, to_xml_bytes(ann))
