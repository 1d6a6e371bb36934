"""The queue: priority order with diversity, leases, skip, release on save, re-rank."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from inspection.models import Photo, QueueLease
from tests.conftest import jpeg_bytes, make_user

pytestmark = pytest.mark.django_db


def photos(inspection, n: int) -> list[Photo]:
    from inspection.services.photos import ingest_photo

    out = []
    for i in range(n):
        color = (10 + 20 * (i % 12), 5 * (i // 12), 90)
        out.append(
            ingest_photo(
                inspection=inspection,
                file=ContentFile(jpeg_bytes(32, 24, color=color), name=f"p{i}.jpg"),
                filename=f"p{i}.jpg",
                user=None,
            )
        )
    return out


def scored(photo: Photo, queue_score: float, embedding=None) -> None:
    emb = None if embedding is None else np.asarray(embedding, np.float16).tobytes()
    Photo.objects.filter(pk=photo.pk).update(queue_score=queue_score, score=0.5, embedding=emb)


def test_next_hands_out_by_priority_and_holds_a_lease(inspection, inspector):
    from inspection.services.queue import queue_next

    a, b, c = photos(inspection, 3)
    scored(a, 0.2)
    scored(b, 0.9)  # c is unscored: last
    item = queue_next(user=inspector)
    assert item.photo.pk == b.pk
    assert item.lease.expires_at > timezone.now()
    assert queue_next(user=inspector).photo.pk == b.pk, "asking again gives the same photo"
    other = make_user("olga", "inspector")
    assert queue_next(user=other).photo.pk == a.pk
    third = make_user("tom", "inspector")
    assert queue_next(user=third).photo.pk == c.pk
    assert queue_next(user=make_user("uma", "inspector")) is None


def test_diversity_prefers_a_photo_unlike_what_others_hold(inspection, inspector, settings):
    from inspection.services.queue import queue_next

    settings.RUSTWATCH_QUEUE_POOL = 3
    a, b, c = photos(inspection, 3)
    scored(a, 0.90, [1, 0, 0, 0])
    scored(b, 0.89, [0.99, 0.01, 0, 0])  # nearly the same view as a
    scored(c, 0.80, [0, 0, 1, 0])
    assert queue_next(user=inspector).photo.pk == a.pk
    # b is a near-copy of the photo a colleague holds; c is as uncertain and elsewhere
    assert queue_next(user=make_user("olga", "inspector")).photo.pk == c.pk


def test_skip_gives_the_photo_to_others_not_back(inspection, inspector):
    from inspection.services.queue import queue_next, queue_skip

    a, b = photos(inspection, 2)
    scored(a, 0.9)
    scored(b, 0.1)
    assert queue_next(user=inspector).photo.pk == a.pk
    queue_skip(photo=a, user=inspector)
    assert queue_next(user=inspector).photo.pk == b.pk
    assert queue_next(user=make_user("olga", "inspector")).photo.pk == a.pk


def test_saving_the_photo_ends_the_lease(inspection, inspector):
    from inspection.services.photos import set_verdict
    from inspection.services.queue import queue_next

    a, b = photos(inspection, 2)
    scored(a, 0.9)
    scored(b, 0.1)
    photo = queue_next(user=inspector).photo
    set_verdict(photo=photo, verdict="rust", user=inspector)
    assert not QueueLease.objects.filter(photo=photo).exists()
    assert queue_next(user=inspector).photo.pk == b.pk, "labelled photos leave the queue"


def test_an_expired_lease_goes_to_the_next_inspector(inspection, inspector):
    from inspection.services.queue import queue_next

    (a,) = photos(inspection, 1)
    queue_next(user=inspector)
    QueueLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_next(user=make_user("olga", "inspector")).photo.pk == a.pk


def test_rerank_recomputes_priority_from_cached_scores(inspection):
    from inspection.services.queue import queue_candidates, rerank_queue
    from inspection.services.suggestions import queue_priority

    a, b, c = photos(inspection, 3)
    Photo.objects.filter(pk=a.pk).update(
        score=0.5, detector_uncertainty=0.9, detector_max_score=0.5
    )
    Photo.objects.filter(pk=b.pk).update(score=0.99)
    Photo.objects.filter(pk=c.pk).update(
        score=0.7, detector_uncertainty=0.0, detector_max_score=0.0
    )
    assert rerank_queue() == 3
    got = dict(Photo.objects.values_list("pk", "queue_score"))
    assert got[a.pk] == pytest.approx(queue_priority(0.5, 0.9, 0.5))
    assert got[b.pk] == pytest.approx(queue_priority(0.99, None, None))
    assert got[c.pk] == pytest.approx(queue_priority(0.7, 0.0, 0.0))
    user = make_user("ines2", "inspector")
    assert [p.pk for p in queue_candidates(user)][0] == a.pk
    # an outlier (atypical of the training photos) waits behind an equally unsure typical one
    Photo.objects.filter(pk=b.pk).update(score=0.5, typicality=0.4)
    Photo.objects.filter(pk=c.pk).update(score=0.5, typicality=0.9)
    rerank_queue()
    got = dict(Photo.objects.values_list("pk", "queue_score"))
    assert got[b.pk] == pytest.approx(queue_priority(0.5, None, None, 0.4))
    assert got[b.pk] < got[c.pk] < queue_priority(0.5, None, None)


def test_beat_reranks_the_queue_on_a_schedule_editable_in_the_admin(inspection):
    """The PeriodicTask names a registered task that re-ranks from the cached scores."""
    from django_celery_beat.models import PeriodicTask

    from inspection.celery import app
    from inspection.services.suggestions import queue_priority

    app.loader.import_default_modules()  # the task modules a worker imports (autodiscovery)
    rerank = PeriodicTask.objects.get(name="queue re-rank")
    assert rerank.enabled and rerank.interval is not None and rerank.interval.every >= 1
    assert rerank.task in app.tasks, f"{rerank.task} is not a Celery task"
    (a,) = photos(inspection, 1)
    Photo.objects.filter(pk=a.pk).update(score=0.5, queue_score=None)
    assert app.tasks[rerank.task].apply().get() == 1  # what beat sends, run here
    a.refresh_from_db()
    assert a.queue_score == pytest.approx(queue_priority(0.5, None, None))


@pytest.mark.django_db(transaction=True)
def test_concurrent_next_calls_never_share_a_photo(inspection):
    """Eight inspectors ask at once, each on its own database connection (threads)."""
    from inspection.services.queue import queue_next

    items = photos(inspection, 6)
    for i, p in enumerate(items):
        scored(p, 1.0 - i / 10)
    users = [make_user(f"u{i}", "inspector") for i in range(8)]
    start = threading.Barrier(len(users))
    got: dict[str, int | None] = {}
    errors: list[BaseException] = []

    def ask(user) -> None:
        try:
            start.wait()
            item = queue_next(user=user)
            got[user.username] = item.photo.pk if item else None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(u,)) for u in users]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    handed = [pk for pk in got.values() if pk is not None]
    assert len(handed) == len(set(handed)) == 6, got
    assert list(got.values()).count(None) == 2
    assert QueueLease.objects.count() == 6
    assert time.monotonic() - t0 < 60
