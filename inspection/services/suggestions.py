"""Model suggestions: scoring photos with the deployed models, and what people do with them.

- `photo_uploaded` (after an upload commits) and `rescore_unlabelled` (after a
  deploy) queue batched `predict` tasks; until a task has run, the photo says
  why it has no suggestion (`suggestion_state`: no model yet, queued, failed with
  the error).
- `score_photos` runs in a `predict` worker: the classifier's rust probability
  and the detector's boxes, stored as the photo's suggestions (source model,
  state suggested, score, version) in place of its older open suggestions.
  Human boxes, accepted and rejected suggestions are never touched (the one
  writer of suggestions is `services.boxes.add_suggestions`).
- A person corrects a suggestion with a box save whose new box names it
  (`derived_from`, `services.boxes.save_boxes`): the suggestion is kept, rejected.
- `suggestion_stats(version)`: the share of a version's suggestions accepted,
  edited and rejected: its precision in real use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from inspection.models import Box, DeployedModel, ModelVersion, Photo, SuggestionState
from inspection.selectors import UNLABELLED
from inspection.services.boxes import add_suggestions
from ml.active import detector_uncertainty, priority, typicality

log = logging.getLogger(__name__)

__all__ = [
    "PhotoPrediction",
    "photo_uploaded",
    "queue_priority",
    "rescore_unlabelled",
    "schedule_scoring",
    "score_photos",
    "store_prediction",
    "suggestion_stats",
]


@dataclass
class PhotoPrediction:
    """What the models said about one photo (boxes in original pixels, best first)."""

    prob: float | None
    boxes: np.ndarray  # (M, 4) float xyxy
    box_scores: np.ndarray  # (M,)
    embedding: np.ndarray | None = None
    typicality: float | None = None  # ml.active.typicality to the classifier's training centre
    classifier: str = ""  # version names
    detector: str = ""


# --- scheduling (web and workers) ---------------------------------------------------------------


def _any_model_deployed() -> bool:
    return DeployedModel.objects.exists()


def schedule_scoring(photo_ids: Iterable[int], *, reason: str = "") -> int:
    """Queue the photos for scoring in batches; returns how many were queued.

    Without a deployed model the photos are marked `no_model` instead (nothing
    to score with yet; the first deploy re-scores them). Call inside or outside a
    transaction: the tasks are sent once it commits.
    """
    ids = sorted(set(photo_ids))
    if not ids:
        return 0
    if not _any_model_deployed():
        Photo.objects.filter(pk__in=ids).update(
            suggestion_state=SuggestionState.NO_MODEL, suggestion_error=""
        )
        return 0
    Photo.objects.filter(pk__in=ids).update(
        suggestion_state=SuggestionState.QUEUED, suggestion_error=""
    )
    size = max(1, settings.RUSTWATCH_SCORE_BATCH)
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]

    def send() -> None:
        from inspection.tasks.scoring import score_photos_task

        for batch in batches:
            score_photos_task.delay(batch)

    transaction.on_commit(send, robust=True)
    log.info("queued %d photos for scoring in %d batches (%s)", len(ids), len(batches), reason)
    return len(ids)


def photo_uploaded(photo_id: int) -> None:
    """A new photo committed: score it with the deployed models (or say there are none)."""
    schedule_scoring([photo_id], reason="upload")


def rescore_unlabelled(*, reason: str = "deploy") -> int:
    """Re-score every unlabelled photo (after a deploy or a rollback); returns how many."""
    ids = list(Photo.objects.filter(UNLABELLED).values_list("pk", flat=True))
    return schedule_scoring(ids, reason=reason)


# --- scoring (predict workers) ------------------------------------------------------------------


def score_photos(photo_ids: Sequence[int]) -> dict[str, Any]:
    """Score the photos with the deployed models and store the suggestions (worker side).

    Idempotent: scoring twice replaces the first suggestions with equal ones. A photo
    that cannot be read is marked failed with the reason; the others are stored.
    """
    from inspection.serving import deployed_models, local_file

    photos = list(Photo.objects.filter(pk__in=photo_ids).order_by("pk"))
    if not photos:
        return {"scored": 0, "failed": 0}
    models = deployed_models()
    if models.empty:
        Photo.objects.filter(pk__in=[p.pk for p in photos]).update(
            suggestion_state=SuggestionState.NO_MODEL, suggestion_error=""
        )
        return {"scored": 0, "failed": 0, "no_model": len(photos)}

    t0 = time.perf_counter()
    scored = failed = 0
    readable: list[tuple[Photo, Any]] = []
    import contextlib

    with contextlib.ExitStack() as stack:
        for photo in photos:
            try:
                readable.append((photo, stack.enter_context(local_file(photo.image.name))))
            except OSError as exc:
                _mark_failed([photo.pk], f"The photo file cannot be read: {exc}")
                failed += 1
        try:
            predictions = predict_files(
                [path for _, path in readable], [p.sha256 for p, _ in readable], models
            )
        except Exception as exc:  # one bad photo must not fail its batch: find it
            if len(readable) == 1:
                _mark_failed([readable[0][0].pk], _describe(exc))
                return {"scored": 0, "failed": failed + 1}
            log.warning("batch of %d failed (%s); scoring one by one", len(readable), exc)
            predictions = []
            for photo, path in readable:
                try:
                    predictions.extend(predict_files([path], [photo.sha256], models))
                except Exception as one:
                    predictions.append(one)
        for (photo, _), prediction in zip(readable, predictions, strict=True):
            if isinstance(prediction, Exception):
                _mark_failed([photo.pk], _describe(prediction))
                failed += 1
                continue
            store_prediction(photo, prediction)
            scored += 1
    seconds = time.perf_counter() - t0
    log.info(
        "scored %d photos (%d failed) in %.2f s with %s", scored, failed, seconds, models.versions()
    )
    return {"scored": scored, "failed": failed, "seconds": round(seconds, 3), **models.versions()}


def predict_files(paths: Sequence[Any], shas: Sequence[str], models: Any) -> list[PhotoPrediction]:
    """Run the loaded models on local photo files (worker side; imports TensorFlow)."""
    from ml.embeddings import EmbeddingCache

    n = len(paths)
    if n == 0:
        return []
    probs: list[float | None] = [None] * n
    embeddings: list[np.ndarray | None] = [None] * n
    typical: list[float | None] = [None] * n
    if models.classifier is not None:
        clf = models.classifier.model
        x = clf.embed(list(paths), list(shas), None, EmbeddingCache())
        probs = [float(p) for p in clf.predict_embeddings(x)]
        photo = clf.photo_embeddings(x)  # the whole photo's views, not its tiles
        embeddings = list(photo.astype(np.float16))
        t = typicality(photo, getattr(clf, "centre", None))
        if t is not None:
            typical = [float(v) for v in t]
    found: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros((0, 4)), np.zeros(0))] * n
    if models.detector is not None:
        found = models.detector.model.predict(
            list(paths), score_threshold=settings.RUSTWATCH_DETECTOR_SCORE_FLOOR
        )
    return [
        PhotoPrediction(
            prob=probs[i],
            boxes=np.asarray(found[i][0], dtype=float).reshape(-1, 4),
            box_scores=np.asarray(found[i][1], dtype=float).reshape(-1),
            embedding=embeddings[i],
            typicality=typical[i],
            classifier=models.classifier.name if models.classifier else "",
            detector=models.detector.name if models.detector else "",
        )
        for i in range(n)
    ]


def queue_priority(
    prob: float | None,
    det_unc: float | None,
    det_max: float | None,
    typical: float | None = None,
) -> float | None:
    """One photo's queue score from its cached parts (the same rule as `rerank_queue`)."""
    if prob is None:
        return None
    with_det = det_unc is not None and det_max is not None
    out = priority(
        [prob],
        [det_unc] if with_det else None,
        [det_max] if with_det else None,
        typicality=None if typical is None else [typical],
    )
    return float(out["score"][0])


def _suggestion_boxes(photo: Photo, prediction: PhotoPrediction) -> list[dict[str, Any]]:
    """The boxes worth showing a person: above the score floor, whole pixels, inside the photo."""
    floor = settings.RUSTWATCH_SUGGESTION_MIN_SCORE
    out: list[dict[str, Any]] = []
    for (x0, y0, x1, y1), score in zip(prediction.boxes, prediction.box_scores, strict=True):
        if score < floor:
            continue
        xmin, ymin = max(0, int(round(x0))), max(0, int(round(y0)))
        xmax, ymax = min(photo.width, int(round(x1))), min(photo.height, int(round(y1)))
        if xmax <= xmin or ymax <= ymin:
            continue
        out.append(
            {
                "xmin": xmin,
                "ymin": ymin,
                "xmax": xmax,
                "ymax": ymax,
                "score": float(min(1.0, max(0.0, score))),
            }
        )
        if len(out) >= settings.RUSTWATCH_SUGGESTION_MAX_BOXES:
            break
    return out


def store_prediction(photo: Photo, prediction: PhotoPrediction) -> Photo:
    """Keep a prediction: score, queue priority, versions, and the boxes as suggestions."""
    versions = {
        v.name: v.pk
        for v in ModelVersion.objects.filter(
            name__in=[n for n in (prediction.classifier, prediction.detector) if n]
        )
    }
    det_unc = det_max = None
    if prediction.detector:
        det_unc = detector_uncertainty(prediction.box_scores)
        det_max = float(prediction.box_scores.max()) if prediction.box_scores.size else 0.0
    with transaction.atomic():
        if prediction.detector:
            photo = add_suggestions(
                photo=photo,
                boxes=_suggestion_boxes(photo, prediction),
                model_version=prediction.detector,
            )
        fields: dict[str, Any] = {
            "suggestion_state": SuggestionState.READY,
            "suggestion_error": "",
            "scored_at": timezone.now(),
            "queue_score": queue_priority(prediction.prob, det_unc, det_max, prediction.typicality),
        }
        if prediction.classifier:
            fields.update(
                score=prediction.prob,
                typicality=prediction.typicality,
                scored_by_id=versions.get(prediction.classifier),
                embedding=(
                    prediction.embedding.astype(np.float16).tobytes()
                    if prediction.embedding is not None
                    else None
                ),
            )
        if prediction.detector:
            fields.update(
                detected_by_id=versions.get(prediction.detector),
                detector_uncertainty=det_unc,
                detector_max_score=det_max,
            )
        Photo.objects.filter(pk=photo.pk).update(**fields)
    return photo


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:1000]


def _mark_failed(photo_ids: Sequence[int], error: str) -> None:
    log.warning("scoring failed for photos %s: %s", list(photo_ids), error)
    Photo.objects.filter(pk__in=photo_ids).update(
        suggestion_state=SuggestionState.FAILED, suggestion_error=error
    )


def mark_failed(photo_ids: Sequence[int], error: str) -> None:
    """Say why the photos have no suggestion (a task that gave up)."""
    _mark_failed(photo_ids, error)


# --- people and suggestions ---------------------------------------------------------------------


def suggestion_stats(version: ModelVersion | str) -> dict[str, Any]:
    """What people did with a version's suggestions: counts and shares of the reviewed ones.

    accepted: kept as drawn (or moved in the editor); edited: corrected into a human
    box; rejected: refused outright; open: not reviewed yet. Shares are of the
    reviewed suggestions (None before any review).
    """
    name = version.name if isinstance(version, ModelVersion) else str(version)
    edits = Box.objects.filter(derived_from=OuterRef("pk"))
    rows = (
        Box.objects.filter(source=Box.Source.MODEL, model_version=name)
        .annotate(has_edit=Exists(edits))
        .aggregate(
            open=Count("pk", filter=Q(state=Box.State.SUGGESTED)),
            accepted=Count("pk", filter=Q(state=Box.State.ACCEPTED)),
            edited=Count("pk", filter=Q(state=Box.State.REJECTED, has_edit=True)),
            rejected=Count("pk", filter=Q(state=Box.State.REJECTED, has_edit=False)),
        )
    )
    reviewed = rows["accepted"] + rows["edited"] + rows["rejected"]
    share = {
        f"{k}_share": (round(rows[k] / reviewed, 4) if reviewed else None)
        for k in ("accepted", "edited", "rejected")
    }
    return {"version": name, **rows, "reviewed": reviewed, **share}
