"""The audit trail of a photo: its current state and one PhotoEvent per change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from inspection.errors import DomainError
from inspection.models import Box, Photo, PhotoEvent
from inspection.selectors import is_labelled


def box_state(box: Box) -> dict[str, Any]:
    """One box as the API and the history show it."""
    return {
        "id": box.id,
        "xmin": box.xmin,
        "ymin": box.ymin,
        "xmax": box.xmax,
        "ymax": box.ymax,
        "label": box.label.name,
        "difficult": box.difficult,
        "source": box.source,
        "score": box.score,
        "state": box.state,
        "model_version": box.model_version,
    }


def photo_state(photo: Photo) -> dict[str, Any]:
    """The annotation state a client edits: version, verdict, verified and all boxes.

    Sent back with a 412 so that a client holding a stale version can show what
    changed instead of overwriting a colleague's work.
    """
    boxes = Box.objects.filter(photo_id=photo.pk).select_related("label").order_by("id")
    return {
        "id": photo.pk,
        "version": photo.version,
        "verdict": photo.verdict,
        "verified": photo.verified,
        "labelled": is_labelled(photo),
        "boxes": [box_state(b) for b in boxes],
    }


def record_event(
    *,
    photo: Photo,
    action: str,
    user: AbstractBaseUser | None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> PhotoEvent:
    """Keep who changed what on a photo, and when (inspection records are audited)."""
    return PhotoEvent.objects.create(
        photo=photo,
        action=action,
        actor=actor_or_none(user),
        version=photo.version,
        before=before,
        after=after,
    )


def actor_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    """A real user to store in a `*_by` column, or None (anonymous, system)."""
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def check_version(expected: Any) -> int:
    """The client's expected version as an int; a malformed one is a 400, not a 500."""
    if isinstance(expected, bool):
        raise DomainError("The expected version must be a whole number.", field="version")
    try:
        return int(str(expected).strip().strip('"').removeprefix("W/").strip('"'))
    except (TypeError, ValueError) as exc:
        raise DomainError(
            f"The expected version {expected!r} is not a whole number.", field="version"
        ) from exc
