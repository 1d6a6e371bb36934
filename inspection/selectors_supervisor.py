"""Reads of the supervisor pages: the review queue, review progress, the models' overview.

"Reviewed" is defined here and nowhere else (`REVIEWED`): a photo is reviewed when
no model suggestion on it is still open and a supervisor acted on it (accepted or
rejected a suggestion, saved its boxes or verdict, approved it) no earlier than the
last change any other person made. A photo "to review" has an open suggestion or
an inspector's change newer than the last supervisor's look. A photo nobody but
its uploader touched is neither: there is nothing to review on it yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

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
from inspection.selectors import LABEL_BOXES, SUGGESTIONS, UNLABELLED, unlabelled_q

# The audit actions that change what a photo says (uploads and imports are not work to review).
EDIT_ACTIONS = (PhotoEvent.Action.BOXES, PhotoEvent.Action.VERDICT, PhotoEvent.Action.SUGGESTION)


def supervisor_ids() -> QuerySet:
    """Ids of the users who count as supervisors (the group, or superusers)."""
    users = get_user_model().objects
    return users.filter(Q(is_superuser=True) | Q(groups__name=Role.SUPERVISOR)).values("pk")


def _last_event_at(*, by_supervisor: bool) -> Subquery:
    events = PhotoEvent.objects.filter(
        photo=OuterRef("pk"), action__in=EDIT_ACTIONS, actor__isnull=False
    )
    events = (
        events.filter(actor_id__in=supervisor_ids())
        if by_supervisor
        else events.exclude(actor_id__in=supervisor_ids())
    )
    return Subquery(events.order_by("-at", "-id").values("at")[:1])


def with_review_state(qs: QuerySet[Photo]) -> QuerySet[Photo]:
    """Annotate what the review rules read: open suggestions, last edit and last review."""
    open_boxes = (
        Box.objects.filter(SUGGESTIONS, photo=OuterRef("pk"))
        .order_by()
        .values("photo")
        .annotate(n=Count("pk"))
        .values("n")
    )
    last_editor = (
        PhotoEvent.objects.filter(photo=OuterRef("pk"), action__in=EDIT_ACTIONS)
        .exclude(actor__isnull=True)
        .exclude(actor_id__in=supervisor_ids())
        .order_by("-at", "-id")
        .values("actor__username")[:1]
    )
    best = (
        Box.objects.filter(SUGGESTIONS, photo=OuterRef("pk")).order_by("-score").values("score")[:1]
    )
    return qs.annotate(
        open_suggestions=Coalesce(Subquery(open_boxes, output_field=IntegerField()), Value(0)),
        best_suggestion=Subquery(best),
        last_edit_at=_last_event_at(by_supervisor=False),
        last_review_at=_last_event_at(by_supervisor=True),
        last_editor=Subquery(last_editor),
    )


# The two rules, over `with_review_state` annotations.
TO_REVIEW = Q(open_suggestions__gt=0) | (
    Q(last_edit_at__isnull=False)
    & (Q(last_review_at__isnull=True) | Q(last_edit_at__gt=F("last_review_at")))
)
REVIEWED = (
    Q(open_suggestions=0)
    & Q(last_review_at__isnull=False)
    & (Q(last_edit_at__isnull=True) | Q(last_edit_at__lte=F("last_review_at")))
)


@dataclass(frozen=True)
class ReviewFilters:
    """What the review queue may be narrowed by; None means "any"."""

    inspection_id: int | None = None
    inspector_id: int | None = None
    min_score: float | None = None
    max_score: float | None = None


def review_queue(filters: ReviewFilters | None = None) -> QuerySet[Photo]:
    """Photos to review, the most recent work first.

    `inspector_id`: photos that inspector changed or uploaded. The score range is on
    the model's view of the photo: the classifier's rust probability, or the best open
    suggestion's score where the photo has no classifier score.
    """
    f = filters or ReviewFilters()
    qs = with_review_state(Photo.objects.select_related("inspection__asset", "uploaded_by"))
    qs = qs.filter(TO_REVIEW)
    if f.inspection_id is not None:
        qs = qs.filter(inspection_id=f.inspection_id)
    if f.inspector_id is not None:
        edited = PhotoEvent.objects.filter(
            photo=OuterRef("pk"), actor_id=f.inspector_id, action__in=EDIT_ACTIONS
        )
        qs = qs.filter(Q(uploaded_by_id=f.inspector_id) | Exists(edited))
    qs = qs.annotate(model_score=Coalesce("score", "best_suggestion"))
    if f.min_score is not None:
        qs = qs.filter(model_score__gte=f.min_score)
    if f.max_score is not None:
        qs = qs.filter(model_score__lte=f.max_score)
    latest = PhotoEvent.objects.filter(photo=OuterRef("pk"), action__in=EDIT_ACTIONS)
    qs = qs.annotate(activity_at=Subquery(latest.order_by("-at", "-id").values("at")[:1]))
    return qs.order_by(F("activity_at").desc(nulls_last=True), "-id")


def review_progress(*, inspection_id: int | None = None) -> list[dict[str, Any]]:
    """Per inspection: photos reviewed, photos to review, and untouched photos.

    `total` counts the photos with work on them (reviewed + to review): "12 of 44 reviewed".
    """
    photos = with_review_state(Photo.objects.all())
    if inspection_id is not None:
        photos = photos.filter(inspection_id=inspection_id)
    counts: dict[int, dict[str, int]] = {}
    for row in photos.values("inspection_id").annotate(
        all=Count("pk"),
        reviewed=Count("pk", filter=REVIEWED),
        to_review=Count("pk", filter=TO_REVIEW),
    ):
        counts[row["inspection_id"]] = row
    inspections = Inspection.objects.filter(pk__in=counts).select_related("asset")
    out = []
    for insp in inspections.order_by("asset__name", "name"):
        row = counts[insp.pk]
        total = row["reviewed"] + row["to_review"]
        out.append(
            {
                "inspection": insp,
                "reviewed": row["reviewed"],
                "to_review": row["to_review"],
                "total": total,
                "untouched": row["all"] - total,
                "percent": round(100 * row["reviewed"] / total) if total else 0,
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


def review_neighbours(photo_id: int, filters: ReviewFilters) -> dict[str, int | None]:
    """The previous and next photo of the queue around `photo_id` (the next one when it left)."""
    ids = list(review_queue(filters).values_list("id", flat=True)[:2000])
    if photo_id not in ids:
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
    """Per asset and inspection: photos, photos with rust (verdict) and rust boxes found."""
    boxes = (
        Box.objects.filter(LABEL_BOXES, photo__inspection=OuterRef("pk"))
        .order_by()
        .values("photo__inspection")
        .annotate(n=Count("pk"))
        .values("n")
    )
    qs = (
        Inspection.objects.select_related("asset")
        .annotate(
            photo_count=Count("photos", distinct=True),
            rust_count=Count("photos", filter=Q(photos__verdict=Verdict.RUST), distinct=True),
            labelled_count=Count("photos", filter=~unlabelled_q("photos__"), distinct=True),
            box_count=Coalesce(Subquery(boxes, output_field=IntegerField()), Value(0)),
            last_upload=Max("photos__uploaded_at"),
        )
        .order_by("asset__name", "-date", "name")
    )
    out = []
    for insp in qs:
        out.append(
            {
                "asset": insp.asset,
                "inspection": insp,
                "photos": insp.photo_count,
                "labelled": insp.labelled_count,
                "rust": insp.rust_count,
                "boxes": insp.box_count,
                "rust_share": (
                    round(100 * insp.rust_count / insp.labelled_count)
                    if insp.labelled_count
                    else None
                ),
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
