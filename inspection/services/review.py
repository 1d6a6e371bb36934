"""A supervisor's review of a photo: approve an inspector's work as it stands.

Approving is a box save by the supervisor with `verified` set, through
`save_boxes`: versioned (a stale approval is refused), audited (the history
shows who approved), the XML rewritten. Suggestions are reviewed one by one with
`review_suggestion`; a photo with open suggestions cannot be approved whole.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from inspection.errors import DomainError, Forbidden
from inspection.models import Box, Photo, Role
from inspection.roles import has_role
from inspection.services.boxes import save_boxes
from inspection.services.voc_files import annotation_boxes


def approve_photo(*, photo: Photo, user: AbstractBaseUser, expected_version: int) -> Photo:
    """Keep the photo's boxes as they are and mark them verified by `user` (a supervisor)."""
    if not has_role(user, Role.SUPERVISOR):
        raise Forbidden("Only supervisors approve an inspector's work.")
    if photo.boxes.filter(source=Box.Source.MODEL, state=Box.State.SUGGESTED).exists():
        raise DomainError(
            "This photo still has open model suggestions: accept or reject each one first."
        )
    boxes = [
        {
            "id": b.pk,
            "xmin": b.xmin,
            "ymin": b.ymin,
            "xmax": b.xmax,
            "ymax": b.ymax,
            "label": b.label.name,
            "difficult": b.difficult,
        }
        for b in annotation_boxes(photo)
    ]
    return save_boxes(
        photo=photo, boxes=boxes, user=user, expected_version=expected_version, verified=True
    )
