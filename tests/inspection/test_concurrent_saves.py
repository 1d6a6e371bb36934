"""Real concurrency on one photo: N threads save at once with the same version.

Each thread is a real API request on its own database connection (SQLite in
pass 1, PostgreSQL in pass 2 of .ci/run). Exactly one wins; afterwards rows,
version, history and the XML on disk agree (`check_voc` is the oracle), and
every 412 left nothing behind. Before the fix the XML of a photo's first save
was deleted by the losers, and later held the previous version's boxes.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from inspection.models import Box, Label, Photo, PhotoEvent
from inspection.services.boxes import annotation_state
from inspection.services.photos import ingest_photo
from inspection.services.voc_files import voc_path
from ml.voc import read_voc
from tests.conftest import jpeg_bytes, make_user

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
N = 6


@pytest.fixture
def people(transactional_db) -> dict[str, Any]:
    """An inspector and a supervisor (serialized_rollback keeps migration 0002's groups)."""
    return {"ines": make_user("ines", "inspector"), "sam": make_user("sam", "supervisor")}


@pytest.fixture
def photo(people, asset) -> Photo:
    from inspection.models import Inspection

    inspection = Inspection.objects.create(asset=asset, name="race")
    return ingest_photo(
        inspection=inspection,
        file=io.BytesIO(jpeg_bytes(300, 200)),
        filename="race.jpg",
        user=people["ines"],
    )


def race(calls: list[Callable[[Any], Any]], users: list[Any]) -> list[Any]:
    """Run each call(client) in its own thread, all released at once; their responses."""
    from rest_framework.test import APIClient

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            client = APIClient()
            client.force_authenticate(users[i])
            barrier.wait(timeout=30)
            results[i] = calls[i](client)
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a save hung"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


def put_boxes(photo: Photo, version: int, x: int) -> Callable[[Any], Any]:
    """A box save of one distinct box, made with `If-Match: version`."""
    body = {"boxes": [{"xmin": x, "ymin": 10, "xmax": x + 40, "ymax": 60}]}
    return lambda c: c.put(
        f"/api/v1/photos/{photo.pk}/boxes/", body, format="json", HTTP_IF_MATCH=f'"{version}"'
    )


def put_verdict(photo: Photo, version: int, verdict: str) -> Callable[[Any], Any]:
    body = {"verdict": verdict}
    return lambda c: c.put(
        f"/api/v1/photos/{photo.pk}/verdict/", body, format="json", HTTP_IF_MATCH=f'"{version}"'
    )


def review(photo: Photo, box: Box, version: int) -> Callable[[Any], Any]:
    body = {"box": box.pk, "action": "accept"}
    return lambda c: c.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        body,
        format="json",
        HTTP_IF_MATCH=f'"{version}"',
    )


def assert_agree(photo: Photo, version: int, responses: list[Any]) -> Photo:
    """One winner, rows / version / history / XML in step, and the 412s left nothing."""
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * (len(responses) - 1), [r.content[:200] for r in responses]
    p = Photo.objects.get(pk=photo.pk)
    assert p.version == version
    events = PhotoEvent.objects.filter(photo=p).exclude(action="upload").order_by("id")
    assert [e.version for e in events] == list(range(2, version + 1))  # one per win
    state = annotation_state(p)
    if events.last().action == "boxes":
        assert events.last().after["boxes"] == state["boxes"]
    winner = next(r for r in responses if r.status_code == 200).json()
    assert winner["version"] == version
    for r in responses:
        if r.status_code == 412:  # told the winner's state, which is what is stored
            assert r.json()["current"]["version"] == version
            assert r.json()["current"]["boxes"] == winner["boxes"]
    # The oracle: every XML matches its rows (exit 0), and the file holds the winner's boxes.
    call_command("check_voc")
    on_disk = sorted((b.xmin, b.ymin, b.xmax, b.ymax) for b in read_voc(voc_path(p)).boxes)
    assert on_disk == sorted((b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in state["boxes"])
    leftovers = [f for f in Path(voc_path(p)).parent.iterdir() if f.name.startswith(".")]
    assert leftovers == []  # no temp file of a write left behind
    return p


def test_n_threads_save_one_photo_with_the_same_version(photo, people):
    users = [people["ines"]] * N
    # First save of the photo (the case that used to delete the XML), then a later one.
    for version in (1, 2):
        calls = [put_boxes(photo, version, 10 * i + version) for i in range(N)]
        responses = race(calls, users)
        p = assert_agree(photo, version + 1, responses)
        assert p.boxes.count() == 1  # the losers' boxes are nowhere


def test_a_verdict_races_box_saves(photo, people):
    users = [people["ines"]] * N

    calls = [
        put_verdict(photo, 1, "norust") if i % 2 else put_boxes(photo, 1, 10 * i + 1)
        for i in range(N)
    ]
    responses = race(calls, users)
    p = assert_agree(photo, 2, responses)
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    if winner % 2:  # the verdict won: no box was saved
        assert (p.verdict, p.boxes.count()) == ("norust", 0)
    else:  # a box won, and its rust box made the verdict rust
        assert (p.verdict, p.boxes.count()) == ("rust", 1)


def test_a_suggestion_review_races_box_saves(photo, people):
    suggestion = Box.objects.create(
        photo=photo,
        label=Label.objects.get(name="rust"),
        source=Box.Source.MODEL,
        state=Box.State.SUGGESTED,
        score=0.9,
        model_version="det-1",
        xmin=200,
        ymin=100,
        xmax=260,
        ymax=180,
    )
    users = [people["sam"] if i % 2 else people["ines"] for i in range(N)]

    calls = [
        review(photo, suggestion, 1) if i % 2 else put_boxes(photo, 1, 10 * i + 1) for i in range(N)
    ]
    responses = race(calls, users)
    p = assert_agree(photo, 2, responses)
    suggestion.refresh_from_db()
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    if winner % 2:  # the review won: the suggestion is an annotation, in the XML
        assert suggestion.state == "accepted" and p.boxes.filter(source="human").count() == 0
        assert [b.xmin for b in read_voc(voc_path(p)).boxes] == [200]
    else:
        assert suggestion.state == "suggested" and p.boxes.filter(source="human").count() == 1
