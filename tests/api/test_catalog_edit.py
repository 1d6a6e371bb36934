"""Editing and deleting assets and inspections over the API (PATCH, DELETE)."""

from __future__ import annotations

import pytest

from inspection.models import Asset, Inspection, Photo
from tests.api.conftest import ingest
from tests.api.test_bad_input import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def sam(client_for, supervisor):
    return client_for(supervisor)


@pytest.fixture
def ines(client_for, inspector):
    return client_for(inspector)


def test_patch_asset_changes_only_the_fields_sent(sam, asset, inspection):
    r = sam.patch(
        f"/api/v1/assets/{asset.pk}/", {"name": " Hull 7b ", "kind": "tank"}, format="json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["name"], body["kind"], body["inspection_count"]) == ("Hull 7b", "tank", 1)
    asset.refresh_from_db()
    assert (asset.name, asset.kind, asset.description) == ("Hull 7b", "tank", "")


def test_patch_inspection(ines, inspection):
    r = ines.patch(
        f"/api/v1/inspections/{inspection.pk}/",
        {"name": "2026 dry dock, port", "date": "2026-05-02", "notes": "ladder 3"},
        format="json",
    )
    assert r.status_code == 200, r.content
    assert r.json()["date"] == "2026-05-02" and r.json()["asset_name"] == "Hull 7"
    inspection.refresh_from_db()
    assert inspection.name == "2026 dry dock, port" and inspection.notes == "ladder 3"
    r = ines.patch(f"/api/v1/inspections/{inspection.pk}/", {"date": None}, format="json")
    assert r.status_code == 200 and r.json()["date"] is None


def test_patch_to_a_name_in_use_is_409(sam, asset, inspection):
    other = Asset.objects.create(name="Bridge 2")
    body = assert_error(
        sam.patch(f"/api/v1/assets/{other.pk}/", {"name": "Hull 7"}, format="json"),
        409,
        "Hull 7",
        "exists",
    )
    assert body["code"] == "conflict"
    sibling = Inspection.objects.create(asset=asset, name="2027")
    assert_error(
        sam.patch(f"/api/v1/inspections/{sibling.pk}/", {"name": inspection.name}, format="json"),
        409,
        inspection.name,
    )
    # the same name under another asset is fine, and renaming to itself too
    moved = Inspection.objects.create(asset=other, name="x")
    r = sam.patch(f"/api/v1/inspections/{moved.pk}/", {"name": inspection.name}, format="json")
    assert r.status_code == 200
    r = sam.patch(f"/api/v1/assets/{asset.pk}/", {"name": "Hull 7"}, format="json")
    assert r.status_code == 200
    sibling.refresh_from_db()
    assert sibling.name == "2027" and Asset.objects.get(pk=other.pk).name == "Bridge 2"


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 300}, "name"),
        ({"name": 12.5}, "name"),
        ({"name": "Hull\n7"}, "line breaks"),
        ({"kind": "spaceship"}, "kind"),
        ({"kind": ["hull"]}, "kind"),
        ({"description": {"a": 1}}, "description"),
        ({"id": 5}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({}, "at least one"),
    ],
)
def test_patch_asset_bad_input_is_400(sam, asset, body, word):
    assert_error(sam.patch(f"/api/v1/assets/{asset.pk}/", body, format="json"), 400, word)
    asset.refresh_from_db()
    assert (asset.name, asset.kind) == ("Hull 7", "hull")


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"date": "yesterday"}, "date"),
        ({"date": 20260501}, "date"),
        ({"date": "0006-05-02"}, "not a plausible inspection date"),
        ({"date": "3026-05-02"}, "not a plausible inspection date"),
        ({"name": "Survey\t1"}, "control characters"),
        ({"name": "   "}, "name"),
        ({"notes": ["a"]}, "notes"),
        ({"asset": 1}, "asset"),
        ({"created_by": "sam"}, "created_by"),
    ],
)
def test_patch_inspection_bad_input_is_400(sam, inspection, body, word):
    r = sam.patch(f"/api/v1/inspections/{inspection.pk}/", body, format="json")
    assert_error(r, 400, word)


def test_patch_body_not_an_object_is_400(sam, asset):
    r = sam.patch(f"/api/v1/assets/{asset.pk}/", "[1, 2]", content_type="application/json")
    assert_error(r, 400, "object")


@pytest.mark.parametrize("pk", ["999999", "abc", "9" * 30])
@pytest.mark.parametrize("kind", ["assets", "inspections"])
def test_unknown_id_is_404(sam, kind, pk):
    assert_error(sam.patch(f"/api/v1/{kind}/{pk}/", {"name": "x"}, format="json"), 404)
    assert_error(sam.delete(f"/api/v1/{kind}/{pk}/"), 404)


def test_put_is_not_allowed(sam, asset):
    r = sam.put(f"/api/v1/assets/{asset.pk}/", {"name": "x", "kind": "hull"}, format="json")
    assert_error(r, 405)


def test_delete_refuses_while_photos_remain(sam, asset, inspection, inspector):
    ingest(inspection, inspector, name="a.jpg", seed=1)
    ingest(inspection, inspector, name="b.jpg", seed=2)
    body = assert_error(sam.delete(f"/api/v1/inspections/{inspection.pk}/"), 409, "2 photos")
    assert body["photo_count"] == 2 and body["code"] == "conflict"
    body = assert_error(sam.delete(f"/api/v1/assets/{asset.pk}/"), 409, "2 photos")
    assert "1 inspection" in body["detail"] and body["inspection_count"] == 1
    assert Photo.objects.filter(inspection=inspection).count() == 2
    assert sam.get(f"/api/v1/assets/{asset.pk}/").status_code == 200


def test_delete_empty_inspection_then_asset(sam, asset, inspection):
    body = assert_error(sam.delete(f"/api/v1/assets/{asset.pk}/"), 409, "0 photos")
    assert "1 inspection" in body["detail"]
    assert sam.delete(f"/api/v1/inspections/{inspection.pk}/").status_code == 204
    assert sam.get(f"/api/v1/inspections/{inspection.pk}/").status_code == 404
    assert sam.delete(f"/api/v1/assets/{asset.pk}/").status_code == 204
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert_error(sam.delete(f"/api/v1/assets/{asset.pk}/"), 404)


def test_inspector_may_edit_but_not_delete(ines, asset, inspection):
    assert_error(ines.delete(f"/api/v1/inspections/{inspection.pk}/"), 403, "supervisor")
    assert_error(ines.patch(f"/api/v1/assets/{asset.pk}/", {"kind": "tank"}, format="json"), 403)
    assert Inspection.objects.filter(pk=inspection.pk).exists()
