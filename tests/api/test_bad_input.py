"""Every bad input gets a 4xx with a message a person can act on, never a 500."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.models import Job, Photo
from tests.api.conftest import import_zip, labelimg_zip, voc_zip
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def sam(client_for, supervisor):
    return client_for(supervisor)


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    for word in words:
        assert word.lower() in str(body).lower(), (word, body)
    return body


# --- ids and paths ---


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/photos/999999/",
        "/api/v1/photos/abc/",
        "/api/v1/photos/-1/boxes/",
        "/api/v1/photos/1.5/history/",
        "/api/v1/photos/999999/image/",
        "/api/v1/assets/xyz/",
        "/api/v1/inspections/999999/",
        "/api/v1/tokens/abc/",
        "/api/v1/no-such-thing/",
        "/api/v1/photos/" + "9" * 30 + "/",
    ],
)
def test_unknown_and_non_integer_ids_are_json_404(sam, photo, path):
    assert_error(sam.get(path), 404)


def test_unknown_photo_on_write_is_404(sam):
    r = sam.put("/api/v1/photos/999999/boxes/", {"boxes": []}, format="json", HTTP_IF_MATCH="1")
    assert_error(r, 404)


# --- boxes ---


def put_boxes(client, photo, body, *, if_match='"1"', content_type="application/json"):
    import json

    data = body if isinstance(body, str | bytes) else json.dumps(body)
    extra = {} if if_match is None else {"HTTP_IF_MATCH": if_match}
    return client.put(f"/api/v1/photos/{photo.pk}/boxes/", data, content_type=content_type, **extra)


def test_malformed_json_is_400(sam, photo):
    assert_error(put_boxes(sam, photo, '{"boxes": [ {"xmin": 1,'), 400, "JSON")


def test_body_not_an_object_is_400(sam, photo):
    assert_error(put_boxes(sam, photo, "[1, 2, 3]"), 400, "object")


@pytest.mark.parametrize(
    ("boxes", "words"),
    [
        ("not a list", ["boxes"]),
        ([{"xmin": "left", "ymin": 0, "xmax": 5, "ymax": 5}], ["xmin"]),
        ([{"ymin": 0, "xmax": 5, "ymax": 5}], ["xmin", "required"]),
        ([{"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5, "difficult": "very"}], ["difficult"]),
        ([{"xmin": 0, "ymin": 0, "xmax": 5000, "ymax": 5}], ["box 0", "200x100"]),
        (
            [
                {"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5},
                {"xmin": 9, "ymin": 9, "xmax": 9, "ymax": 20},
            ],
            ["box 1"],
        ),
        ([{"xmin": -3, "ymin": 0, "xmax": 5, "ymax": 5}], ["box 0"]),
        ([{"xmin": 0, "ymin": 0, "xmax": 5, "ymax": 5, "label": "weld-crack"}], ["weld-crack"]),
    ],
)
def test_bad_boxes_are_400_and_change_nothing(sam, photo, boxes, words):
    assert_error(put_boxes(sam, photo, {"boxes": boxes}), 400, *words)
    photo.refresh_from_db()
    assert photo.version == 1 and photo.boxes.count() == 0


def test_missing_if_match_is_428(sam, photo):
    body = assert_error(put_boxes(sam, photo, {"boxes": []}, if_match=None), 428, "If-Match")
    assert body["code"] == "precondition_required"


@pytest.mark.parametrize("value", ['"one"', "*", "0", '"-2"', "1.0", "²", "9" * 30])
def test_malformed_if_match_is_400(sam, photo, value):
    assert_error(put_boxes(sam, photo, {"boxes": []}, if_match=value), 400, "If-Match")


def test_boxes_as_form_data_is_415(sam, photo):
    r = sam.put(
        f"/api/v1/photos/{photo.pk}/boxes/", "xmin=1", content_type="text/plain", HTTP_IF_MATCH="1"
    )
    assert_error(r, 415, "text/plain")


# --- verdict ---


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ({"verdict": "maybe"}, 400, "verdict"),
        ({"verdict": 3}, 400, "verdict"),
        ({"verdict": "rust", "version": 1}, 400, "version"),  # the version goes in If-Match
        ({}, 400, "verdict"),
    ],
)
def test_bad_verdicts(sam, photo, body, status, word):
    r = sam.put(f"/api/v1/photos/{photo.pk}/verdict/", body, format="json", HTTP_IF_MATCH="1")
    assert_error(r, status, word)
    photo.refresh_from_db()
    assert photo.verdict == "unknown" and photo.version == 1


@pytest.mark.parametrize(("header", "status"), [(None, 428), ("one", 400), ('"0"', 400)])
def test_a_verdict_without_a_good_if_match_changes_nothing(sam, photo, header, status):
    extra = {"HTTP_IF_MATCH": header} if header else {}
    r = sam.put(f"/api/v1/photos/{photo.pk}/verdict/", {"verdict": "rust"}, format="json", **extra)
    assert_error(r, status, "If-Match")
    photo.refresh_from_db()
    assert photo.verdict == "unknown" and photo.version == 1


# --- suggestions ---


def test_review_of_another_photos_box_is_404_bad_fields_400(sam, photo, inspection, inspector):
    from tests.api.conftest import add_suggestion, ingest

    other = ingest(inspection, inspector, name="o.jpg", seed=5)
    foreign = add_suggestion(other)
    r = sam.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": foreign.pk, "action": "accept"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    assert_error(r, 404, f"box {foreign.pk}")
    r = sam.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": foreign.pk, "action": "approve"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    assert_error(r, 400, "action")
    r = sam.post(
        f"/api/v1/photos/{photo.pk}/suggestions/",
        {"box": 10**30, "action": "accept"},
        format="json",
        HTTP_IF_MATCH="1",
    )
    assert_error(r, 400, "box")


# --- upload ---


def upload(client, inspection, *files, **extra):
    return client.post(
        "/api/v1/photos/upload/",
        {"inspection": inspection.pk, "files": list(files)},
        format="multipart",
        **extra,
    )


def test_upload_not_an_image_is_415(sam, inspection):
    f = SimpleUploadedFile("report.pdf", b"%PDF-1.4 not a photo")
    body = assert_error(upload(sam, inspection, f), 415, "report.pdf")
    assert body["results"][0]["status"] == 415
    assert not Photo.objects.exists()


def test_upload_gif_is_415(sam, inspection):
    f = SimpleUploadedFile("anim.gif", jpeg_bytes(10, 10, fmt="GIF"))
    assert_error(upload(sam, inspection, f), 415, "GIF")


def test_upload_truncated_jpeg_is_400(sam, inspection, settings):
    data = jpeg_bytes(300, 200)
    f = SimpleUploadedFile("cut.jpg", data[: len(data) // 2])
    assert_error(upload(sam, inspection, f), 400, "cut.jpg")
    assert not Photo.objects.exists()
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_upload_too_many_bytes_is_413(sam, inspection, settings):
    settings.RUSTWATCH_MAX_UPLOAD_BYTES = 1000
    f = SimpleUploadedFile("big.png", jpeg_bytes(200, 200, fmt="PNG", compress_level=0))
    assert_error(upload(sam, inspection, f), 413, "limit")


def test_upload_too_many_pixels_is_413(sam, inspection, settings):
    settings.RUSTWATCH_MAX_PIXELS = 100 * 100
    f = SimpleUploadedFile("wide.png", jpeg_bytes(400, 300, fmt="PNG"))
    assert_error(upload(sam, inspection, f), 413, "pixels")


def test_upload_same_bytes_twice_is_409_naming_the_photo(sam, inspection, photo):
    f = SimpleUploadedFile("copy.jpg", photo.image.open("rb").read())
    body = assert_error(upload(sam, inspection, f), 409, str(photo.pk))
    assert body["photo_id"] == photo.pk and body["code"] == "duplicate"


def test_upload_all_failing_same_way_keeps_that_status(sam, inspection):
    files = [SimpleUploadedFile(f"{i}.txt", b"text %d" % i) for i in range(2)]
    body = assert_error(upload(sam, inspection, *files), 415)
    assert body["failed"] == 2


@pytest.mark.parametrize(
    ("data", "word", "status"),
    [
        ({"inspection": "abc"}, "inspection", 400),
        ({"inspection": 999999}, "inspection with id 999999", 404),
        ({"inspection": "9" * 30}, "inspection", 400),
        ({"inspection": "³"}, "inspection", 400),
        ({}, "files", 400),
    ],
)
def test_upload_bad_form_is_4xx(sam, inspection, data, word, status):
    payload = {"files": [SimpleUploadedFile("a.jpg", jpeg_bytes())], **data}
    if "files" in word:
        payload = {"inspection": inspection.pk}
    r = sam.post("/api/v1/photos/upload/", payload, format="multipart")
    assert_error(r, status, word)


def test_upload_as_json_is_415(sam, inspection):
    r = sam.post("/api/v1/photos/upload/", {"inspection": inspection.pk}, format="json")
    assert_error(r, 415, "application/json")


# --- list filters ---


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("verdict=maybe", "verdict"),
        ("has_boxes=perhaps", "has_boxes"),
        ("has_suggestions=2", "has_suggestions"),
        ("inspection=abc", "inspection"),
        ("inspection=0", "inspection"),
        ("inspection=" + "9" * 30, "inspection"),
        ("asset=" + "9" * 30, "asset"),
        ("page=abc", "page"),
    ],
)
def test_bad_filters_are_4xx(sam, query, word):
    r = sam.get(f"/api/v1/photos/?{query}")
    assert r.status_code in (400, 404), r.content
    assert word in str(r.json()).lower() or "page" in query


@pytest.mark.parametrize("value", ["hull", "²", "9" * 30])
def test_inspections_bad_asset_filter_is_400(sam, value):
    assert_error(sam.get(f"/api/v1/inspections/?asset={value}"), 400, "asset")


# --- assets and inspections ---


def test_asset_duplicate_name_is_4xx(sam, asset):
    r = sam.post("/api/v1/assets/", {"name": asset.name}, format="json")
    assert r.status_code in (400, 409)
    assert "exists" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{"name": ""}, {"name": "x" * 300}, {"name": "Pier", "kind": "spaceship"}, {"kind": "hull"}],
)
def test_asset_bad_fields_are_400(sam, body):
    assert_error(sam.post("/api/v1/assets/", body, format="json"), 400)


def test_inspection_bad_fields(sam, asset, inspection):
    assert_error(
        sam.post("/api/v1/inspections/", {"asset": 999, "name": "x"}, format="json"), 404, "asset"
    )
    assert_error(
        sam.post(
            "/api/v1/inspections/",
            {"asset": asset.pk, "name": "x", "date": "yesterday"},
            format="json",
        ),
        400,
        "date",
    )
    r = sam.post(
        "/api/v1/inspections/", {"asset": asset.pk, "name": inspection.name}, format="json"
    )
    assert r.status_code in (400, 409) and r.json()["detail"]


# --- import and export ---


def test_import_not_a_zip_is_400(sam, inspection):
    assert_error(import_zip(sam, b"this is not a zip", inspection=inspection.pk), 400, "zip")


def test_import_zip_slip_is_400_and_imports_nothing(sam, inspection):
    data = voc_zip({"../evil.jpg": jpeg_bytes(), "ok/a.jpg": jpeg_bytes(20, 20)})
    assert_error(import_zip(sam, data, inspection=inspection.pk), 400, "..")
    assert not Photo.objects.exists()


def test_import_absolute_path_is_400(sam, inspection):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("/etc/a.jpg", jpeg_bytes())
    assert_error(import_zip(sam, buf.getvalue(), inspection=inspection.pk), 400)


def test_import_too_large_is_413(sam, inspection, settings):
    settings.RUSTWATCH_MAX_IMPORT_BYTES = 100
    assert_error(import_zip(sam, labelimg_zip(1), inspection=inspection.pk), 413, "limit")


def test_import_unknown_inspection_is_404(sam):
    assert_error(import_zip(sam, labelimg_zip(1), inspection=999999), 404, "999999")


def test_import_inspection_and_name_together_is_400(sam, inspection):
    r = import_zip(sam, labelimg_zip(1), inspection=inspection.pk, inspection_name="x")
    assert_error(r, 400, "not both")


def test_import_without_file_is_400(sam, inspection):
    r = sam.post("/api/v1/import/", {"inspection": inspection.pk}, format="multipart")
    assert_error(r, 400, "file")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"inspection": 999999}, 404),
        ({"asset": 999999}, 404),
        ({"inspection": "abc"}, 400),
        ({"inspection": "", "asset": 1}, 400),
        ({"asset": [1, 2]}, 400),
        ({"color": "red"}, 400),
    ],
)
def test_bad_exports(sam, body, status):
    assert_error(sam.post("/api/v1/export/", body, format="json"), status)
    assert not Job.objects.exists()


def test_export_of_an_inspection_and_an_asset_combines_them(sam, inspection, asset):
    other = asset.__class__.objects.create(name="Other hull", kind="hull")
    both = {"inspection": inspection.pk, "asset": asset.pk}
    assert sam.post("/api/v1/export/", both, format="json").status_code == 202
    wrong = {"inspection": inspection.pk, "asset": other.pk}
    assert_error(sam.post("/api/v1/export/", wrong, format="json"), 404)


def test_export_is_a_post_now_a_get_is_405(sam, inspection):
    assert_error(sam.get(f"/api/v1/export/?inspection={inspection.pk}"), 405)


# --- tokens ---


def test_token_for_unknown_user_is_404(sam):
    assert_error(sam.post("/api/v1/tokens/", {"username": "ghost"}, format="json"), 404, "ghost")


def test_token_for_user_without_role_is_400(sam, nobody):
    assert_error(sam.post("/api/v1/tokens/", {"username": "nora"}, format="json"), 400, "role")


def test_revoke_missing_token_is_404(sam, integration_user):
    assert_error(sam.delete("/api/v1/tokens/999/"), 404, "no api token with id 999")


def test_token_with_a_bad_lifetime_is_400(client_for, inspector):
    r = client_for(inspector).post("/api/v1/tokens/me/", {"expires_in_days": 0}, format="json")
    assert_error(r, 400, "expires_in_days")


def test_no_tokens_yet_is_an_empty_list(client_for, inspector):
    assert client_for(inspector).get("/api/v1/tokens/me/").json() == []
