"""The API answers what its schema says: strict inputs, nullable fields, declared errors."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from inspection.api.serializers import PhotoStateSerializer
from inspection.services.history import photo_state
from tests.api.conftest import add_suggestion
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def ines(client_for, inspector):
    return client_for(inspector)


def test_an_unknown_body_field_is_a_400_naming_it(ines, photo):
    r = ines.put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {"boxes": [], "colour": "red"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 400 and "colour" in r.json()["errors"], r.json()
    r = ines.put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {"boxes": [{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9, "color": "red"}]},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 400 and "color" in str(r.json()["errors"]), r.json()
    photo.refresh_from_db()
    assert photo.version == 1 and not photo.boxes.exists()


@pytest.mark.parametrize("bad", ["1", 1.0, True, [1]])
def test_json_numbers_and_booleans_are_not_coerced(ines, photo, bad):
    r = ines.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": bad, "action": "accept"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    assert r.status_code == 400 and "box" in r.json()["errors"], r.json()
    r = ines.put(
        f"/api/v1/photos/{photo.pk}/boxes/",
        {"boxes": [], "verified": "yes" if bad != 1.0 else 1},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 400 and "verified" in r.json()["errors"], r.json()


def test_form_fields_are_text_and_still_parse(ines, inspection):
    f = SimpleUploadedFile("a.png", jpeg_bytes(30, 20, color=(9, 8, 7), fmt="PNG"))
    r = ines.post(
        "/api/v1/photos/upload/",
        {"inspection": str(inspection.pk), "files": [f]},
        format="multipart",
    )
    assert r.status_code == 201, r.json()
    f = SimpleUploadedFile("b.png", jpeg_bytes(30, 20, color=(1, 8, 7), fmt="PNG"))
    r = ines.post(
        "/api/v1/photos/upload/", {"inspection": "999999", "files": [f]}, format="multipart"
    )
    assert r.status_code == 404 and "999999" in r.json()["detail"], r.json()


def test_the_state_serializer_matches_the_service_state(photo):
    add_suggestion(photo)
    assert PhotoStateSerializer(photo).data == photo_state(photo)


def test_nullable_fields_are_declared_nullable(schema, ines, photo):
    body = ines.get(f"/api/v1/photos/{photo.pk}/").json()
    assert body["verdict_by"] is None and body["verdict_at"] is None
    props = schema["components"]["schemas"]["PhotoDetail"]["properties"]
    nulls = [name for name, value in body.items() if value is None]
    assert nulls and all(props[name].get("nullable") for name in nulls), nulls


def test_every_operation_declares_its_errors(schema):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert {"401", "403", "406"} <= codes, (method, path, codes)
            if "{" in path:
                assert "404" in codes, (method, path)
            if "requestBody" in op:
                assert {"400", "415"} <= codes, (method, path, codes)
            for code, response in op["responses"].items():
                if code >= "400":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.split("/")[-1] in {"Error", "StaleEditError", "UploadResponse"}
    put_boxes = schema["paths"]["/api/v1/photos/{id}/boxes/"]["put"]
    assert {"412", "428"} <= set(put_boxes["responses"])
    header = next(p for p in put_boxes["parameters"] if p["name"] == "If-Match")
    assert header["required"] and header["schema"]["pattern"]


def test_request_bodies_refuse_extra_fields_in_the_schema(schema):
    schemas = schema["components"]["schemas"]
    for name in ("BoxesInput", "BoxInput", "AssetCreate", "VerdictInput", "UploadInput"):
        assert schemas[name]["additionalProperties"] is False, name
