"""Snapshots: the labelled photos frozen as a VOC folder + manifest that `ml/` trains on.

- Which photos: the labelled ones (`selectors.UNLABELLED` negated: a human verdict,
  or verified).
  The classifier label is the verdict; a verified photo without a verdict is
  rust when it has rust boxes. A photo a person called "no rust" keeps no
  boxes for the detector (the person said otherwise).
- Boxes: the annotation boxes (`selectors.LABEL_BOXES`: human, or accepted
  suggestions) of the `rust` label. Rejected suggestions travel in the
  manifest (`rejected`) as negative feedback.
- Splits: each photo's split is decided once, persisted in `Photo.split` and
  never changed (a photo never moves from val/test to train as data grows).
  A new photo joins the split of its near-duplicate group when one of the
  group has a split; else the split comes from a hash of its group key: the
  inspection when the data spans enough inspections, else the near-duplicate
  group (by the root photo's sha256, so the same photos split the same way
  in every database).
- The folder is built in scratch space, then written through Django's storage
  API under `snapshots/`; `materialize` gives a local folder back (the file
  itself on a local FileSystemStorage, a downloaded copy elsewhere).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inspection.errors import DomainError
from inspection.models import Box, Photo, Snapshot, Verdict
from inspection.selectors import LABEL_BOXES, UNLABELLED
from ml.dataset import SPLITS, assign_split, write_dataset
from ml.dataset import Photo as MlPhoto

log = logging.getLogger(__name__)

# A photo is labelled once it has a human verdict or is verified: the one rule, in selectors.
LABELLED = ~UNLABELLED
RUST = "rust"
# Splits are grouped by inspection once the labelled photos span this many inspections
# (with fewer, whole inspections would leave val or test empty).
MIN_INSPECTIONS_FOR_GROUPING = 8


class EmptySnapshot(DomainError):
    status = 409
    code = "no_labelled_photos"


def _storage_copy(src: Path, dst: Path) -> None:
    """Copy a photo out of storage (src is its storage name) to a local file."""
    with default_storage.open(str(src), "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _split_for_new(photos: list[Photo], group_of: dict[int, str]) -> dict[int, str]:
    """Splits for photos that have none yet; persisted by the caller."""
    taken: dict[int, str] = {}
    root_split = {
        (p.near_duplicate_of_id or p.id): p.split
        for p in Photo.objects.filter(~Q(split=""))
        .only("id", "near_duplicate_of_id", "split")
        .iterator()
    }
    for p in photos:
        if p.split:
            continue
        root = p.near_duplicate_of_id or p.id
        taken[p.id] = root_split.get(root) or assign_split(group_of[p.id])
        root_split.setdefault(root, taken[p.id])
    return taken


def _group_keys(photos: list[Photo]) -> dict[int, str]:
    inspections = {p.inspection_id for p in photos}
    if len(inspections) >= MIN_INSPECTIONS_FOR_GROUPING:
        return {p.id: f"inspection-{p.inspection_id}" for p in photos}
    roots = {p.near_duplicate_of_id or p.id for p in photos}
    sha = dict(Photo.objects.filter(id__in=roots).values_list("id", "sha256"))
    return {p.id: sha.get(p.near_duplicate_of_id or p.id, p.sha256) for p in photos}


def labelled_count() -> int:
    """Human labels so far: what the label trigger counts from."""
    return Photo.objects.filter(LABELLED).count()


def create_snapshot() -> Snapshot:
    """Freeze the labelled photos now; raises EmptySnapshot when there are none."""
    photos = list(Photo.objects.filter(LABELLED).select_related("inspection").order_by("id"))
    if not photos:
        raise EmptySnapshot("No labelled photos yet: label some photos before training.")
    group_of = _group_keys(photos)
    new_splits = _split_for_new(photos, group_of)
    with transaction.atomic():
        for pid, split in new_splits.items():
            Photo.objects.filter(pk=pid, split="").update(split=split)
    for p in photos:
        p.split = p.split or new_splits[p.id]

    boxes: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for b in Box.objects.filter(LABEL_BOXES, photo__in=photos, label__name=RUST).order_by("id"):
        boxes[b.photo_id].append((b.xmin, b.ymin, b.xmax, b.ymax))
    rejected: dict[str, list[dict]] = defaultdict(list)
    for b in Box.objects.filter(
        photo__in=photos, source=Box.Source.MODEL, state=Box.State.REJECTED
    ).order_by("id"):
        rejected[f"p{b.photo_id}"].append(
            {
                "box": [b.xmin, b.ymin, b.xmax, b.ymax],
                "score": b.score,
                "model_version": b.model_version,
            }
        )

    ml_photos = []
    for p in photos:
        if p.verdict == Verdict.RUST:
            label = 1
        elif p.verdict == Verdict.NORUST:
            label = 0
        else:  # verified without a verdict
            label = 1 if boxes.get(p.id) else 0
        rows = boxes.get(p.id, []) if label == 1 else []
        ml_photos.append(
            MlPhoto(
                id=f"p{p.id}",
                path=Path(p.image.name),
                sha256=p.sha256,
                label=label,
                boxes=np.asarray(rows, dtype=np.float32).reshape(-1, 4),
                width=p.width,
                height=p.height,
                group=group_of[p.id],
                sources=[p.original_name or p.image.name],
            )
        )
    splits = {s: sorted(f"p{p.id}" for p in photos if p.split == s) for s in SPLITS}
    name = f"snapshots/{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"
    scratch = Path(settings.RUSTWATCH_WORK_DIR)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="snapshot-", dir=scratch) as tmp:
        dataset = write_dataset(
            tmp,
            ml_photos,
            {"default": splits},
            extra={
                "rejected": dict(rejected),
                "photo_ids": {f"p{p.id}": p.id for p in photos},
            },
            copy=_storage_copy,
        )
        _upload_folder(Path(tmp), name)
    counts = dataset.manifest["counts"]
    return Snapshot.objects.create(
        path=name,
        dataset_hash=dataset.dataset_hash,
        photo_count=counts["photos"],
        box_count=counts["boxes"],
        rust_count=counts["rust"],
        splits={s: len(ids) for s, ids in splits.items()},
    )


def _upload_folder(local: Path, name: str) -> None:
    """Every file under `local` into storage under `name`/ (same relative paths)."""
    for f in sorted(local.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                default_storage.save(f"{name}/{f.relative_to(local).as_posix()}", File(fh))


def upload_folder(local: Path, name: str) -> None:
    """Write a finished local folder (an artifact) into storage as `name`/."""
    _upload_folder(local, name)


def materialize(name: str) -> Path:
    """A local folder with the content of storage folder `name` (read-only use)."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        pass
    target = Path(settings.RUSTWATCH_WORK_DIR) / "storage-cache" / name
    if (target / ".complete").is_file():
        return target
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    _download(name, staging)
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    return target


def _download(name: str, local: Path) -> None:
    dirs, files = default_storage.listdir(name)
    local.mkdir(parents=True, exist_ok=True)
    for f in files:
        with default_storage.open(f"{name}/{f}", "rb") as fin, open(local / f, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    for d in dirs:
        _download(f"{name}/{d}", local / d)


def delete_folder(name: str) -> None:
    """Remove a storage folder and everything in it (a half-uploaded artifact)."""
    try:
        dirs, files = default_storage.listdir(name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for f in files:
        default_storage.delete(f"{name}/{f}")
    for d in dirs:
        delete_folder(f"{name}/{d}")
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:
        return
    shutil.rmtree(path, ignore_errors=True)
