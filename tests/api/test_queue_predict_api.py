"""The queue and prediction endpoints: roles, bodies, the 4xx and 429 paths.

The 200 / 202 answers of /predict need a `predict` worker: see
tests/integration/test_serving_worker.py.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.models import Job, Photo, QueueLease
from tests.conftest import jpeg_bytes, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle():
    caches["shared"].clear()
    yield
    caches["shared"].clear()


def add_photos(inspection, n: int) -> list[Photo]:
    from inspection.services.photos import ingest_photo

    return [
        ingest_photo(
            inspection=inspection,
            file=ContentFile(jpeg_bytes(32, 24, color=(20 * i, 40, 90)), name=f"q{i}.jpg"),
            filename=f"q{i}.jpg",
            user=None,
        )
        for i in range(n)
    ]


def test_queue_next_skip_and_list(client_for, inspector, inspection):
    a, b = add_photos(inspection, 2)
    Photo.objects.filter(pk=a.pk).update(queue_score=0.9, score=0.5)
    Photo.objects.filter(pk=b.pk).update(queue_score=0.1, score=0.9)
    api = client_for(inspector)
    r = api.get("/api/v1/queue/next/")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["photo"]["id"] == a.pk and body["photo"]["suggestion_state"] == "no_model"
    assert body["lease_expires_at"] and body["remaining"] == 1
    assert QueueLease.objects.get().photo_id == a.pk

    r = api.post(f"/api/v1/queue/{a.pk}/skip/")
    assert r.status_code == 200 and r.json()["photo"]["id"] == b.pk

    listed = client_for(make_user("olga", "inspector")).get("/api/v1/queue/?limit=5").json()
    assert [row["id"] for row in listed["results"]] == [a.pk], "b is held; a was skipped by ines"

    r = api.post(f"/api/v1/queue/{b.pk}/skip/")
    assert r.json()["photo"] is None and "labelled" in r.json()["detail"]
    assert api.post("/api/v1/queue/999999/skip/").status_code == 404


def test_queue_is_for_inspectors(client_for, integration_user, api_client):
    assert client_for(integration_user).get("/api/v1/queue/next/").status_code == 403
    assert api_client.get("/api/v1/queue/next/").status_code == 401


def test_predict_without_a_model_is_503_and_keeps_nothing(client_for, integration_user, settings):
    api = client_for(integration_user)
    r = api.post(
        "/api/v1/predict",
        {"image": SimpleUploadedFile("a.jpg", jpeg_bytes(), "image/jpeg")},
        format="multipart",
    )
    assert r.status_code == 503 and r.json()["code"] == "no_model"
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"", "image/jpeg", 400, "invalid"),  # no body: no image
        (b"GIF89a" + b"\0" * 40, "image/gif", 415, "unsupported_media_type"),
        (jpeg_bytes()[:200], "image/jpeg", 400, "invalid_image"),
    ],
)
def test_predict_refuses_bad_images_like_uploads(
    client_for, integration_user, deploy_tiny_models_rows, data, content_type, status, code
):
    api = client_for(integration_user)
    raw = api.generic("POST", "/api/v1/predict", data, content_type=content_type)
    assert raw.status_code == status, raw.content
    assert raw.json()["code"] == code
    multipart = api.post(
        "/api/v1/predict/",
        {"image": SimpleUploadedFile("x.bin", data, content_type)},
        format="multipart",
    )
    if data:  # an empty multipart file is no file at all to Django
        assert multipart.status_code == status and multipart.json()["code"] == code
    assert not Job.objects.exists()


def test_predict_too_large_is_413(client_for, integration_user, deploy_tiny_models_rows, settings):
    settings.RUSTWATCH_MAX_PIXELS = 100
    r = client_for(integration_user).generic(
        "POST", "/api/v1/predict", jpeg_bytes(64, 48), content_type="image/jpeg"
    )
    assert r.status_code == 413 and r.json()["code"] == "too_large"


def test_predict_options_are_checked(client_for, integration_user, deploy_tiny_models_rows):
    api = client_for(integration_user)
    r = api.post("/api/v1/predict", {}, format="multipart")
    assert r.status_code == 400 and "image" in r.json()["detail"]
    r = api.generic("POST", "/api/v1/predict?store=true", jpeg_bytes(), content_type="image/jpeg")
    assert r.status_code == 400 and "inspection" in r.json()["detail"]
    r = api.generic(
        "POST",
        "/api/v1/predict?store=true&inspection=4242",
        jpeg_bytes(),
        content_type="image/jpeg",
    )
    assert r.status_code == 400 and "4242" in r.json()["detail"]
    assert not Job.objects.exists()


def test_predict_is_throttled_per_token_with_retry_after(
    api_client, integration_user, settings, inspector
):
    from inspection.models import ApiToken

    settings.RUSTWATCH_PREDICT_RATE = "2/min"
    _, key = ApiToken.objects.create(user=integration_user, name="camera")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    codes = [
        api_client.generic("POST", "/api/v1/predict", b"", content_type="image/jpeg").status_code
        for _ in range(3)
    ]
    assert codes[:2] != [429, 429] and codes[2] == 429
    r = api_client.generic("POST", "/api/v1/predict", b"", content_type="image/jpeg")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert "throttled" in r.json()["code"] or "Request was throttled" in r.json()["detail"]
    # another token has its own allowance
    _, other = ApiToken.objects.create(user=inspector, name="second camera")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {other}")
    r = api_client.generic("POST", "/api/v1/predict", b"", content_type="image/jpeg")
    assert r.status_code != 429


def test_prediction_jobs_are_private(client_for, integration_user, supervisor):
    job = Job.objects.create(kind=Job.Kind.PREDICT, created_by=integration_user)
    assert client_for(integration_user).get(f"/api/v1/predict/jobs/{job.pk}/").status_code == 200
    assert client_for(supervisor).get(f"/api/v1/predict/jobs/{job.pk}/").status_code == 200
    other = make_user("drone2", "integration")
    assert client_for(other).get(f"/api/v1/predict/jobs/{job.pk}/").status_code == 403
    assert client_for(other).get("/api/v1/predict/jobs/999999/").status_code == 404


def test_model_versions_show_what_people_did_with_their_suggestions(
    client_for, inspector, supervisor, inspection
):
    from inspection.models import ModelVersion
    from inspection.services.boxes import add_suggestions, review_suggestion

    version = ModelVersion.objects.create(kind="detector", name="detector-7", artifact="models/x")
    (photo,) = add_photos(inspection, 1)
    photo = add_suggestions(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 9, "ymax": 9, "score": 0.6} for _ in range(2)],
        model_version="detector-7",
    )
    review_suggestion(box=photo.boxes.first(), action="reject", user=supervisor)
    body = client_for(inspector).get(f"/api/v1/models/{version.pk}/").json()
    assert body["suggestions"]["rejected"] == 1 and body["suggestions"]["open"] == 1
    assert body["suggestions"]["rejected_share"] == 1.0
