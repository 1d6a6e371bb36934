"""Reading an import source without trusting it: a folder, a .zip path or an uploaded zip.

Zip entries with `..`, absolute paths or links, too many entries, absurd sizes
or compression ratios are refused (InvalidArchive) before anything is read.
Every dataset format (VOC, COCO, YOLO) reads its files through here.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings

from inspection.errors import InvalidArchive

# A zip entry that inflates more than this many times is a zip bomb, not a photo set.
MAX_COMPRESSION_RATIO = 200
# Annotation files (XML, JSON, TXT, YAML) larger than this are refused, not parsed.
MAX_TEXT_BYTES = 5 * 1024 * 1024
# A COCO file holds a whole dataset's boxes: it may be bigger than one XML file.
MAX_JSON_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One file of the source: its relative posix path, size, and a reader."""

    path: PurePosixPath
    size: int
    read: Callable[[], bytes]


def _limit_bytes() -> int:
    return settings.RUSTWATCH_MAX_IMPORT_BYTES


def _max_entries() -> int:
    return getattr(settings, "RUSTWATCH_MAX_IMPORT_ENTRIES", 50_000)


def _is_hidden(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts)


def _safe_member_name(name: str) -> PurePosixPath:
    """The entry's path, or InvalidArchive if it could escape the import (`..`, absolute)."""
    normalised = name.replace("\\", "/")
    if (
        normalised.startswith("/")
        or re.match(r"^[A-Za-z]:", normalised)
        or "\x00" in normalised
        or any(part == ".." for part in normalised.split("/"))
    ):
        raise InvalidArchive(f"Unsafe path in the archive: {name!r} (absolute or uses '..').")
    return PurePosixPath(posixpath.normpath(normalised))


def _zip_entries(zf: zipfile.ZipFile) -> list[Entry]:
    """Check every entry of the zip before reading any; return the files to read."""
    infos = zf.infolist()
    if len(infos) > _max_entries():
        raise InvalidArchive(
            f"The archive has {len(infos):,} entries; at most {_max_entries():,} are accepted."
        )
    total = 0
    entries: list[Entry] = []
    for info in infos:
        path = _safe_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidArchive(
                f"The archive entry {info.filename!r} is a link; links are refused."
            )
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise InvalidArchive(f"The archive entry {info.filename!r} is encrypted.")
        total += info.file_size
        if total > _limit_bytes():
            raise InvalidArchive(
                f"The archive unpacks to more than {_limit_bytes():,} bytes; that is refused."
            )
        if info.file_size > 1024 * 1024 and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise InvalidArchive(
                f"The archive entry {info.filename!r} inflates {info.file_size:,} bytes from "
                f"{info.compress_size:,}: refused as a zip bomb."
            )
        if _is_hidden(path):
            continue

        def read(info: zipfile.ZipInfo = info) -> bytes:
            # zipfile stops at the declared size and checks the CRC, so a lying
            # header cannot make this read more than was checked above.
            with zf.open(info) as fh:
                return fh.read()

        entries.append(Entry(path=path, size=info.file_size, read=read))
    return entries


def _folder_entries(root: Path) -> list[Entry]:
    """Every regular file under the folder (links are not followed)."""
    entries: list[Entry] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if name.startswith(".") or full.is_symlink() or not full.is_file():
                continue
            size = full.stat().st_size
            total += size
            if total > _limit_bytes():
                raise InvalidArchive(
                    f"The folder holds more than {_limit_bytes():,} bytes; that is refused."
                )
            if len(entries) >= _max_entries():
                raise InvalidArchive(f"The folder holds more than {_max_entries():,} files.")
            rel = PurePosixPath(full.relative_to(root).as_posix())
            entries.append(Entry(path=rel, size=size, read=full.read_bytes))
    return entries


@contextlib.contextmanager
def open_source(source: Path | str | IO[bytes] | Any) -> Iterator[tuple[list[Entry], str]]:
    """The checked entries of a folder, a .zip path or a binary zip file, and a display name.

    Entries can be read while the block runs; the zip is closed after it.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            yield _folder_entries(path), path.name
            return
        if not path.exists():
            raise InvalidArchive(f"{path}: no such folder or file.")
        fh: IO[bytes] = path.open("rb")
        name = path.name
        owned = True
    else:
        fh = source
        name = Path(str(getattr(source, "name", "") or "upload.zip")).name
        owned = False
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InvalidArchive(f"{name}: not a zip archive or a folder ({exc}).") from exc
        with zf:
            yield _zip_entries(zf), name
    finally:
        if owned:
            fh.close()


def read_text_entry(entry: Entry, limit: int = MAX_TEXT_BYTES) -> bytes:
    """An annotation file's bytes; one over `limit` is refused with a message naming it."""
    if entry.size > limit:
        raise InvalidArchive(f"{entry.path}: {entry.size:,} bytes is too large for this file.")
    return entry.read()
