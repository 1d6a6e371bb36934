"""Suggestions from the deployed models: stored, replaced, never over a person's work.

The tiny models (tests/model_fixtures.py) really run here, in this process, as
they do in a `predict` worker; tests/integration/test_serving_worker.py runs the
same through real worker processes.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from inspection.models import Box, Photo, PhotoEvent, SuggestionState
from tests.ml.conftest import make_photo

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_worker_cache(settings):
    from inspection.serving import reset_models

    settings.RUSTWATCH_DETECTOR_SCORE_FLOOR = 0.0  # a one-epoch detector is shy: keep all boxes
    settings.RUSTWATCH_SUGGESTION_MIN_SCORE = 0.0
    settings.RUSTWATCH_SUGGESTION_MAX_BOXES = 5
    reset_models()
    yield
    reset_models()


def upload(inspection, tmp_path, name: str, kind: str = "rust", seed: int = 0) -> Photo:
    from inspection.services.photos import ingest_photo

    path = make_photo(tmp_path / name, kind, seed)
    return ingest_photo(
        inspection=inspection,
        file=ContentFile(path.read_bytes(), name=name),
        filename=name,
        user=None,
    )


def test_upload_without_a_model_says_so(inspection, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        photo = upload(inspection, tmp_path, "a.jpg")
    photo.refresh_from_db()
    assert photo.suggestion_state == SuggestionState.NO_MODEL
    assert photo.score is None and not photo.boxes.exists()


def test_upload_is_scored_by_the_deployed_models(
    inspection, tmp_path, deploy_tiny_models, django_capture_on_commit_callbacks
):
    versions = deploy_tiny_models()
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the task runs here
        photo = upload(inspection, tmp_path, "a.jpg")
    photo.refresh_from_db()
    assert photo.suggestion_state == SuggestionState.READY, photo.suggestion_error
    assert 0.0 <= photo.score <= 1.0
    assert photo.scored_by == versions["classifier"]
    assert photo.detected_by == versions["detector"]
    assert photo.queue_score is not None and photo.embedding
    boxes = list(photo.boxes.all())
    assert boxes, "the detector's boxes are suggestions"
    for b in boxes:
        assert (b.source, b.state, b.model_version) == ("model", "suggested", "detector-tiny1")
        assert 0 <= b.xmin < b.xmax <= photo.width and 0 <= b.ymin < b.ymax <= photo.height
        assert 0.0 <= b.score <= 1.0


def test_rescoring_replaces_open_suggestions_and_never_touches_peoples_boxes(
    inspection, tmp_path, deploy_tiny_models, supervisor
):
    from inspection.services.boxes import add_suggestions, review_suggestion, save_boxes
    from inspection.services.suggestions import score_photos
    from inspection.services.voc_files import voc_path

    photo = upload(inspection, tmp_path, "a.jpg")
    photo = save_boxes(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 2, "xmax": 20, "ymax": 30}],
        user=supervisor,
        expected_version=photo.version,
    )
    human = photo.boxes.get(source="human")
    photo = add_suggestions(
        photo=photo,
        boxes=[
            {"xmin": 5, "ymin": 5, "xmax": 15, "ymax": 15, "score": 0.9},
            {"xmin": 30, "ymin": 10, "xmax": 50, "ymax": 40, "score": 0.8},
            {"xmin": 2, "ymin": 2, "xmax": 8, "ymax": 8, "score": 0.4},
        ],
        model_version="detector-old",
    )
    accepted, rejected, stale = photo.boxes.filter(source="model").order_by("id")
    photo = review_suggestion(box=accepted, action="accept", user=supervisor)
    photo = review_suggestion(box=rejected, action="reject", user=supervisor)
    xml_before = voc_path(photo).read_bytes()
    kept_before = {
        b.pk: (b.xmin, b.ymin, b.xmax, b.ymax, b.state, b.source, b.model_version)
        for b in photo.boxes.exclude(pk=stale.pk)
    }

    deploy_tiny_models("2")
    assert score_photos([photo.pk])["scored"] == 1
    score_photos([photo.pk])  # twice (a redelivered task): the same end state

    photo.refresh_from_db()
    kept_after = {
        b.pk: (b.xmin, b.ymin, b.xmax, b.ymax, b.state, b.source, b.model_version)
        for b in photo.boxes.filter(pk__in=kept_before)
    }
    assert kept_after == kept_before, "human, accepted and rejected boxes are untouched"
    assert not Box.objects.filter(pk=stale.pk).exists(), "the old open suggestion is replaced"
    new = photo.boxes.filter(source="model", state="suggested")
    assert new.exists() and set(new.values_list("model_version", flat=True)) == {"detector-tiny2"}
    assert new.count() <= 5
    assert human.pk in kept_after
    # suggestions are not annotations: the labelImg XML did not change
    assert voc_path(photo).read_bytes() == xml_before
    assert photo.events.filter(action=PhotoEvent.Action.SUGGESTION).exists()


def test_worker_cache_follows_the_pointer(inspection, tmp_path, deploy_tiny_models):
    from inspection.serving import deployed_models

    deploy_tiny_models("1")
    first = deployed_models()
    assert deployed_models().classifier.model is first.classifier.model  # loaded once
    deploy_tiny_models("2", kinds=("detector",))
    second = deployed_models()
    assert second.classifier.model is first.classifier.model
    assert second.detector.name == "detector-tiny2"
    assert second.detector.model is not first.detector.model


def test_only_workers_of_the_predict_queue_warm_the_models_after_fork(deploy_tiny_models):
    """A `train` (or `default`-only) worker's prefork children never score: they load nothing."""
    from inspection import serving
    from inspection.celery import app
    from inspection.tasks.scoring import _load_models_after_fork

    deploy_tiny_models("1")
    queues = app.amqp.queues
    saved = queues._consume_from
    try:
        for selected, loads in (
            (["train"], False),
            (["default"], False),
            (["default", "predict"], True),
        ):
            serving.reset_models()
            queues.select(selected)  # what `celery worker --queues ...` does before forking
            _load_models_after_fork()
            assert bool(serving._loaded) is loads, selected
    finally:
        queues._consume_from = saved
    assert set(serving._loaded) == {"classifier", "detector"}


def test_a_stored_prediction_is_the_photos_suggestion_not_scored_again(
    inspection, tmp_path, deploy_tiny_models, supervisor, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """predict with `store`: one model run per photo; the answer is what the photo keeps."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from inspection.services import prediction, suggestions

    versions = deploy_tiny_models()
    calls = []
    real = suggestions.score_photos
    monkeypatch.setattr(suggestions, "score_photos", lambda ids: calls.append(ids) or real(ids))
    data = make_photo(tmp_path / "s.jpg", "rust", 3).read_bytes()
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the job runs here
        job = prediction.request_prediction(
            files=[(SimpleUploadedFile("s.jpg", data, "image/jpeg"), "s.jpg")],
            user=supervisor,
            inspection=inspection,
        )
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    (answer,) = job.result["predictions"]
    assert answer["stored"] and calls == [], "the upload did not queue a second scoring"
    photo = Photo.objects.get(pk=answer["photo"])
    assert photo.suggestion_state == SuggestionState.READY
    assert photo.scored_by == versions["classifier"]
    assert photo.score == pytest.approx(answer["rust_probability"], abs=1e-4)
    kept = photo.boxes.filter(source=Box.Source.MODEL, state=Box.State.SUGGESTED)
    assert kept.count() == len(answer["boxes"]) > 0
    assert set(kept.values_list("model_version", flat=True)) == {versions["detector"].name}


def test_unreadable_photo_is_marked_failed_with_the_reason(
    inspection, tmp_path, deploy_tiny_models
):
    from django.core.files.storage import default_storage

    from inspection.services.suggestions import score_photos

    deploy_tiny_models()
    good = upload(inspection, tmp_path, "good.jpg")
    bad = upload(inspection, tmp_path, "bad.jpg", seed=3)
    default_storage.delete(bad.image.name)
    result = score_photos([good.pk, bad.pk])
    assert (result["scored"], result["failed"]) == (1, 1)
    state, error = Photo.objects.values_list("suggestion_state", "suggestion_error").get(pk=bad.pk)
    assert state == SuggestionState.FAILED
    assert "cannot be read" in error
    good.refresh_from_db()
    assert good.suggestion_state == SuggestionState.READY


def test_rescore_unlabelled_queues_only_unlabelled_photos(
    inspection, tmp_path, deploy_tiny_models, inspector, django_capture_on_commit_callbacks
):
    from inspection.services.photos import set_verdict
    from inspection.services.suggestions import rescore_unlabelled

    a = upload(inspection, tmp_path, "a.jpg")
    b = upload(inspection, tmp_path, "b.jpg", "norust", 5)
    set_verdict(photo=b, verdict="norust", user=inspector)
    deploy_tiny_models()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert rescore_unlabelled() == 1
    a.refresh_from_db()
    assert a.suggestion_state == SuggestionState.QUEUED
    assert len(callbacks) == 1


def test_suggestion_stats_count_accepted_edited_and_rejected(inspection, tmp_path, supervisor):
    from inspection.services.boxes import add_suggestions, review_suggestion, save_boxes
    from inspection.services.suggestions import suggestion_stats
    from inspection.services.voc_files import voc_path

    photo = upload(inspection, tmp_path, "a.jpg")
    photo = add_suggestions(
        photo=photo,
        boxes=[{"xmin": 1, "ymin": 1, "xmax": 10 + i, "ymax": 10, "score": 0.5} for i in range(4)],
        model_version="detector-9",
    )
    b1, b2, b3, _open = photo.boxes.order_by("id")
    photo = review_suggestion(box=b1, action="accept", user=supervisor)
    photo = review_suggestion(box=b2, action="reject", user=supervisor)
    photo = save_boxes(  # a correction: a person's box in place of suggestion b3
        photo=photo,
        boxes=[
            {"id": b1.pk, "xmin": 1, "ymin": 1, "xmax": 10, "ymax": 10},
            {"xmin": 2, "ymin": 3, "xmax": 30, "ymax": 20, "derived_from": b3.pk},
        ],
        user=supervisor,
        expected_version=photo.version,
    )
    human = photo.boxes.get(source="human")
    assert human.derived_from_id == b3.pk
    assert b"<xmax>30</xmax>" in voc_path(photo).read_bytes()

    stats = suggestion_stats("detector-9")
    assert (stats["accepted"], stats["edited"], stats["rejected"], stats["open"]) == (1, 1, 1, 1)
    assert stats["accepted_share"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["reviewed"] == 3
    assert suggestion_stats("detector-none")["accepted_share"] is None
