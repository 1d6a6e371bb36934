"""Reads that are more than one line of ORM: lists with counts, filtered photos, history.

The API and the pages both read through here, so a filter means the same thing
in the photo grid and in `GET /api/v1/photos/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from inspection.models import Asset, Box, Inspection, Photo, PhotoEvent

# Boxes that count as the photo's annotation: drawn by a person, or a model
# suggestion a person accepted. Suggested and rejected model boxes do not.
LABEL_BOXES = Q(source=Box.Source.HUMAN) | Q(source=Box.Source.MODEL, state=Box.State.ACCEPTED)
SUGGESTIONS = Q(source=Box.Source.MODEL, state=Box.State.SUGGESTED)


@dataclass(frozen=True)
class PhotoFilters:
    """What a photo list may be narrowed by; None means "any"."""

    inspection_id: int | None = None
    asset_id: int | None = None
    verdict: str | None = None
    has_boxes: bool | None = None
    has_suggestions: bool | None = None


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
        unlabelled_count=Count("photos", filter=Q(photos__verdict="unknown"), distinct=True),
    )
    if asset_id is not None:
        qs = qs.filter(asset_id=asset_id)
    return qs.order_by("-created_at", "name")


def _with_box_flags(qs: QuerySet[Photo]) -> QuerySet[Photo]:
    label_boxes = Box.objects.filter(LABEL_BOXES, photo=OuterRef("pk"))
    suggestions = Box.objects.filter(SUGGESTIONS, photo=OuterRef("pk"))
    return qs.annotate(has_boxes=Exists(label_boxes), has_suggestions=Exists(suggestions))


def photo_list(filters: PhotoFilters | None = None) -> QuerySet[Photo]:
    """Photos, newest first, annotated with `has_boxes` and `has_suggestions`."""
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
    return qs.order_by("-uploaded_at", "-id")


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


def photo_history(photo: Photo) -> QuerySet[PhotoEvent]:
    """A photo's audit trail, newest first."""
    return photo.events.select_related("actor").order_by("-at", "-id")
