"""A photo is labelled once it has a human verdict or is verified: one rule, shown and filtered."""

from __future__ import annotations

import pytest

from inspection.services.boxes import save_boxes
from inspection.services.photos import set_verdict
from tests.api.conftest import ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def photos(inspection, inspector):
    """Four photos: untouched, verdict no-rust, verified without boxes, a rust box drawn."""
    fresh = ingest(inspection, inspector, name="fresh.jpg", seed=1)
    norust = ingest(inspection, inspector, name="norust.jpg", seed=2)
    set_verdict(photo=norust, verdict="norust", user=inspector, expected_version=1)
    verified = ingest(inspection, inspector, name="verified.jpg", seed=3)
    save_boxes(photo=verified, boxes=[], verified=True, user=inspector, expected_version=1)
    boxed = ingest(inspection, inspector, name="boxed.jpg", seed=4)
    save_boxes(
        photo=boxed,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}],
        user=inspector,
        expected_version=1,
    )
    return {"fresh": fresh, "norust": norust, "verified": verified, "boxed": boxed}


def names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {p["original_name"] for p in response.json()["results"]}


def test_list_shows_and_filters_labelled(client_for, inspector, photos, inspection):
    api = client_for(inspector)
    r = api.get("/api/v1/photos/")
    assert {p["original_name"]: p["labelled"] for p in r.json()["results"]} == {
        "fresh.jpg": False,
        "norust.jpg": True,
        "verified.jpg": True,
        "boxed.jpg": True,  # the rust box made its verdict rust
    }
    assert names(api.get("/api/v1/photos/?labelled=true")) == {
        "norust.jpg",
        "verified.jpg",
        "boxed.jpg",
    }
    assert names(api.get("/api/v1/photos/?labelled=false")) == {"fresh.jpg"}
    r = api.get("/api/v1/photos/?labelled=perhaps")
    assert r.status_code == 400 and "labelled" in r.json()["detail"]
    # The inspection's count uses the same rule (verified counts as labelled).
    r = api.get(f"/api/v1/inspections/{inspection.pk}/")
    assert r.json()["unlabelled_count"] == 1


def test_detail_and_saved_state_say_labelled(client_for, inspector, photos):
    api = client_for(inspector)
    fresh = photos["fresh"]
    assert api.get(f"/api/v1/photos/{fresh.pk}/").json()["labelled"] is False
    assert api.get(f"/api/v1/photos/{fresh.pk}/boxes/").json()["labelled"] is False
    r = api.put(
        f"/api/v1/photos/{fresh.pk}/verdict/",
        {"verdict": "rust"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 200 and r.json()["labelled"] is True
    assert api.get(f"/api/v1/photos/{fresh.pk}/").json()["labelled"] is True
