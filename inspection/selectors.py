"""Reads that are more than one line of ORM: lists with counts, filtered photos, history.

The API and the pages both read through here, so a filter means the same thing
in the photo grid and in `GET /api/v1/photos/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.utils import timezone

from inspection.models import (
    Asset,
    Box,
    Inspection,
    Label,
    Photo,
    PhotoEvent,
    QueueLease,
    Verdict,
)

# Boxes that count as the photo's annotation: drawn by a person, or a model
# suggestion a person accepted. Suggested and rejected model boxes do not.
LABEL_BOXES = Q(source=Box.Source.HUMAN) | Q(source=Box.Source.MODEL, state=Box.State.ACCEPTED)
SUGGESTIONS = Q(source=Box.Source.MODEL, state=Box.State.SUGGESTED)


def unlabelled_q(prefix: str = "") -> Q:
    """A photo is *labelled* once it has a human verdict or is verified (DESIGN.md).

    The one definition: lists, filters, counts, the grid and the API all use it
    (as `UNLABELLED`, or with `prefix` through a relation, `"photos__"`).
    """
    return Q(**{f"{prefix}verdict": Verdict.UNKNOWN, f"{prefix}verified": False})


UNLABELLED = unlabelled_q()


def is_labelled(photo: Photo) -> bool:
    """Whether one photo is labelled, as stored (see `unlabelled_q`)."""
    return not Photo.objects.filter(UNLABELLED, pk=photo.pk).exists()


@dataclass(frozen=True)
class PhotoFilters:
    """What a photo list may be narrowed by; None means "any"."""

    inspection_id: int | None = None
    asset_id: int | None = None
    verdict: str | None = None
    has_boxes: bool | None = None
    has_suggestions: bool | None = None
    labelled: bool | None = None


def asset_list() -> QuerySet[Asset]:
    """Assets with how many inspections and photos each has."""
    return Asset.objects.annotate(
        inspection_count=Count("inspections", distinct=True),
        photo_count=Count("inspections__photos", distinct=True),
    ).order_by("name")


def inspection_list(*, asset_id: int | None = None) -> QuerySet[Inspection]:
    """Inspections (optionally of one asset) with their photo counts."""
    qs = Inspection.objects.select_related("asset", "created_by").annotate(
        photo_count=Count("photos", distinct=True),
        unlabelled_count=Count("photos", filter=unlabelled_q("photos__"), distinct=True),
    )
    if asset_id is not None:
        qs = qs.filter(asset_id=asset_id)
    return qs.order_by("-created_at", "name")


def _with_box_flags(qs: QuerySet[Photo]) -> QuerySet[Photo]:
    label_boxes = Box.objects.filter(LABEL_BOXES, photo=OuterRef("pk"))
    suggestions = Box.objects.filter(SUGGESTIONS, photo=OuterRef("pk"))
    return qs.annotate(
        has_boxes=Exists(label_boxes),
        has_suggestions=Exists(suggestions),
        labelled=ExpressionWrapper(~UNLABELLED, output_field=BooleanField()),
    )


def photo_list(filters: PhotoFilters | None = None) -> QuerySet[Photo]:
    """Photos, newest first, annotated with `has_boxes`, `has_suggestions` and `labelled`."""
    f = filters or PhotoFilters()
    qs = _with_box_flags(Photo.objects.select_related("inspection__asset"))
    if f.inspection_id is not None:
        qs = qs.filter(inspection_id=f.inspection_id)
    if f.asset_id is not None:
        qs = qs.filter(inspection__asset_id=f.asset_id)
    if f.verdict is not None:
        qs = qs.filter(verdict=f.verdict)
    if f.has_boxes is not None:
        qs = qs.filter(has_boxes=f.has_boxes)
    if f.has_suggestions is not None:
        qs = qs.filter(has_suggestions=f.has_suggestions)
    if f.labelled is not None:
        qs = qs.exclude(UNLABELLED) if f.labelled else qs.filter(UNLABELLED)
    return qs.order_by("-uploaded_at", "-id")


# How the grid (and the editor's previous / next) may order an inspection's photos.
PHOTO_SORTS = {
    "uploaded": "Newest first",
    "oldest": "Oldest first",
    "name": "Name",
    "score": "Model score (rust first)",
    "queue": "Queue order",
}


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """'img10' after 'img9': digit runs compare as numbers, the rest case-insensitively."""
    return [(0, int(t)) if t.isdigit() else (1, t.lower()) for t in re.split(r"(\d+)", text) if t]


def photo_ids_in_order(filters: PhotoFilters, sort: str = "uploaded") -> list[int]:
    """The ids of the filtered photos in the grid's order (unknown sorts: newest first).

    Photos without a model score or a queue place come after the others, newest first.
    """
    qs = photo_list(filters)
    if sort == "name":
        rows = qs.values_list("id", "original_name", "sha256")
        return [
            i
            for i, name, sha in sorted(rows, key=lambda r: (_natural_key(r[1] or r[2][:12]), r[0]))
        ]
    order = {
        "oldest": ["uploaded_at", "id"],
        "score": [F("score").desc(nulls_last=True), "-uploaded_at", "-id"],
        "queue": [F("queue_score").desc(nulls_last=True), "-uploaded_at", "-id"],
    }.get(sort, ["-uploaded_at", "-id"])
    return list(qs.order_by(*order).values_list("id", flat=True))


def unlabelled_ids(inspection_id: int) -> set[int]:
    """The inspection's photos nobody has labelled yet (no verdict, not verified)."""
    return set(
        Photo.objects.filter(UNLABELLED, inspection_id=inspection_id).values_list("id", flat=True)
    )


def labelled_counts(inspection_id: int) -> dict[str, int]:
    """How many of the inspection's photos are labelled and how many are not."""
    qs = Photo.objects.filter(inspection_id=inspection_id)
    total = qs.count()
    unlabelled = qs.filter(UNLABELLED).count()
    return {"labelled": total - unlabelled, "unlabelled": unlabelled, "total": total}


def label_list() -> QuerySet[Label]:
    """The box classes, by name."""
    return Label.objects.order_by("name")


def photo_detail_queryset() -> QuerySet[Photo]:
    """Photos with what a detail view shows loaded in few queries."""
    return _with_box_flags(
        Photo.objects.select_related(
            "inspection__asset", "uploaded_by", "verdict_by", "near_duplicate_of"
        ).prefetch_related("boxes__label")
    )


def near_duplicates(photo: Photo) -> list[Photo]:
    """The other photos of the photo's near-duplicate group (root and siblings)."""
    root_id = photo.near_duplicate_of_id or photo.id
    return list(
        Photo.objects.filter(Q(id=root_id) | Q(near_duplicate_of_id=root_id))
        .exclude(id=photo.id)
        .select_related("inspection__asset")
        .order_by("id")
    )


def photo_boxes(photo: Photo, *, include_rejected: bool = True) -> QuerySet[Box]:
    """A photo's boxes, human ones first, with their labels."""
    qs = photo.boxes.select_related("label", "changed_by")
    if not include_rejected:
        qs = qs.exclude(source=Box.Source.MODEL, state=Box.State.REJECTED)
    return qs.order_by("source", "id")


def queue_lease_held(photo: Photo, user) -> bool:
    """True while the queue has `photo` leased to `user` (it came to them from the queue)."""
    if not user.is_authenticated:
        return False
    return QueueLease.objects.filter(photo=photo, user=user, expires_at__gt=timezone.now()).exists()


def photo_history(photo: Photo) -> QuerySet[PhotoEvent]:
    """A photo's audit trail, newest first."""
    return photo.events.select_related("actor").order_by("-at", "-id")
