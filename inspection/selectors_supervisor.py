"""Reads of the supervisor pages: the review queue, review progress, the models' overview.

"Reviewed" is defined here and nowhere else (`ReviewState`): a photo is reviewed when
no model suggestion on it is still open and a supervisor acted on it (accepted or
rejected a suggestion, saved its boxes or verdict, approved it) no earlier than the
last change any other person made. A photo "to review" has an open suggestion or
an inspector's change newer than the last supervisor's look. A photo nobody but
its uploader touched is neither: there is nothing to review on it yet.

The states come from two grouped queries (audit events, open suggestions), not from
per-photo subqueries: the queue and the progress of 10,000 photos stay fast.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from inspection.models import (
    Asset,
    Box,
    Deployment,
    Inspection,
    Job,
    ModelVersion,
    Photo,
    PhotoEvent,
    Role,
    TrainingRun,
    Verdict,
)
from inspection.selectors import LABEL_BOXES, SUGGESTIONS, UNLABELLED

# The audit actions that change what a photo says (uploads and imports are not work to review).
EDIT_ACTIONS = (PhotoEvent.Action.BOXES, PhotoEvent.Action.VERDICT, PhotoEvent.Action.SUGGESTION)


def supervisor_ids() -> list[int]:
    """Ids of the users who count as supervisors (the group, or superusers)."""
    users = get_user_model().objects
    supervisors = users.filter(Q(is_superuser=True) | Q(groups__name=Role.SUPERVISOR))
    return sorted(set(supervisors.values_list("pk", flat=True)))


@dataclass
class ReviewState:
    """What the review rules read of one photo."""

    inspection_id: int = 0
    open_suggestions: int = 0
    best_suggestion: float | None = None
    last_edit_at: datetime | None = None  # the last change by a person who is no supervisor
    last_review_at: datetime | None = None  # the last change by a supervisor
    activity_at: datetime | None = None  # the last change by anyone (the model too)

    @property
    def to_review(self) -> bool:
        """An open suggestion, or someone else's change newer than any supervisor's."""
        return self.open_suggestions > 0 or (
            self.last_edit_at is not None
            and (self.last_review_at is None or self.last_edit_at > self.last_review_at)
        )

    @property
    def reviewed(self) -> bool:
        """Nothing open, and a supervisor acted no earlier than anyone else's last change."""
        return (
            self.open_suggestions == 0
            and self.last_review_at is not None
            and (self.last_edit_at is None or self.last_edit_at <= self.last_review_at)
        )


def review_states(
    *, inspection_id: int | None = None, photo_ids: list[int] | None = None
) -> dict[int, ReviewState]:
    """The review state of every photo with edits or open suggestions (others have none)."""
    sups = supervisor_ids()
    events = PhotoEvent.objects.filter(action__in=EDIT_ACTIONS)
    boxes = Box.objects.filter(SUGGESTIONS)
    if inspection_id is not None:
        events = events.filter(photo__inspection_id=inspection_id)
        boxes = boxes.filter(photo__inspection_id=inspection_id)
    if photo_ids is not None:
        events = events.filter(photo_id__in=photo_ids)
        boxes = boxes.filter(photo_id__in=photo_ids)
    by_person = Q(actor__isnull=False) & ~Q(actor_id__in=sups)
    states: dict[int, ReviewState] = defaultdict(ReviewState)
    for row in (
        events.order_by()
        .values("photo_id", "photo__inspection_id")
        .annotate(
            edit=Max("at", filter=by_person),
            review=Max("at", filter=Q(actor_id__in=sups)),
            activity=Max("at"),
        )
    ):
        st = states[row["photo_id"]]
        st.inspection_id = row["photo__inspection_id"]
        st.last_edit_at, st.last_review_at = row["edit"], row["review"]
        st.activity_at = row["activity"]
    for row in (
        boxes.order_by()
        .values("photo_id", "photo__inspection_id")
        .annotate(n=Count("pk"), best=Max("score"))
    ):
        st = states[row["photo_id"]]
        st.inspection_id = row["photo__inspection_id"]
        st.open_suggestions, st.best_suggestion = row["n"], row["best"]
    return dict(states)


def photo_review_state(photo: Photo) -> ReviewState:
    """One photo's review state (an untouched photo's is empty: neither to review nor reviewed)."""
    return review_states(photo_ids=[photo.pk]).get(
        photo.pk, ReviewState(inspection_id=photo.inspection_id)
    )


@dataclass(frozen=True)
class ReviewFilters:
    """What the review queue may be narrowed by; None means "any"."""

    inspection_id: int | None = None
    inspector_id: int | None = None
    min_score: float | None = None
    max_score: float | None = None


@dataclass
class ReviewQueue:
    """The photos to review, most recent work first: their ids and states."""

    ids: list[int]
    states: dict[int, ReviewState]

    def page(self, limit: int) -> list[Photo]:
        """The first `limit` photos, with `state`, `model_score` and `last_editor` set."""
        ids = self.ids[:limit]
        photos = Photo.objects.select_related("inspection__asset", "uploaded_by").in_bulk(ids)
        editors = last_editors(ids)
        out = []
        for pk in ids:
            p = photos[pk]
            p.state = self.states[pk]
            p.model_score = p.score if p.score is not None else p.state.best_suggestion
            p.last_editor = editors.get(pk)
            out.append(p)
        return out


def last_editors(photo_ids: list[int]) -> dict[int, str]:
    """Per photo, who (no supervisor) changed it last."""
    events = (
        PhotoEvent.objects.filter(
            photo_id__in=photo_ids, action__in=EDIT_ACTIONS, actor__isnull=False
        )
        .exclude(actor_id__in=supervisor_ids())
        .order_by("photo_id", "-at", "-id")
        .values_list("photo_id", "actor__username")
    )
    out: dict[int, str] = {}
    for pk, name in events:
        out.setdefault(pk, name)
    return out


def review_queue(filters: ReviewFilters | None = None) -> ReviewQueue:
    """Photos to review, the most recent work first.

    `inspector_id`: photos that inspector changed or uploaded. The score range is on
    the model's view of the photo: the classifier's rust probability, or the best open
    suggestion's score where the photo has no classifier score.
    """
    f = filters or ReviewFilters()
    states = {
        pk: st for pk, st in review_states(inspection_id=f.inspection_id).items() if st.to_review
    }
    if f.inspector_id is not None:
        theirs = set(
            Photo.objects.filter(uploaded_by_id=f.inspector_id).values_list("id", flat=True)
        ) | set(
            PhotoEvent.objects.filter(actor_id=f.inspector_id, action__in=EDIT_ACTIONS)
            .values_list("photo_id", flat=True)
            .distinct()
        )
        states = {pk: st for pk, st in states.items() if pk in theirs}
    if f.min_score is not None or f.max_score is not None:
        scored = Photo.objects.filter(score__isnull=False)
        if f.inspection_id is not None:
            scored = scored.filter(inspection_id=f.inspection_id)
        scores = dict(scored.values_list("id", "score"))

        def within(pk: int, st: ReviewState) -> bool:
            score = scores.get(pk, st.best_suggestion)
            if score is None:
                return False
            return (f.min_score is None or score >= f.min_score) and (
                f.max_score is None or score <= f.max_score
            )

        states = {pk: st for pk, st in states.items() if within(pk, st)}
    ids = sorted(
        states,
        key=lambda pk: (states[pk].activity_at is not None, states[pk].activity_at, pk),
        reverse=True,
    )
    return ReviewQueue(ids=ids, states=states)


def review_progress(*, inspection_id: int | None = None) -> list[dict[str, Any]]:
    """Per inspection: photos reviewed, photos to review, and untouched photos.

    `total` counts the photos with work on them (reviewed + to review): "12 of 44 reviewed".
    """
    photos = Photo.objects.all()
    if inspection_id is not None:
        photos = photos.filter(inspection_id=inspection_id)
    counts = dict(
        photos.order_by()
        .values("inspection_id")
        .annotate(n=Count("pk"))
        .values_list("inspection_id", "n")
    )
    reviewed: dict[int, int] = defaultdict(int)
    to_review: dict[int, int] = defaultdict(int)
    for st in review_states(inspection_id=inspection_id).values():
        reviewed[st.inspection_id] += st.reviewed
        to_review[st.inspection_id] += st.to_review
    out = []
    inspections = Inspection.objects.filter(pk__in=counts).select_related("asset")
    for insp in inspections.order_by("asset__name", "name"):
        total = reviewed[insp.pk] + to_review[insp.pk]
        out.append(
            {
                "inspection": insp,
                "reviewed": reviewed[insp.pk],
                "to_review": to_review[insp.pk],
                "total": total,
                "untouched": counts[insp.pk] - total,
                "percent": round(100 * reviewed[insp.pk] / total) if total else 0,
            }
        )
    return out


def inspector_choices() -> list[tuple[int, str]]:
    """People who upload or edit photos and are not supervisors, for the queue's filter."""
    users = get_user_model().objects.exclude(pk__in=supervisor_ids())
    active = users.filter(
        Q(pk__in=PhotoEvent.objects.filter(action__in=EDIT_ACTIONS).values("actor_id"))
        | Q(pk__in=Photo.objects.values("uploaded_by_id"))
    )
    return [(u.pk, u.get_username()) for u in active.order_by("username")]


def review_neighbours(photo_id: int, queue: ReviewQueue) -> dict[str, int | None]:
    """The previous and next photo of the queue around `photo_id` (the first when it left)."""
    ids = queue.ids
    if photo_id not in queue.states:
        return {"prev": None, "next": ids[0] if ids else None, "position": None, "count": len(ids)}
    at = ids.index(photo_id)
    return {
        "prev": ids[at - 1] if at > 0 else None,
        "next": ids[at + 1] if at + 1 < len(ids) else None,
        "position": at + 1,
        "count": len(ids),
    }


# --- models -----------------------------------------------------------------------------


def model_versions(kind: str | None = None) -> QuerySet[ModelVersion]:
    """Versions, newest first, with the run and snapshot they came from."""
    qs = ModelVersion.objects.select_related("run__job", "snapshot")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-id")


def deployment_history(*, kind: str | None = None, limit: int = 50) -> list[Deployment]:
    """The audit of pointer moves, newest first."""
    qs = Deployment.objects.select_related("version", "previous", "actor")
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.order_by("-at", "-id")[:limit])


def deployed_over_time(kind: str) -> list[dict[str, Any]]:
    """The metrics of each version deployed for `kind`, in deployment order (oldest first)."""
    rows = []
    for d in Deployment.objects.filter(kind=kind).select_related("version").order_by("at", "id"):
        rows.append({"at": d.at, "version": d.version.name, "metrics": d.version.metrics or {}})
    return rows


def training_runs(limit: int = 20) -> list[TrainingRun]:
    """Recent runs with their job and versions."""
    qs = TrainingRun.objects.select_related("job__created_by", "snapshot").prefetch_related(
        "versions"
    )
    return list(qs.order_by("-created_at", "-id")[:limit])


def running_run() -> TrainingRun | None:
    """The run queued or running now, if any (the oldest)."""
    return (
        TrainingRun.objects.select_related("job")
        .filter(job__state__in=[Job.State.QUEUED, Job.State.RUNNING])
        .order_by("created_at", "id")
        .first()
    )


# --- overview ---------------------------------------------------------------------------


def label_counts() -> dict[str, int]:
    """All photos: labelled by a person, with open model suggestions only, neither."""
    photos = Photo.objects.annotate(
        has_suggestions=Exists(Box.objects.filter(SUGGESTIONS, photo=OuterRef("pk")))
    )
    agg = photos.aggregate(
        total=Count("pk"),
        unlabelled=Count("pk", filter=UNLABELLED),
        suggested=Count("pk", filter=UNLABELLED & Q(has_suggestions=True)),
        rust=Count("pk", filter=Q(verdict=Verdict.RUST)),
        norust=Count("pk", filter=Q(verdict=Verdict.NORUST)),
    )
    agg["labelled"] = agg["total"] - agg["unlabelled"]
    agg["untouched"] = agg["unlabelled"] - agg["suggested"]
    return agg


def rust_by_inspection() -> list[dict[str, Any]]:
    """Per asset and inspection: photos, labelled, photos with rust (verdict), rust boxes."""
    per = {
        row["inspection_id"]: row
        for row in Photo.objects.order_by()
        .values("inspection_id")
        .annotate(
            photos=Count("pk"),
            labelled=Count("pk", filter=~UNLABELLED),
            rust=Count("pk", filter=Q(verdict=Verdict.RUST)),
        )
    }
    boxes = dict(
        Box.objects.filter(LABEL_BOXES)
        .order_by()
        .values("photo__inspection_id")
        .annotate(n=Count("pk"))
        .values_list("photo__inspection_id", "n")
    )
    out = []
    for insp in Inspection.objects.select_related("asset").order_by("asset__name", "-date", "name"):
        row = per.get(insp.pk, {"photos": 0, "labelled": 0, "rust": 0})
        out.append(
            {
                "asset": insp.asset,
                "inspection": insp,
                "photos": row["photos"],
                "labelled": row["labelled"],
                "rust": row["rust"],
                "boxes": boxes.get(insp.pk, 0),
                "rust_share": round(100 * row["rust"] / row["labelled"])
                if row["labelled"]
                else None,
            }
        )
    return out


def rust_by_asset() -> list[dict[str, Any]]:
    """Per asset: inspections, photos, photos with rust, rust boxes."""
    totals: dict[int, dict[str, Any]] = {}
    for row in rust_by_inspection():
        t = totals.setdefault(
            row["asset"].pk,
            {"asset": row["asset"], "inspections": 0, "photos": 0, "rust": 0, "boxes": 0},
        )
        t["inspections"] += 1
        for k in ("photos", "rust", "boxes"):
            t[k] += row[k]
    listed = set(totals)
    for asset in Asset.objects.exclude(pk__in=listed):
        totals[asset.pk] = {"asset": asset, "inspections": 0, "photos": 0, "rust": 0, "boxes": 0}
    return sorted(totals.values(), key=lambda t: t["asset"].name)
