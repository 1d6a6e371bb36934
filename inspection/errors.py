"""Domain errors raised by services; `inspection.api.errors` maps them to HTTP.

Each carries a message a person can act on, and an HTTP status the API and the
pages use, so that bad input is a clear 4xx and never a 500.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of errors a user can cause; `status` is the HTTP code to answer."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidImage(DomainError):
    """The upload is not a decodable image of an accepted type."""

    status = 400
    code = "invalid_image"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class TooLarge(DomainError):
    """Too many bytes or too many pixels (decompression bombs)."""

    status = 413
    code = "too_large"


class DuplicatePhoto(DomainError):
    """The same bytes were uploaded before; `extra['photo_id']` names the photo."""

    status = 409
    code = "duplicate"


class StaleEdit(DomainError):
    """The client edited an old version; `extra['current']` holds the current state."""

    status = 412
    code = "stale_edit"


class InvalidBoxes(DomainError):
    status = 400
    code = "invalid_boxes"


class InvalidArchive(DomainError):
    """An import folder or zip that is malformed or unsafe."""

    status = 400
    code = "invalid_archive"


class Forbidden(DomainError):
    """The user's role may not do this (a rule that depends on the data, kept in the service)."""

    status = 403
    code = "permission_denied"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The thing to create exists already (an asset or inspection name in use)."""

    status = 409
    code = "conflict"
