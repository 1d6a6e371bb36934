"""Photos over the API: list filters, detail, files, boxes with versions, verdict, history."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inspection.models import Box, Photo, PhotoEvent
from inspection.services.boxes import voc_path
from ml.voc import read_voc
from tests.api.conftest import add_suggestion, ingest
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def inspector_api(client_for, inspector):
    return client_for(inspector)


def test_list_filters_combine(inspector_api, inspection, inspector, asset):
    from inspection.services.catalog import create_inspection

    other_inspection = create_inspection(asset=asset, name="2025 afloat")
    plain = ingest(inspection, inspector, name="plain.jpg", seed=1)
    boxed = ingest(inspection, inspector, name="boxed.jpg", seed=2, size=(90, 60))
    suggested = ingest(other_inspection, inspector, name="sugg.jpg", seed=3, size=(300, 120))
    inspector_api.put(
        f"/api/v1/photos/{boxed.pk}/boxes/",
        {"boxes": [{"xmin": 1, "ymin": 1, "xmax": 20, "ymax": 20}]},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    inspector_api.put(
        f"/api/v1/photos/{plain.pk}/verdict/",
        {"verdict": "norust"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    add_suggestion(suggested)

    def ids(query: str) -> set[int]:
        r = inspector_api.get(f"/api/v1/photos/?{query}")
        assert r.status_code == 200, r.content
        return {p["id"] for p in r.json()["results"]}

    assert ids("") == {plain.pk, boxed.pk, suggested.pk}
    assert ids(f"inspection={inspection.pk}") == {plain.pk, boxed.pk}
    assert ids("has_boxes=true") == {boxed.pk}
    assert ids("has_boxes=false") == {plain.pk, suggested.pk}
    assert ids("has_suggestions=true") == {suggested.pk}
    assert ids("verdict=norust") == {plain.pk}
    assert ids("verdict=unknown&has_boxes=false") == {suggested.pk}
    assert ids(f"asset={asset.pk}&has_suggestions=false") == {plain.pk, boxed.pk}


def test_list_is_paginated(inspector_api, inspection, inspector):
    for i in range(3):
        ingest(inspection, inspector, name=f"{i}.jpg", seed=i)
    r = inspector_api.get("/api/v1/photos/?page_size=2")
    body = r.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    r2 = inspector_api.get(body["next"])
    assert len(r2.json()["results"]) == 1
    assert inspector_api.get("/api/v1/photos/?page=9").status_code == 404


def test_detail_has_urls_version_and_near_duplicates(inspector_api, inspection, inspector):
    original = ingest(inspection, inspector, name="frame1.jpg", seed=7, size=(200, 100))
    unrelated = ingest(inspection, inspector, name="frame2.jpg", seed=8, size=(200, 100))
    # The same scene re-encoded at another size: a near-duplicate, accepted but linked.
    twin = ingest(inspection, inspector, name="frame1-small.jpg", seed=7, size=(100, 50))
    assert twin.near_duplicate_of_id == original.pk
    assert unrelated.near_duplicate_of_id is None

    r = inspector_api.get(f"/api/v1/photos/{twin.pk}/")
    assert r.status_code == 200
    body = r.json()
    assert r["ETag"] == '"1"' and body["version"] == 1
    assert body["near_duplicate_of"] == original.pk
    assert [d["id"] for d in body["near_duplicates"]] == [original.pk]
    assert body["image_url"].endswith(f"/api/v1/photos/{twin.pk}/image/")
    assert body["boxes_url"].endswith(f"/api/v1/photos/{twin.pk}/boxes/")
    assert (body["width"], body["height"]) == (100, 50)
    back = inspector_api.get(f"/api/v1/photos/{original.pk}/").json()
    assert [d["id"] for d in back["near_duplicates"]] == [twin.pk]
    assert inspector_api.get(f"/api/v1/photos/{unrelated.pk}/").json()["near_duplicates"] == []


def test_image_and_thumbnail_are_served(inspector_api, photo):
    from inspection.tasks import make_thumbnail

    r = inspector_api.get(f"/api/v1/photos/{photo.pk}/image/", HTTP_ACCEPT="image/jpeg")
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    data = b"".join(r.streaming_content)
    assert data == photo.image.open("rb").read()

    assert inspector_api.get(f"/api/v1/photos/{photo.pk}/").json()["thumbnail_url"] is None
    assert inspector_api.get(f"/api/v1/photos/{photo.pk}/thumbnail/").status_code == 404
    make_thumbnail.delay(photo.pk)
    detail = inspector_api.get(f"/api/v1/photos/{photo.pk}/").json()
    assert detail["thumbnail_url"].endswith(f"/api/v1/photos/{photo.pk}/thumbnail/")
    r = inspector_api.get(f"/api/v1/photos/{photo.pk}/thumbnail/")
    assert r.status_code == 200
    import io

    thumb = Image.open(io.BytesIO(b"".join(r.streaming_content)))
    assert thumb.format == "JPEG" and max(thumb.size) <= 320


def test_upload_through_the_api_makes_thumbnail(client_for, integration_user, inspection):
    api = client_for(integration_user)
    png = SimpleUploadedFile("deck.png", jpeg_bytes(60, 40, color=(9, 99, 199), fmt="PNG"))
    with_capture = pytest.importorskip("django.test").TestCase.captureOnCommitCallbacks
    with with_capture(execute=True):
        r = api.post(
            "/api/v1/photos/upload/",
            {"inspection": inspection.pk, "files": [png]},
            format="multipart",
        )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["created"] == 1 and body["failed"] == 0
    result = body["results"][0]
    assert result["filename"] == "deck.png" and result["status"] == 201
    photo = Photo.objects.get(pk=result["photo"]["id"])
    assert photo.content_type == "image/png" and photo.uploaded_by == integration_user
    assert photo.thumbnail, "the thumbnail task ran on commit"


def test_upload_several_with_one_duplicate_is_207(client_for, inspector, inspection, photo):
    api = client_for(inspector)
    files = [
        SimpleUploadedFile("again.jpg", photo.image.open("rb").read()),
        SimpleUploadedFile("fresh.webp", jpeg_bytes(50, 50, color=(3, 200, 3), fmt="WEBP")),
        SimpleUploadedFile("notes.txt", b"not a photo at all"),
    ]
    r = api.post(
        "/api/v1/photos/upload/", {"inspection": inspection.pk, "files": files}, format="multipart"
    )
    assert r.status_code == 207, r.content
    body = r.json()
    assert (body["created"], body["failed"]) == (1, 2)
    dup, fresh, text = body["results"]
    assert dup["status"] == 409 and dup["photo_id"] == photo.pk and str(photo.pk) in dup["detail"]
    assert fresh["status"] == 201
    assert text["status"] == 415 and "JPEG, PNG or WebP" in text["detail"]


def test_boxes_put_writes_rows_and_voc_then_stale_is_412(client_for, inspector, supervisor, photo):
    ines, sam = client_for(inspector), client_for(supervisor)
    r = ines.get(f"/api/v1/photos/{photo.pk}/boxes/")
    assert r.status_code == 200 and r["ETag"] == '"1"' and r.json()["boxes"] == []

    boxes = [
        {"xmin": 0, "ymin": 0, "xmax": 50, "ymax": 40},
        {"xmin": 100, "ymin": 20, "xmax": 200, "ymax": 100, "difficult": True},
    ]
    r = ines.put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {"boxes": boxes, "verified": True},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 200, r.content
    state = r.json()
    assert r["ETag"] == '"2"' and state["version"] == 2 and state["verified"] is True
    assert [(b["xmin"], b["xmax"], b["difficult"], b["source"]) for b in state["boxes"]] == [
        (0, 50, False, "human"),
        (100, 200, True, "human"),
    ]
    ann = read_voc(voc_path(photo))
    assert ann.verified and [(b.xmin, b.ymax, b.truncated) for b in ann.boxes] == [
        (0, 40, True),
        (100, 100, True),
    ]

    # Sam saved against version 1 too: refused with the current state, nothing overwritten.
    r = sam.put(
        f"/api/v1/photos/{photo.pk}/boxes/", {"boxes": []}, format="json", HTTP_IF_MATCH='W/"1"'
    )
    assert r.status_code == 412
    body = r.json()
    assert body["code"] == "stale_edit" and body["current"]["version"] == 2
    assert len(body["current"]["boxes"]) == 2 and r["ETag"] == '"2"'
    assert photo.boxes.count() == 2


def test_boxes_put_rejects_named_suggestions(client_for, inspector, photo):
    from tests.api.conftest import add_suggestion

    taken, refused = add_suggestion(photo), add_suggestion(photo, xmin=60, xmax=90)
    body = {"boxes": [{"id": taken.id, "xmin": 10, "ymin": 10, "xmax": 50, "ymax": 40}]}
    r = client_for(inspector).put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {**body, "rejected": [refused.id]},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 200, r.content
    states = {b["id"]: b["state"] for b in r.json()["boxes"]}
    assert states == {taken.id: "accepted", refused.id: "rejected"}
    r = client_for(inspector).put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {"boxes": [], "rejected": ["x"]},
        format="json",
        HTTP_IF_MATCH='"2"',
    )
    assert r.status_code == 400 and "rejected" in r.content.decode()


def test_boxes_put_corrects_a_suggestion_with_a_human_box(client_for, inspector, photo):
    from tests.api.conftest import add_suggestion

    s = add_suggestion(photo)
    item = {"derived_from": s.id, "xmin": 14, "ymin": 10, "xmax": 50, "ymax": 44}
    r = client_for(inspector).put(
        f"/api/v1/photos/{photo.pk}/boxes/", {"boxes": [item]}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert r.status_code == 200, r.content
    boxes = {b["source"]: b for b in r.json()["boxes"]}
    assert (boxes["human"]["xmin"], boxes["model"]["state"]) == (14, "rejected")
    assert photo.boxes.get(source="human").derived_from_id == s.id


def test_verdict_and_history(client_for, inspector, photo):
    api = client_for(inspector)
    r = api.post(
        f"/api/v1/photos/{photo.pk}/verdict/", {"verdict": "rust"}, format="json", HTTP_IF_MATCH="1"
    )
    assert r.status_code == 200 and r.json()["verdict"] == "rust" and r["ETag"] == '"2"'
    r = api.put(
        f"/api/v1/photos/{photo.pk}/verdict/",
        {"verdict": "norust"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    assert r.status_code == 412 and r.json()["current"]["verdict"] == "rust"

    history = api.get(f"/api/v1/photos/{photo.pk}/history/").json()
    actions = [(e["action"], e["actor"], e["version"]) for e in history["results"]]
    assert actions == [("verdict", "ines", 2), ("upload", "ines", 1)]
    assert history["results"][0]["before"] == {"verdict": "unknown"}
    assert history["results"][0]["after"] == {"verdict": "rust"}


def test_inspector_accepts_suggestion_on_own_photo(client_for, inspector, photo):
    box = add_suggestion(photo)
    api = client_for(inspector)
    r = api.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": box.pk, "action": "accept"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 200, r.content
    assert r.json()["boxes"][0]["state"] == "accepted"
    assert PhotoEvent.objects.filter(photo=photo, action="suggestion").count() == 1
    assert [b.xmin for b in read_voc(voc_path(photo)).boxes] == [10]


def test_supervisor_rejects_suggestion(client_for, supervisor, photo):
    box = add_suggestion(photo)
    r = client_for(supervisor).post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": box.pk, "action": "reject"},
        format="json",
        HTTP_IF_MATCH='W/"1"',
    )
    assert r.status_code == 200
    box.refresh_from_db()
    assert box.state == Box.State.REJECTED
