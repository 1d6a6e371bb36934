"""One exception handler for the API: domain errors -> HTTP status + message.

Every error body has `detail` (a sentence a person can act on) and `code`;
validation errors keep DRF's per-field messages and add a summary `detail`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from inspection.errors import DomainError, StaleEdit


class PreconditionRequired(APIException):
    """An edit without `If-Match`: refusing it avoids overwriting a colleague's work."""

    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = "Send the photo version you edited as the If-Match header."
    default_code = "precondition_required"


def _first_message(data: Any) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        for item in data:
            if (msg := _first_message(item)) is not None:
                return msg
    if isinstance(data, dict):
        for key, value in data.items():
            if (msg := _first_message(value)) is not None:
                return msg if key == "non_field_errors" else f"{key}: {msg}"
    return None


def _code(exc: Exception) -> str:
    """The machine-readable code of an error DRF answered (Django's Http404 included)."""
    if isinstance(exc, APIException):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) else "error"
    if isinstance(exc, Http404):
        return "not_found"
    if isinstance(exc, DjangoPermissionDenied):
        return "permission_denied"
    return "error"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        response = Response(body, status=exc.status)
        current = exc.extra.get("current") if isinstance(exc, StaleEdit) else None
        if isinstance(current, dict) and "version" in current:
            response["ETag"] = f'"{current["version"]}"'
        return response
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict | list):
        data = response.data
        if isinstance(data, list) or "detail" not in data:
            summary = _first_message(data) or "The request is not valid."
            response.data = {"detail": summary, "code": "invalid", "errors": data}
        elif "code" not in data:
            response.data = {**data, "code": _code(exc)}
    return response
