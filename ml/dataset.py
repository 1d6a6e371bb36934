"""Dataset snapshots as plain Pascal VOC folders, and the splits over them.

A dataset folder is standard VOC::

    JPEGImages/<id>.jpg            the photos (other image formats keep their suffix)
    Annotations/<id>.xml           labelImg XML, for photos with rust boxes
    ImageSets/Main/{train,val,test}.txt        photo ids per split
    ImageSets/Main/rust_{train,val,test,trainval}.txt   "<id>  1" / "<id> -1"
    manifest.json                  hashes, verdicts, groups, named splits

A photo can carry a rust / no-rust verdict with or without boxes (VOC's
per-class lists hold the verdict); a photo with boxes is rust. The manifest
records each photo's sha256 so a snapshot can be checked and hashed.

Splits are deterministic per photo: a photo's split is a function of its
group key alone (a hash), so adding photos never moves old ones. Groups keep
near-duplicates together: photos whose perceptual hashes are close (resized,
re-encoded or nearly identical frames) land in one split, so the test set
never holds a copy of a training photo.

No TensorFlow here: the web process imports this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.images import ImageError, decode, image_size
from ml.voc import VocAnnotation, VocBox, VocError, read_voc, write_atomic, write_voc

log = logging.getLogger(__name__)

CLASS = "rust"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MANIFEST_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder or source folder that cannot be used; names the file."""


@dataclass
class Photo:
    """One photo of a dataset: where it is, what it shows, which group it is in."""

    id: str
    path: Path
    sha256: str
    label: int | None  # 1 rust, 0 no rust, None unknown
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    width: int = 0
    height: int = 0
    group: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def boxed(self) -> bool:
        return len(self.boxes) > 0


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unit_hash(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from a string: the basis of stable splits."""
    digest = hashlib.sha256(f"{salt}{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --------------------------------------------------------------------------
# near-duplicates


def perceptual_hash(path: str | os.PathLike) -> str:
    """64-bit pHash of a photo (hex), robust to resizing and re-encoding."""
    import imagehash

    return str(imagehash.phash(decode(path, min_side=64)))


def group_near_duplicates(hashes: dict[str, str], max_distance: int = 10) -> dict[str, str]:
    """Map photo id -> group key; photos within `max_distance` bits share a group.

    Union-find over all pairs (fine for tens of thousands of photos: the
    distances are one vectorised XOR per photo). The group key is the
    smallest id of the group, so it is stable as long as the group is.
    """
    ids = sorted(hashes)
    if not ids:
        return {}
    bits = np.array(
        [np.unpackbits(np.frombuffer(bytes.fromhex(hashes[i]), dtype=np.uint8)) for i in ids],
        dtype=np.uint8,
    )
    parent = list(range(len(ids)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(ids) - 1):
        dist = (bits[a + 1 :] != bits[a]).sum(axis=1)
        for b in np.nonzero(dist <= max_distance)[0] + a + 1:
            ra, rb = find(a), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {i: ids[find(k)] for k, i in enumerate(ids)}


# --------------------------------------------------------------------------
# splits


def assign_split(group: str, val: float = 0.15, test: float = 0.15, salt: str = "") -> str:
    """train / val / test for one group key, by hash: stable and leak-free."""
    u = unit_hash(group, salt)
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def make_splits(
    photos: Sequence[Photo], val: float = 0.15, test: float = 0.15, salt: str = ""
) -> dict[str, list[str]]:
    """Split photo ids by group hash (every photo of a group in one split)."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p in photos:
        out[assign_split(p.group or p.id, val, test, salt)].append(p.id)
    return {k: sorted(v) for k, v in out.items()}


def grouped_folds(
    photos: Sequence[Photo], k: int, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """k (train index, test index) pairs, groups kept whole, classes balanced.

    scikit-learn's StratifiedGroupKFold does the work; `seed` shuffles.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if k < 2:
        raise DatasetError(f"need at least 2 folds, got {k}")
    groups = [p.group or p.id for p in photos]
    if len(set(groups)) < k:
        raise DatasetError(f"{len(set(groups))} photo groups cannot make {k} folds")
    y = [(-1 if p.label is None else p.label) for p in photos]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (tr.tolist(), te.tolist()) for tr, te in splitter.split(np.zeros(len(photos)), y, groups)
    ]


_ARTICLE_RE = re.compile(r"^(rust|norust)\.(\d+)$")


def article_split(photos: Sequence[Photo]) -> dict[str, list[str]] | None:
    """The seed article's split, from the photos' original file names.

    train: rust.0-69, norust.0-59; val: rust.70-75, norust.60-65; test:
    rust.76-81, norust.63-71 (the article's test overlaps its validation on
    norust.63-65; we keep those in test). A photo whose byte-identical copy is
    in test (rust.29 = rust.76) goes to test only, so training never sees a
    test photo. None if no photo has article-style names.
    """
    ranges = {
        "train": {"rust": range(0, 70), "norust": range(0, 60)},
        "val": {"rust": range(70, 76), "norust": range(60, 66)},
        "test": {"rust": range(76, 82), "norust": range(63, 72)},
    }
    found: dict[str, set[str]] = {s: set() for s in SPLITS}
    for p in photos:
        for src in p.sources:
            m = _ARTICLE_RE.match(Path(src).stem)
            if not m:
                continue
            cls, n = m.group(1), int(m.group(2))
            for split, r in ranges.items():
                if n in r[cls]:
                    found[split].add(p.id)
    if not any(found.values()):
        return None
    found["val"] -= found["test"]
    found["train"] -= found["test"] | found["val"]
    return {k: sorted(v) for k, v in found.items()}


# --------------------------------------------------------------------------
# the dataset folder


class VocDataset:
    """A VOC dataset folder: photos with verdicts/boxes, splits, manifest."""

    def __init__(
        self,
        root: Path,
        photos: list[Photo],
        splits: dict[str, dict[str, list[str]]],
        manifest: dict,
    ):
        self.root = root
        self.photos = photos
        self.by_id = {p.id: p for p in photos}
        self.splits = splits  # name -> {"train": ids, "val": ids, "test": ids}
        self.manifest = manifest

    def __len__(self) -> int:
        return len(self.photos)

    @property
    def dataset_hash(self) -> str:
        return self.manifest.get("dataset_hash") or dataset_hash(self.photos)

    def split_names(self) -> list[str]:
        return sorted(self.splits)

    def subset(self, part: str, split: str = "default") -> list[Photo]:
        """Photos of one part ("train", "val", "test", "trainval" or "all")."""
        if part == "all":
            return list(self.photos)
        if split not in self.splits:
            raise DatasetError(
                f"{self.root}: no split named {split!r} (have: {', '.join(self.split_names())})"
            )
        parts = ("train", "val") if part == "trainval" else (part,)
        if any(p not in SPLITS for p in parts):
            raise DatasetError(f"unknown part {part!r}; use train, val, test, trainval or all")
        ids = [i for p in parts for i in self.splits[split].get(p, [])]
        return [self.by_id[i] for i in ids if i in self.by_id]

    def labelled(self, photos: Iterable[Photo] | None = None) -> list[Photo]:
        return [p for p in (self.photos if photos is None else photos) if p.label is not None]

    @staticmethod
    def boxed(photos: Iterable[Photo]) -> list[Photo]:
        return [p for p in photos if p.boxed]


def dataset_hash(photos: Iterable[Photo]) -> str:
    """A hash of what training sees: photo bytes, verdicts and boxes."""
    h = hashlib.sha256()
    for p in sorted(photos, key=lambda p: p.id):
        h.update(f"{p.id}:{p.sha256}:{p.label}:".encode())
        h.update(np.asarray(p.boxes, dtype=np.float32).round(1).tobytes())
    return h.hexdigest()


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]


def _find_image(images: Path, pid: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        p = images / f"{pid}{suffix}"
        if p.is_file():
            return p
    return None


def _boxes_array(ann: VocAnnotation) -> np.ndarray:
    rows = [(b.xmin, b.ymin, b.xmax, b.ymax) for b in ann.boxes if b.name == CLASS]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


def load_dataset(root: str | os.PathLike, *, verify: bool = False) -> VocDataset:
    """Read a VOC dataset folder; errors name the offending file.

    Verdicts come from ImageSets/Main/rust_*.txt (1 / -1; 0 = unknown), then
    the manifest, and any photo with a rust box is rust. With `verify`, file
    hashes are checked against the manifest.
    """
    root = Path(root)
    images, annotations = root / "JPEGImages", root / "Annotations"
    sets = root / "ImageSets" / "Main"
    if not images.is_dir():
        raise DatasetError(f"{root}: not a VOC dataset folder (no JPEGImages/)")
    manifest: dict = {}
    if (root / "manifest.json").is_file():
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{root / 'manifest.json'}: invalid JSON: {exc}") from exc
    mphotos: dict = manifest.get("photos", {})

    ids: list[str] = []
    for s in SPLITS:
        ids += _read_list(sets / f"{s}.txt")
    if not ids:
        ids = sorted(mphotos) or sorted(
            p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
    ids = list(dict.fromkeys(ids))

    verdicts: dict[str, int] = {}
    for s in (*SPLITS, "trainval"):
        f = sets / f"{CLASS}_{s}.txt"
        if not f.is_file():
            continue
        for n, ln in enumerate(f.read_text().splitlines(), 1):
            parts = ln.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
                raise DatasetError(f"{f}:{n}: expected '<id> 1|-1|0', got {ln!r}")
            if parts[1] != "0":
                verdicts[parts[0]] = 1 if parts[1] == "1" else 0

    photos = []
    for pid in ids:
        path = _find_image(images, pid)
        if path is None:
            raise DatasetError(f"{images / pid}.jpg: listed in ImageSets but missing")
        meta = mphotos.get(pid, {})
        boxes = np.zeros((0, 4), dtype=np.float32)
        width, height = meta.get("width", 0), meta.get("height", 0)
        xml = annotations / f"{pid}.xml"
        if xml.is_file():
            ann = read_voc(xml)
            boxes = _boxes_array(ann)
            width, height = ann.width, ann.height
        label = verdicts.get(pid, meta.get("label"))
        if len(boxes):
            label = 1
        sha = meta.get("sha256")
        if not sha or verify:
            actual = sha256_file(path)
            if sha and actual != sha:
                raise DatasetError(f"{path}: content does not match manifest.json sha256")
            sha = actual
        photos.append(
            Photo(
                id=pid,
                path=path,
                sha256=sha,
                label=label,
                boxes=boxes,
                width=width,
                height=height,
                group=meta.get("group", ""),
                sources=meta.get("sources", []),
            )
        )

    splits: dict[str, dict[str, list[str]]] = {}
    default = {s: _read_list(sets / f"{s}.txt") for s in SPLITS}
    if not any(default.values()):
        default = make_splits(photos)
    splits["default"] = default
    for name, parts in manifest.get("splits", {}).items():
        if name != "default":
            splits[name] = {s: list(parts.get(s, [])) for s in SPLITS}
    return VocDataset(root, photos, splits, manifest)


def write_dataset(
    out: str | os.PathLike,
    photos: Sequence[Photo],
    splits: dict[str, dict[str, list[str]]],
    extra: dict | None = None,
    copy: Callable[[Path, Path], object] = shutil.copyfile,
) -> VocDataset:
    """Write photos (copied), XML, ImageSets and manifest.json as a VOC folder.

    `splits["default"]` becomes ImageSets/Main/*.txt; other named splits
    live in the manifest. Files are written atomically; the folder can be
    re-written in place.
    """
    out = Path(out)
    images, annotations, sets = out / "JPEGImages", out / "Annotations", out / "ImageSets" / "Main"
    for d in (images, annotations, sets):
        d.mkdir(parents=True, exist_ok=True)
    written = []
    for p in photos:
        suffix = p.path.suffix.lower() if p.path.suffix.lower() in IMAGE_SUFFIXES else ".jpg"
        target = images / f"{p.id}{'.jpg' if suffix == '.jpeg' else suffix}"
        if p.path.resolve() != target.resolve():
            tmp = target.with_name(f".{target.name}.tmp")
            copy(p.path, tmp)
            os.replace(tmp, target)
        if p.boxed:
            write_voc(
                annotations / f"{p.id}.xml",
                VocAnnotation(
                    filename=target.name,
                    width=p.width,
                    height=p.height,
                    folder="JPEGImages",
                    path=target.name,
                    boxes=[VocBox(*map(int, np.round(b))) for b in p.boxes],
                ),
            )
        written.append(Photo(**{**p.__dict__, "path": target}))
    default = splits["default"]
    for s in SPLITS:
        write_atomic(sets / f"{s}.txt", "".join(f"{i}\n" for i in default.get(s, [])).encode())
    by_id = {p.id: p for p in written}
    for s in (*SPLITS, "trainval"):
        ids = default["train"] + default["val"] if s == "trainval" else default.get(s, [])
        lines = [
            f"{i} {1 if by_id[i].label == 1 else -1 if by_id[i].label == 0 else 0}\n" for i in ids
        ]
        write_atomic(sets / f"{CLASS}_{s}.txt", "".join(lines).encode())
    manifest = {
        "version": MANIFEST_VERSION,
        "dataset_hash": dataset_hash(written),
        "classes": [CLASS],
        "counts": {
            "photos": len(written),
            "rust": sum(p.label == 1 for p in written),
            "norust": sum(p.label == 0 for p in written),
            "boxed": sum(p.boxed for p in written),
            "boxes": int(sum(len(p.boxes) for p in written)),
            "groups": len({p.group or p.id for p in written}),
        },
        "photos": {
            p.id: {
                "file": f"JPEGImages/{p.path.name}",
                "sha256": p.sha256,
                "label": p.label,
                "boxes": len(p.boxes),
                "width": p.width,
                "height": p.height,
                "group": p.group,
                "sources": p.sources,
            }
            for p in written
        },
        "splits": splits,
        **(extra or {}),
    }
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    return VocDataset(out, written, splits, manifest)


# --------------------------------------------------------------------------
# from-folders


def _scan_sources(src: Path) -> list[tuple[Path, int | None, Path | None]]:
    """(image, label, xml) for every photo under src.

    A photo's label comes from the nearest ancestor folder named rust or
    norust (also no_rust / no-rust / not_rust); a labelImg XML next to a photo
    (same stem) gives its boxes and makes it rust.
    """
    names = {"rust": 1, "norust": 0, "no_rust": 0, "no-rust": 0, "not_rust": 0, "clean": 0}
    found = []
    for path in sorted(src.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if any(part.startswith(".") for part in path.relative_to(src).parts):
            continue
        label = None
        for parent in path.relative_to(src).parents:
            if parent.name.lower() in names:
                label = names[parent.name.lower()]
                break
        xml = path.with_suffix(".xml")
        found.append((path, label, xml if xml.is_file() else None))
    return found


def from_folders(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val: float = 0.15,
    test: float = 0.15,
    max_distance: int = 10,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> VocDataset:
    """Build a VOC dataset folder from class folders and labelImg folders.

    Photos are deduplicated by content hash (a copy under two names is one
    photo with two sources); boxes from any copy's XML are kept. Near-
    duplicates by perceptual hash form groups, and splits keep groups whole.
    A photo filed as both rust and no rust, a corrupt image or a malformed
    XML raises DatasetError naming the file.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DatasetError(f"{src}: no such folder")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise DatasetError(f"{out}: output must not be inside the source folder")
    items = _scan_sources(src)
    if not items:
        raise DatasetError(f"{src}: no photos found (expected rust/, norust/ or image+XML files)")
    wrap = progress or (lambda x: x)
    by_sha: dict[str, Photo] = {}
    used_ids: set[str] = set()
    for path, label, xml in wrap(items):
        try:
            width, height = image_size(path)
        except ImageError as exc:
            raise DatasetError(str(exc)) from exc
        boxes = np.zeros((0, 4), dtype=np.float32)
        if xml is not None:
            try:
                ann = read_voc(xml)
            except VocError as exc:
                raise DatasetError(str(exc)) from exc
            if (ann.width, ann.height) != (width, height):
                raise DatasetError(
                    f"{xml}: size {ann.width}x{ann.height} differs from the photo's "
                    f"{width}x{height}"
                )
            boxes = _boxes_array(ann)
            if len(boxes):
                if label == 0:
                    raise DatasetError(f"{xml}: rust boxes on a photo filed as no rust ({path})")
                label = 1
        sha = sha256_file(path)
        rel = str(path.relative_to(src))
        if sha in by_sha:
            p = by_sha[sha]
            if label is not None and p.label is not None and label != p.label:
                raise DatasetError(
                    f"{path}: same photo as {p.sources[0]} but filed under the other class"
                )
            p.label = p.label if label is None else label
            if len(boxes) and not p.boxed:
                p.boxes = boxes
            p.sources.append(rel)
            continue
        pid = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)
        if pid in used_ids:
            pid = f"{pid}-{sha[:8]}"
        used_ids.add(pid)
        by_sha[sha] = Photo(
            id=pid,
            path=path,
            sha256=sha,
            label=label,
            boxes=boxes,
            width=width,
            height=height,
            sources=[rel],
        )
    photos = sorted(by_sha.values(), key=lambda p: p.id)
    for p in photos:
        if p.boxed:
            p.boxes[:, [0, 2]] = p.boxes[:, [0, 2]].clip(0, p.width)
            p.boxes[:, [1, 3]] = p.boxes[:, [1, 3]].clip(0, p.height)
    phashes = {p.id: perceptual_hash(p.path) for p in photos}
    groups = group_near_duplicates(phashes, max_distance)
    for p in photos:
        p.group = groups[p.id]
    splits = {"default": make_splits(photos, val, test)}
    art = article_split(photos)
    if art is not None:
        splits["article"] = art
    n_files = len(items)
    log.info(
        "%d files -> %d distinct photos in %d groups",
        n_files,
        len(photos),
        len(set(groups.values())),
    )
    return write_dataset(
        out,
        photos,
        splits,
        extra={
            "source": str(src),
            "files": n_files,
            "near_duplicate_max_distance": max_distance,
            "phash": phashes,
        },
    )
