"""The inspectors' queue: the unlabelled photo a person should label next, one person at a time.

Order: the active-learning priority (`Photo.queue_score`, from `ml.active`: the
classifier's margin, the detector's uncertainty and their disagreement, weighted
by how typical the photo is of the training photos), then
diversity: among the best `RUSTWATCH_QUEUE_POOL` candidates, the one farthest (in
the classifier's embedding space, scaled by its priority) from the photos other
inspectors hold and the ones labelled last (k-center greedy), so two inspectors
do not get two frames of the same plate. Unscored photos come after scored ones,
oldest first.

A photo handed out is leased to that inspector (`QueueLease`, one row per photo:
the database refuses a second lease of the same photo, so concurrent `next`
calls never hand one photo to two people). A lease ends when it expires, when
the photo is saved (boxes or verdict), or on skip; a skipped photo goes to the
others, not back to the one who skipped it, for `RUSTWATCH_QUEUE_SKIP_S`.
Asking again while holding a live lease gives the same photo (a retry is safe).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from inspection.errors import Conflict, DomainError
from inspection.models import Photo, PhotoEvent, QueueLease, QueueSkip
from inspection.selectors import UNLABELLED
from ml.active import k_center_greedy, priority

log = logging.getLogger(__name__)

__all__ = [
    "QueueItem",
    "queue_candidates",
    "queue_next",
    "queue_release",
    "queue_skip",
    "rerank_queue",
]

# Photos labelled last that the diversity step keeps away from.
RECENT_LABELLED = 50
ATTEMPTS = 8


@dataclass(frozen=True)
class QueueItem:
    """A photo handed out by the queue, and until when it is the caller's."""

    photo: Photo
    lease: QueueLease
    remaining: int  # unlabelled photos not leased to anyone (this one excluded)


def _ttl() -> timedelta:
    return timedelta(seconds=settings.RUSTWATCH_QUEUE_LEASE_S)


def queue_candidates(user: AbstractBaseUser, *, now=None) -> QuerySet[Photo]:
    """The unlabelled photos `user` may be given, best first (without diversity)."""
    now = now or timezone.now()
    skipped_since = now - timedelta(seconds=settings.RUSTWATCH_QUEUE_SKIP_S)
    return (
        Photo.objects.filter(UNLABELLED)
        .exclude(lease__expires_at__gt=now)
        .exclude(skips__user=user, skips__at__gt=skipped_since)
        .order_by(F("queue_score").desc(nulls_last=True), "uploaded_at", "id")
    )


def _embedding(raw: bytes | memoryview | None) -> np.ndarray | None:
    if raw is None:
        return None
    return np.frombuffer(bytes(raw), dtype=np.float16).astype(np.float32)


def _pick(pool: list[Photo], user: AbstractBaseUser, now) -> Photo:
    """The pool's photo most worth labelling and least like what others hold or just labelled."""
    if len(pool) == 1 or pool[0].queue_score is None:
        return pool[0]
    vectors = [_embedding(p.embedding) for p in pool]
    dims = {v.shape for v in vectors if v is not None}
    if any(v is None for v in vectors) or len(dims) != 1:
        return pool[0]
    held = Photo.objects.filter(lease__expires_at__gt=now).exclude(lease__user=user)
    recent = Photo.objects.exclude(verdict_at=None).order_by("-verdict_at")[:RECENT_LABELLED]
    refs = [
        v
        for raw in [
            *held.values_list("embedding", flat=True),
            *recent.values_list("embedding", flat=True),
        ]
        if (v := _embedding(raw)) is not None and v.shape in dims
    ]
    scores = [max(p.queue_score or 0.0, 0.0) for p in pool]
    labelled = np.stack(refs) if refs else None
    return pool[k_center_greedy(np.stack(vectors), 1, labelled, scores)[0]]


def queue_next(*, user: AbstractBaseUser) -> QueueItem | None:
    """Lease the next photo to `user` (or renew the one they hold); None when all are done."""
    if not getattr(user, "is_authenticated", False):
        raise DomainError("Only a signed-in inspector can take photos from the queue.")
    now = timezone.now()
    QueueLease.objects.filter(expires_at__lte=now).delete()
    held = QueueLease.objects.filter(user=user).select_related("photo").first()
    if held is not None:
        if Photo.objects.filter(UNLABELLED, pk=held.photo_id).exists():
            QueueLease.objects.filter(pk=held.pk).update(expires_at=now + _ttl())
            held.refresh_from_db()
            return QueueItem(held.photo, held, _remaining(now))
        held.delete()
    pool_size = max(1, settings.RUSTWATCH_QUEUE_POOL)
    for _ in range(ATTEMPTS):
        pool = list(queue_candidates(user, now=now)[:pool_size])
        if not pool:
            return None
        photo = _pick(pool, user, now)
        try:
            with transaction.atomic():
                lease = QueueLease.objects.create(photo=photo, user=user, expires_at=now + _ttl())
        except IntegrityError:
            # someone else leased it between our read and our write: the next best one
            time.sleep(0.005)
            continue
        log.info("queue: photo %s leased to %s until %s", photo.pk, user, lease.expires_at)
        return QueueItem(photo, lease, _remaining(now))
    raise Conflict("The queue is busy (other inspectors took every photo offered); try again.")


def _remaining(now) -> int:
    return Photo.objects.filter(UNLABELLED).exclude(lease__expires_at__gt=now).count()


def queue_skip(*, photo: Photo, user: AbstractBaseUser) -> None:
    """`user` passes on `photo`: their lease ends and the queue offers it to the others."""
    with transaction.atomic():
        QueueLease.objects.filter(photo=photo, user=user).delete()
        QueueSkip.objects.update_or_create(photo=photo, user=user, defaults={})


def queue_release(photo_id: int) -> None:
    """End any lease on the photo (it was saved, or deleted)."""
    QueueLease.objects.filter(photo_id=photo_id).delete()


@receiver(post_save, sender=PhotoEvent, dispatch_uid="queue_release_on_save")
def _release_on_save(sender, instance: PhotoEvent, created: bool, **kwargs) -> None:
    """A person saved the photo's boxes or verdict: whoever held it from the queue is done."""
    if created and instance.action in (PhotoEvent.Action.BOXES, PhotoEvent.Action.VERDICT):
        queue_release(instance.photo_id)


def rerank_queue(*, batch: int = 5000) -> int:
    """Recompute every unlabelled scored photo's priority from its cached scores.

    No model runs: the classifier's probability and the detector's uncertainty and
    best box score are on the photo (`store_prediction`). Returns how many rows changed.
    """
    rows = list(
        Photo.objects.filter(UNLABELLED, score__isnull=False).values_list(
            "pk", "score", "detector_uncertainty", "detector_max_score", "typicality"
        )
    )
    if not rows:
        return 0
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    parts = np.array([r[1:] for r in rows], dtype=float)  # None -> nan
    prob, det_unc, det_max, typical = parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3]
    with_det = ~(np.isnan(det_unc) | np.isnan(det_max))
    out = np.empty(len(rows))
    if with_det.any():
        w = with_det
        out[w] = priority(prob[w], det_unc[w], det_max[w], typicality=typical[w])["score"]
    if (~with_det).any():
        out[~with_det] = priority(prob[~with_det], typicality=typical[~with_det])["score"]
    table = connection.ops.quote_name(Photo._meta.db_table)
    sql = f"UPDATE {table} SET queue_score = %s WHERE id = %s"  # noqa: S608 (no user input)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            cursor.executemany(
                sql,
                list(
                    zip(
                        out[start : start + batch].tolist(),
                        ids[start : start + batch].tolist(),
                        strict=True,
                    )
                ),
            )
    return len(rows)
