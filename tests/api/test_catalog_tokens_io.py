"""Assets, inspections, tokens, import/export and the schema over the API."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils.dateparse import parse_datetime

from inspection.models import Asset, Box, Inspection, Job, Photo
from tests.api.conftest import (
    exported,
    import_zip,
    imported,
    ingest,
    labelimg_zip,
    post_job,
    voc_zip,
)
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def test_assets_and_inspections_with_counts(client_for, supervisor, inspector):
    sam, ines = client_for(supervisor), client_for(inspector)
    r = sam.post("/api/v1/assets/", {"name": "Tank 3", "kind": "tank"}, format="json")
    assert r.status_code == 201, r.content
    asset = r.json()
    assert asset["kind"] == "tank" and asset["inspection_count"] == 0

    r = ines.post(
        "/api/v1/inspections/",
        {"asset": asset["id"], "name": "Spring", "date": "2026-04-01"},
        format="json",
    )
    assert r.status_code == 201, r.content
    insp = r.json()
    assert insp["created_by"] == "ines" and insp["asset_name"] == "Tank 3"
    from inspection.models import Inspection

    ingest(Inspection.objects.get(pk=insp["id"]), inspector)

    listed = ines.get("/api/v1/assets/").json()["results"]
    assert [(a["name"], a["inspection_count"], a["photo_count"]) for a in listed] == [
        ("Tank 3", 1, 1)
    ]
    r = ines.get(f"/api/v1/inspections/?asset={asset['id']}").json()["results"]
    assert [(i["name"], i["photo_count"], i["unlabelled_count"]) for i in r] == [("Spring", 1, 1)]
    assert ines.get("/api/v1/inspections/?asset=999").json()["results"] == []


def test_supervisor_issues_token_the_drone_uploads_with_it(
    client_for, supervisor, integration_user, inspection
):
    from rest_framework.test import APIClient

    from inspection.models import ApiToken

    def client(key: str) -> APIClient:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return c

    sam = client_for(supervisor)
    r = sam.post("/api/v1/tokens/", {"username": "drone", "name": "drone 7"}, format="json")
    assert r.status_code == 201, r.content
    issued = r.json()
    key = issued["key"]
    assert (issued["role"], issued["name"], issued["issued_by"]) == (
        "integration",
        "drone 7",
        "sam",
    )
    assert key.startswith("rw_") and issued["key_prefix"] == key[:15]
    lifetime = parse_datetime(issued["expiry"]) - parse_datetime(issued["created"])
    assert abs(lifetime.total_seconds() - settings.RUSTWATCH_TOKEN_DAYS * 86400) < 60

    # Only a digest is stored: the key is in no column of the row.
    row = ApiToken.objects.get()
    assert key not in [str(getattr(row, f.attname)) for f in ApiToken._meta.concrete_fields]

    listed = sam.get("/api/v1/tokens/").json()
    assert [(t["user"], t["name"], t["key_prefix"]) for t in listed] == [
        ("drone", "drone 7", key[:15])
    ]
    assert "key" not in listed[0]
    r = sam.post("/api/v1/tokens/", {"username": "drone", "name": "drone 7"}, format="json")
    assert r.status_code == 409 and "drone 7" in r.json()["detail"]

    drone = client(key)
    f = SimpleUploadedFile("frame.jpg", jpeg_bytes(40, 30))
    r = drone.post(
        "/api/v1/photos/upload/", {"inspection": inspection.pk, "files": [f]}, format="multipart"
    )
    assert r.status_code == 201
    assert Photo.objects.get().uploaded_by == integration_user

    # A second, named key with its own expiry: both work, the list shows no key.
    r = drone.post("/api/v1/tokens/me/", {"name": "spare", "expires_in_days": 7}, format="json")
    assert r.status_code == 201 and r.json()["key"] != key
    spare = client(r.json()["key"])
    mine = spare.get("/api/v1/tokens/me/").json()
    assert sorted(t["name"] for t in mine) == ["drone 7", "spare"]
    assert all("key" not in t for t in mine)

    # The drone revokes its first key: that one stops at once, the spare works.
    first = next(t["id"] for t in mine if t["name"] == "drone 7")
    assert spare.delete(f"/api/v1/tokens/me/{first}/").status_code == 204
    assert drone.get("/api/v1/tokens/me/").status_code == 401
    assert [t["name"] for t in spare.get("/api/v1/tokens/me/").json()] == ["spare"]

    # A supervisor revokes the spare by its id.
    spare_id = ApiToken.objects.get(name="spare").pk
    assert sam.delete(f"/api/v1/tokens/{spare_id}/").status_code == 204
    assert spare.get("/api/v1/photos/").status_code == 401
    assert sam.delete(f"/api/v1/tokens/{spare_id}/").status_code == 404


def test_import_zip_then_export_round_trip(client_for, supervisor, inspection):
    sam = client_for(supervisor)
    report = imported(sam, labelimg_zip(2), inspection=inspection.pk)
    assert (report["photos_created"], report["boxes"], report["errors"]) == (2, 2, [])
    assert report["inspection_id"] == inspection.pk
    assert Box.objects.filter(photo__inspection=inspection).count() == 2

    r, zf = exported(sam, inspection=inspection.pk)
    assert "attachment" in r["Content-Disposition"] and ".zip" in r["Content-Disposition"]
    names = zf.namelist()
    assert sum(n.startswith("JPEGImages/") for n in names) == 2
    xmls = [n for n in names if n.startswith("Annotations/") and n.endswith(".xml")]
    assert len(xmls) == 2
    assert any(n.startswith("ImageSets/Main/") for n in names)
    assert b"<xmin>5</xmin>" in zf.read(xmls[0])


def test_import_by_name_with_class_folders(client_for, inspector):
    Asset.objects.create(name="Ferry", kind="hull")  # inspectors import into known assets
    ines = client_for(inspector)
    data = voc_zip(
        {
            "rust/a.jpg": jpeg_bytes(30, 30, color=(200, 0, 0)),
            "norust/b.png": jpeg_bytes(30, 30, color=(0, 0, 200), fmt="PNG"),
        }
    )
    report = imported(ines, data, inspection_name="Classes", asset_name="Ferry")
    assert report["verdicts"] == 2
    got = dict(Photo.objects.values_list("original_name", "verdict"))
    assert got == {"a.jpg": "rust", "b.png": "norust"}
    assert Photo.objects.first().inspection.asset.name == "Ferry"


def test_export_everything(client_for, supervisor, inspection, inspector):
    ingest(inspection, inspector)
    _, zf = exported(client_for(supervisor))
    names = zf.namelist()
    assert sum(n.startswith("JPEGImages/") for n in names) == 1


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in (
        "/api/v1/photos/{id}/boxes/",
        "/api/v1/photos/upload/",
        "/api/v1/import/",
        "/api/v1/export/",
        "/api/v1/tokens/me/",
    ):
        assert path in text


def test_docs_pages_render_with_local_assets(client):
    r = client.get("/api/v1/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/" in html
    # every script and stylesheet is served from here, none from a CDN (the page's random
    # CSRF token may spell "cdn": look at the asset URLs, not the whole text)
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert assets and not [a for a in assets if re.match(r"(?:https?:)?//", a)], assets
    assert client.get("/api/v1/redoc/").status_code == 200
    assert client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["openapi"]


def test_inspector_import_naming_a_missing_asset_is_refused_and_writes_nothing(
    client_for, inspector, supervisor
):
    body = {"inspection_name": "May", "asset_name": "Pier 4"}
    r = import_zip(client_for(inspector), labelimg_zip(1), **body)
    assert r.status_code == 403, r.content
    assert r.json()["code"] == "permission_denied"
    assert "only supervisors create assets" in r.json()["detail"]
    assert not Asset.objects.exists() and not Inspection.objects.exists()
    assert not Photo.objects.exists() and not Job.objects.exists(), "refused before any job"

    # A supervisor's import creates the asset; then the inspector may import into it.
    imported(client_for(supervisor), labelimg_zip(1), **body)
    imported(client_for(inspector), labelimg_zip(2), **{**body, "inspection_name": "June"})
    assert Asset.objects.get().name == "Pier 4" and Inspection.objects.count() == 2


def test_import_and_export_take_a_format(client_for, supervisor, inspection):
    sam = client_for(supervisor)
    assert imported(sam, labelimg_zip(2), inspection=inspection.pk)["format"] == "voc"
    r, zf = exported(sam, inspection=inspection.pk, format="coco")
    assert "-coco" in r["Content-Disposition"]
    doc = json.loads(zf.read("annotations/instances_default.json"))
    assert len(doc["images"]) == 2 and len(doc["annotations"]) == 2
    coco_zip = io.BytesIO()
    with zipfile.ZipFile(coco_zip, "w") as out:
        for name in zf.namelist():
            out.writestr(name, zf.read(name))

    _, zf = exported(sam, inspection=inspection.pk, format="yolo")
    names = zf.namelist()
    assert "data.yaml" in names and sum(n.startswith("labels/") for n in names) == 2

    Photo.objects.all().delete()
    report = imported(sam, coco_zip.getvalue(), inspection=inspection.pk, format="coco")
    assert (report["format"], report["photos_created"], report["boxes"]) == ("coco", 2, 2)

    r = post_job(sam, "/api/v1/export/", {"format": "pascal"}, format="json")
    assert r.status_code == 400 and "format" in r.json()["detail"]
