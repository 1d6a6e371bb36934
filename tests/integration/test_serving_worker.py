"""Suggestions and predictions through real `predict` worker processes (no eager Celery).

The worker loads the deployed tiny models once, scores uploads, notices a new
deployment without a restart, and answers the prediction API; over the embedded
filesystem broker and over Redis, on the suite's database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import re

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from inspection.models import Box, Photo, SuggestionState
from tests.integration.conftest import wait_for
from tests.ml.conftest import make_photo

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DEADLINE_S = 240  # worker start, TensorFlow import and model load on a busy 2-core machine


@pytest.fixture
def serving_env(monkeypatch):
    """What the worker inherits: keep every detector box (a one-epoch detector is shy)."""
    monkeypatch.setenv("RUSTWATCH_DETECTOR_SCORE_FLOOR", "0")
    monkeypatch.setenv("RUSTWATCH_SUGGESTION_MIN_SCORE", "0")
    monkeypatch.setenv("RUSTWATCH_SUGGESTION_MAX_BOXES", "5")


def _upload(inspection, tmp_path, name, seed):
    from inspection.services.photos import ingest_photo

    data = make_photo(tmp_path / name, "rust", seed).read_bytes()
    return ingest_photo(
        inspection=inspection, file=ContentFile(data, name=name), filename=name, user=None
    )


def _alive(worker) -> None:
    if worker.proc.poll() is not None:
        pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")


def _scored_by(photo_ids, classifier: str, detector: str, worker):
    def done() -> bool:
        _alive(worker)
        rows = Photo.objects.filter(pk__in=photo_ids)
        return all(
            p.suggestion_state == SuggestionState.READY
            and p.scored_by
            and p.scored_by.name == classifier
            and set(p.boxes.filter(state="suggested").values_list("model_version", flat=True))
            == {detector}
            for p in rows.select_related("scored_by")
        )

    try:
        wait_for(done, timeout=DEADLINE_S, interval=0.5, what=f"scores by {classifier}")
    except TimeoutError as exc:
        states = list(Photo.objects.values_list("pk", "suggestion_state", "suggestion_error"))
        pytest.fail(f"{exc}\nphotos: {states}\nworker log:\n{worker.log_tail()}")


def uploads_get_suggestions(worker, deploy_tiny_models, inspection, tmp_path) -> list[Photo]:
    deploy_tiny_models("1")
    a = _upload(inspection, tmp_path, "a.jpg", 1)
    b = _upload(inspection, tmp_path, "b.jpg", 2)
    _scored_by([a.pk, b.pk], "classifier-tiny1", "detector-tiny1", worker)
    return [a, b]


def suggestions_follow_deployments(worker, deploy_tiny_models, inspection, tmp_path, user):
    from inspection.services.boxes import save_boxes
    from inspection.services.suggestions import rescore_unlabelled, schedule_scoring

    a, b = uploads_get_suggestions(worker, deploy_tiny_models, inspection, tmp_path)

    a.refresh_from_db()
    a = save_boxes(
        photo=a,
        boxes=[{"xmin": 3, "ymin": 4, "xmax": 30, "ymax": 20}],
        user=user,
        expected_version=a.version,
    )
    human = Box.objects.get(photo=a, source="human")

    deploy_tiny_models("2")  # a deploy: the pointers move; the same worker process keeps running
    assert rescore_unlabelled() == 1, "a's rust box made it labelled: only b is re-scored"
    schedule_scoring([a.pk], reason="a photo with a person's box, scored again")
    _scored_by([a.pk, b.pk], "classifier-tiny2", "detector-tiny2", worker)
    same = Box.objects.get(pk=human.pk)
    assert (same.source, same.xmin, same.ymin, same.xmax, same.ymax) == ("human", 3, 4, 30, 20)
    assert not Box.objects.filter(model_version="detector-tiny1", state="suggested").exists()
    log = worker.log_tail(200_000)
    assert "loaded detector detector-tiny2 (was detector-tiny1)" in log
    assert worker.proc.poll() is None


def test_uploads_get_suggestions_over_filesystem_broker(
    celery_worker_process, deploy_tiny_models, serving_env, inspection, tmp_path
):
    worker = celery_worker_process("filesystem://")
    uploads_get_suggestions(worker, deploy_tiny_models, inspection, tmp_path)


def test_suggestions_follow_deployments_and_predict_api_answers_over_redis(
    celery_worker_process,
    redis_test_url,
    deploy_tiny_models,
    serving_env,
    client_for,
    integration_user,
    inspector,
    inspection,
    tmp_path,
    settings,
):
    """One warm worker: uploads scored, a deploy noticed, then the prediction API's 200 and 202."""
    from inspection.services.suggestions import schedule_scoring

    caches["shared"].clear()
    worker = celery_worker_process(redis_test_url)
    suggestions_follow_deployments(worker, deploy_tiny_models, inspection, tmp_path, inspector)
    photos_before = Photo.objects.count()
    api = client_for(integration_user)
    image = make_photo(tmp_path / "p.jpg", "rust", 7).read_bytes()

    settings.RUSTWATCH_PREDICT_WAIT_S = 60
    r = api.generic("POST", "/api/v1/predict?filename=p.jpg", image, content_type="image/jpeg")
    _alive(worker)
    assert r.status_code == 200, (r.content, worker.log_tail())
    body = r.json()
    assert body["state"] == "succeeded"
    assert body["model_versions"] == {
        "classifier": "classifier-tiny2",
        "detector": "detector-tiny2",
    }
    (pred,) = body["predictions"]
    assert 0 <= pred["rust_probability"] <= 1 and pred["verdict"] in {"rust", "norust"}
    assert pred["filename"] == "p.jpg" and pred["photo"] is None
    for box in pred["boxes"]:
        assert 0 <= box["xmin"] < box["xmax"] <= 64 and 0 <= box["score"] <= 1
    assert Photo.objects.count() == photos_before, "without store, nothing is kept"

    settings.RUSTWATCH_PREDICT_WAIT_S = 0  # no wait: 202 and the job's URL
    score_tasks = _score_tasks(worker)
    r = api.post(
        "/api/v1/predict/batch/",
        {
            "images": [
                SimpleUploadedFile("x.jpg", image, "image/jpeg"),
                SimpleUploadedFile(
                    "y.jpg", make_photo(tmp_path / "y.jpg", "norust", 8).read_bytes()
                ),
            ],
            "store": "true",
            "inspection": str(inspection.pk),
        },
        format="multipart",
    )
    assert r.status_code == 202, r.content
    url = r["Location"]
    assert url.endswith(f"/api/v1/predict/jobs/{r.json()['job']}/")

    def answered():
        _alive(worker)
        got = api.get(url)
        return got.json() if got.json()["state"] == "succeeded" else None

    body = wait_for(answered, timeout=DEADLINE_S, interval=0.3, what="the batch answer")
    assert [p["filename"] for p in body["predictions"]] == ["x.jpg", "y.jpg"]
    stored = {p["photo"] for p in body["predictions"]}
    assert len(stored) == 2 and Photo.objects.count() == photos_before + 2
    assert set(Photo.objects.filter(pk__in=stored).values_list("inspection", flat=True)) == {
        inspection.pk
    }
    # `store`: the answer is the stored photos' suggestion; the upload does not score them again
    for answer in body["predictions"]:
        photo = Photo.objects.select_related("scored_by").get(pk=answer["photo"])
        assert photo.suggestion_state == SuggestionState.READY
        assert photo.score == pytest.approx(answer["rust_probability"], abs=1e-4)
        assert photo.scored_by.name == "classifier-tiny2"
        kept = photo.boxes.filter(source="model", state="suggested")
        assert kept.count() == len(answer["boxes"]) > 0
    # A score task sent now queues behind any the upload would have sent (one `predict`
    # queue, one task at a time): once it ran, none for x or y came before it.
    sentinel = Photo.objects.order_by("pk").first()
    schedule_scoring([sentinel.pk], reason="the sentinel")

    def sentinel_scored() -> bool:
        _alive(worker)
        again = Photo.objects.get(pk=sentinel.pk)
        return again.suggestion_state == SuggestionState.READY and again.scored_at > scored_at

    scored_at = sentinel.scored_at
    wait_for(sentinel_scored, timeout=DEADLINE_S, interval=0.3, what="the sentinel scoring")
    assert _score_tasks(worker) == score_tasks + 1, worker.log_tail()


def _score_tasks(worker) -> int:
    """How many score tasks the worker received so far (its log)."""
    return len(re.findall(r"scoring\.score_photos_task\[[^\]]+\] received", worker.log_tail(10**8)))
