"""A supervisor's review of a photo: approve an inspector's work, correct a suggestion.

Both are box saves through `save_boxes`: versioned (a stale page is refused),
audited (the history shows who did it), the XML rewritten, and the review rule
(`may_review_suggestions`) applied by that service. Approving keeps the boxes as
they are and sets `verified`; a photo with open suggestions cannot be approved
whole (each is accepted, rejected or corrected first, `review_suggestion`).
Correcting adds a person's box `derived_from` the suggestion, which the save
rejects: the model's record counts it as edited.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from inspection.errors import DomainError, Forbidden, InvalidBoxes
from inspection.models import Box, Photo, Role
from inspection.roles import has_role
from inspection.services.boxes import save_boxes
from inspection.services.voc_files import annotation_boxes

COORDS = ("xmin", "ymin", "xmax", "ymax")


def _kept_boxes(photo: Photo) -> list[dict[str, Any]]:
    """The photo's annotation boxes as save items that keep them unchanged."""
    return [
        {
            "id": b.pk,
            **{k: getattr(b, k) for k in COORDS},
            "label": b.label.name,
            "difficult": b.difficult,
        }
        for b in annotation_boxes(photo)
    ]


def approve_photo(*, photo: Photo, user: AbstractBaseUser, expected_version: int) -> Photo:
    """Keep the photo's boxes as they are and mark them verified by `user` (a supervisor)."""
    if not has_role(user, Role.SUPERVISOR):
        raise Forbidden("Only supervisors approve an inspector's work.")
    if photo.boxes.filter(source=Box.Source.MODEL, state=Box.State.SUGGESTED).exists():
        raise DomainError(
            "This photo still has open model suggestions: accept or reject each one first."
        )
    return save_boxes(
        photo=photo,
        boxes=_kept_boxes(photo),
        user=user,
        expected_version=expected_version,
        verified=True,
    )


def correct_suggestion(
    *,
    suggestion: Box,
    coords: dict[str, Any],
    user: AbstractBaseUser,
    expected_version: int,
) -> Photo:
    """Replace a suggestion with a person's box at `coords` (xmin, ymin, xmax, ymax)."""
    if suggestion.source != Box.Source.MODEL or suggestion.state != Box.State.SUGGESTED:
        raise InvalidBoxes(f"Box {suggestion.pk} is not an open model suggestion.")
    missing = [k for k in COORDS if coords.get(k) in (None, "")]
    if missing:
        raise InvalidBoxes(f"The corrected box lacks {', '.join(missing)}.")
    photo = suggestion.photo
    corrected = {
        **{k: coords[k] for k in COORDS},
        "label": suggestion.label.name,
        "difficult": suggestion.difficult,
        "derived_from": suggestion.pk,
    }
    return save_boxes(
        photo=photo,
        boxes=[*_kept_boxes(photo), corrected],
        user=user,
        expected_version=expected_version,
    )
