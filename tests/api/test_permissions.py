"""The whole role x endpoint matrix: who gets which status code, with real token auth.

Rows are endpoints with a request that is valid for the roles allowed to make
it, so an allowed role gets the success code and any other a 401/403. Rows
also cover each rule the services apply to the data (whose photo, which model
box), not only each URL, and a refused request must change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.models import Asset, Box, Inspection, Photo, PhotoEvent
from tests.api.conftest import add_suggestion, ingest, labelimg_zip
from tests.conftest import jpeg_bytes

ROLES = ["anonymous", "nobody", "integration", "inspector", "supervisor"]


@dataclass
class World:
    asset: Any
    inspection: Any
    own_photo: Any  # uploaded by the inspector
    other_photo: Any  # uploaded by the integration user
    own_suggestion: Any
    other_suggestion: Any
    users: dict[str, Any]
    empty_asset: Any  # no inspections: deletable
    empty_inspection: Any  # no photos: deletable
    other_accepted: Any = None  # a model box on other_photo a supervisor accepted
    tokens: dict[str, Any] = field(default_factory=dict)  # a spare token per user
    own_token: Any = None  # the caller's spare token


def own_reviewer(ok: int = 200) -> dict[str, int]:
    """Supervisors on any photo, the inspector on photos they uploaded (boxes service rule)."""
    return inspector_up(ok)


def boxes_put(w: World, photo: Any, boxes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "data": {"boxes": boxes, **extra},
        "format": "json",
        "HTTP_IF_MATCH": f'"{photo.version}"',
    }


def as_sent(box: Any) -> dict[str, Any]:
    return {k: getattr(box, k) for k in ("id", "xmin", "ymin", "xmax", "ymax")}


def read(ok: int = 200) -> dict[str, int]:
    return {"anonymous": 401, "nobody": 403, "integration": ok, "inspector": ok, "supervisor": ok}


def inspector_up(ok: int = 200) -> dict[str, int]:
    return {**read(ok), "integration": 403}


def supervisor_only(ok: int = 200) -> dict[str, int]:
    return {**inspector_up(ok), "inspector": 403}


def upload_body(w: World) -> dict[str, Any]:
    f = SimpleUploadedFile("new.png", jpeg_bytes(30, 20, color=(1, 2, 3), fmt="PNG"))
    return {"inspection": w.inspection.pk, "files": [f]}


def import_body(w: World) -> dict[str, Any]:
    f = SimpleUploadedFile("voc.zip", labelimg_zip(1), content_type="application/zip")
    return {"file": f, "inspection": w.inspection.pk}


def import_new_asset_body(w: World) -> dict[str, Any]:
    f = SimpleUploadedFile("voc.zip", labelimg_zip(1), content_type="application/zip")
    return {"file": f, "inspection_name": "first survey", "asset_name": "Unlisted pier"}


# (id, method, path(w), kwargs(w) for the client call, expected by role[, {role: mark}])
MATRIX: list[tuple[Any, ...]] = [
    ("assets-list", "get", lambda w: "/api/v1/assets/", None, read()),
    (
        "assets-create",
        "post",
        lambda w: "/api/v1/assets/",
        lambda w: {"data": {"name": "Bridge 9", "kind": "bridge"}, "format": "json"},
        supervisor_only(201),
    ),
    ("asset-detail", "get", lambda w: f"/api/v1/assets/{w.asset.pk}/", None, read()),
    (
        "asset-patch",
        "patch",
        lambda w: f"/api/v1/assets/{w.asset.pk}/",
        lambda w: {"data": {"description": "repainted 2026"}, "format": "json"},
        supervisor_only(),
    ),
    (
        "asset-delete",
        "delete",
        lambda w: f"/api/v1/assets/{w.empty_asset.pk}/",
        None,
        supervisor_only(204),
    ),
    (
        "asset-delete-with-photos",
        "delete",
        lambda w: f"/api/v1/assets/{w.asset.pk}/",
        None,
        supervisor_only(409),
    ),
    ("inspections-list", "get", lambda w: "/api/v1/inspections/", None, read()),
    (
        "inspections-create",
        "post",
        lambda w: "/api/v1/inspections/",
        lambda w: {"data": {"asset": w.asset.pk, "name": "2027 survey"}, "format": "json"},
        inspector_up(201),
    ),
    ("inspection-detail", "get", lambda w: f"/api/v1/inspections/{w.inspection.pk}/", None, read()),
    (
        "inspection-patch",
        "patch",
        lambda w: f"/api/v1/inspections/{w.inspection.pk}/",
        lambda w: {"data": {"notes": "port side done", "date": "2026-05-02"}, "format": "json"},
        inspector_up(),
    ),
    (
        "inspection-delete",
        "delete",
        lambda w: f"/api/v1/inspections/{w.empty_inspection.pk}/",
        None,
        supervisor_only(204),
    ),
    (
        "inspection-delete-with-photos",
        "delete",
        lambda w: f"/api/v1/inspections/{w.inspection.pk}/",
        None,
        supervisor_only(409),
    ),
    ("photos-list", "get", lambda w: "/api/v1/photos/", None, read()),
    ("photo-detail", "get", lambda w: f"/api/v1/photos/{w.own_photo.pk}/", None, read()),
    (
        "photo-upload",
        "post",
        lambda w: "/api/v1/photos/upload/",
        lambda w: {"data": upload_body(w), "format": "multipart"},
        read(201),
    ),
    ("photo-boxes-get", "get", lambda w: f"/api/v1/photos/{w.own_photo.pk}/boxes/", None, read()),
    (
        "photo-boxes-put",
        "put",
        lambda w: f"/api/v1/photos/{w.own_photo.pk}/boxes/",
        lambda w: {
            "data": {"boxes": [{"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40}]},
            "format": "json",
            "HTTP_IF_MATCH": '"1"',
        },
        inspector_up(),
    ),
    (
        "photo-verdict-put",
        "put",
        lambda w: f"/api/v1/photos/{w.own_photo.pk}/verdict/",
        lambda w: {"data": {"verdict": "rust"}, "format": "json", "HTTP_IF_MATCH": '"1"'},
        inspector_up(),
    ),
    (
        "photo-verdict-post",
        "post",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/verdict/",
        lambda w: {"data": {"verdict": "norust"}, "format": "json", "HTTP_IF_MATCH": "1"},
        inspector_up(),
    ),
    (
        "suggestion-own-photo",
        "post",
        lambda w: f"/api/v1/photos/{w.own_photo.pk}/suggestions/",
        lambda w: {
            "data": {"box": w.own_suggestion.pk, "action": "accept"},
            "format": "json",
            "HTTP_IF_MATCH": "1",
        },
        inspector_up(),
    ),
    (
        "suggestion-other-photo",
        "post",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/suggestions/",
        lambda w: {
            "data": {"box": w.other_suggestion.pk, "action": "reject"},
            "format": "json",
            "HTTP_IF_MATCH": "1",
        },
        supervisor_only(),
    ),
    # The review rule lives in the boxes service: a box save that accepts, rejects or
    # un-accepts a model box is a review, whichever URL it comes through.
    (
        "boxes-put-accepts-own-suggestion",
        "put",
        lambda w: f"/api/v1/photos/{w.own_photo.pk}/boxes/",
        lambda w: boxes_put(w, w.own_photo, [as_sent(w.own_suggestion)]),
        own_reviewer(),
    ),
    (
        "boxes-put-accepts-others-suggestion",
        "put",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/boxes/",
        lambda w: boxes_put(w, w.other_photo, [as_sent(w.other_suggestion)]),
        supervisor_only(),
    ),
    (
        "boxes-put-rejects-others-suggestion",
        "put",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/boxes/",
        lambda w: boxes_put(
            w, w.other_photo, [as_sent(w.other_accepted)], rejected=[w.other_suggestion.pk]
        ),
        supervisor_only(),
    ),
    (
        "boxes-put-leaves-out-others-accepted",
        "put",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/boxes/",
        lambda w: boxes_put(w, w.other_photo, [{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}]),
        supervisor_only(),
    ),
    (
        "boxes-put-human-boxes-on-others-photo",
        "put",
        lambda w: f"/api/v1/photos/{w.other_photo.pk}/boxes/",
        lambda w: boxes_put(
            w,
            w.other_photo,
            [as_sent(w.other_accepted), {"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9}],
        ),
        inspector_up(),
    ),
    ("photo-history", "get", lambda w: f"/api/v1/photos/{w.own_photo.pk}/history/", None, read()),
    ("photo-image", "get", lambda w: f"/api/v1/photos/{w.own_photo.pk}/image/", None, read()),
    (
        "import",
        "post",
        lambda w: "/api/v1/import/",
        lambda w: {"data": import_body(w), "format": "multipart"},
        inspector_up(202),
    ),
    (
        # An import naming an asset that does not exist would create it: supervisors only
        # (the rule is in the catalog service, so every import path goes through it).
        "import-creating-an-asset",
        "post",
        lambda w: "/api/v1/import/",
        lambda w: {"data": import_new_asset_body(w), "format": "multipart"},
        supervisor_only(202),
    ),
    (
        "export",
        "post",
        lambda w: "/api/v1/export/",
        lambda w: {"data": {"inspection": w.inspection.pk}, "format": "json"},
        supervisor_only(202),
    ),
    ("tokens-list", "get", lambda w: "/api/v1/tokens/", None, supervisor_only()),
    (
        "tokens-create",
        "post",
        lambda w: "/api/v1/tokens/",
        lambda w: {"data": {"username": "drone"}, "format": "json"},
        supervisor_only(201),
    ),
    (
        "tokens-revoke",
        "delete",
        lambda w: f"/api/v1/tokens/{w.tokens['integration'].pk}/",
        None,
        supervisor_only(204),
    ),
    ("token-me-list", "get", lambda w: "/api/v1/tokens/me/", None, read()),
    ("token-me-create", "post", lambda w: "/api/v1/tokens/me/", None, read(201)),
    # the caller's own second token; someone else's is a 404 for anyone but its owner
    (
        "token-me-revoke",
        "delete",
        lambda w: f"/api/v1/tokens/me/{w.own_token.pk}/",
        None,
        read(204),
    ),
    (
        "token-me-revoke-others",
        "delete",
        lambda w: f"/api/v1/tokens/me/{w.tokens['supervisor'].pk}/",
        None,
        {**read(404), "supervisor": 204},
    ),
    ("schema", "get", lambda w: "/api/v1/schema/", None, {r: 200 for r in ROLES}),
]


@pytest.fixture
def world(asset, inspection, integration_user, inspector, supervisor, nobody) -> World:
    own = ingest(inspection, inspector, name="own.jpg", seed=1)
    other = ingest(inspection, integration_user, name="other.jpg", seed=2, size=(120, 90))
    users = {
        "anonymous": None,
        "nobody": nobody,
        "integration": integration_user,
        "inspector": inspector,
        "supervisor": supervisor,
    }
    empty_asset = Asset.objects.create(name="Spare buoy", kind="other")
    empty_inspection = Inspection.objects.create(asset=asset, name="cancelled survey")
    accepted = add_suggestion(other, xmin=60, xmax=90)
    accepted.state = "accepted"
    accepted.save()
    return World(
        asset,
        inspection,
        own,
        other,
        add_suggestion(own),
        add_suggestion(other),
        users,
        empty_asset,
        empty_inspection,
        accepted,
    )


def records(w: World) -> dict[str, Any]:
    """What a refused request must leave as it was: photos, boxes, history, assets."""
    return {
        "photos": list(Photo.objects.order_by("id").values_list("id", "version", "verdict")),
        "boxes": list(Box.objects.order_by("id").values_list("id", "state", "xmin", "xmax")),
        "events": PhotoEvent.objects.count(),
        "assets": list(Asset.objects.order_by("id").values_list("id", "name")),
        "inspections": Inspection.objects.count(),
    }


def matrix_cases() -> list[Any]:
    """One case per row and role; a row's optional 6th item marks some roles (xfail)."""
    cases = []
    for row in MATRIX:
        marks = row[5] if len(row) > 5 else {}
        for role in ROLES:
            cases.append(
                pytest.param(role, *row[1:5], id=f"{row[0]}-{role}", marks=marks.get(role, ()))
            )
    return cases


@pytest.mark.parametrize(("role", "method", "path", "kwargs", "expected"), matrix_cases())
def test_role_matrix(world, token_client, role, method, path, kwargs, expected):
    from inspection.models import ApiToken

    # Every user holds a token besides the one the client sends: the integration
    # user's is the one a supervisor revokes, the caller's own the one they revoke.
    world.tokens = {
        name: ApiToken.objects.create(user=user, name="spare")[0]
        for name, user in world.users.items()
        if user is not None
    }
    world.own_token = world.tokens.get(role) or world.tokens["supervisor"]
    client = token_client(world.users[role])
    before = records(world)
    response = getattr(client, method)(path(world), **(kwargs(world) if kwargs else {}))
    assert response.status_code == expected[role], (role, response.content[:300])
    if response.status_code in (401, 403):
        assert records(world) == before, "a refused request changed records"
    if response.status_code in (401, 403):
        assert response.json()["detail"]
    if response.status_code == 401:
        assert response["WWW-Authenticate"] == "Token"
