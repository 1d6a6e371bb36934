"""The OpenAPI contract: error bodies, the If-Match header, and the rules that add them.

`ApiSchema` (the project's DEFAULT_SCHEMA_CLASS) declares, for every operation,
the error statuses it can answer with the body `inspection.api.errors` makes:
401/403 for any authenticated endpoint, 404 for a path with an id or a
paginated list, 400/415 where a body or query is parsed, 406 where JSON is
negotiated, 429 where a throttle applies. A view lists only what is special to
it (`responses={412: STALE_ERROR}` or `errors(409)`). Input serializers
(`base.InputSerializer`) refuse unknown fields, and the schema says so
(`additionalProperties: false`).
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from inspection.api.base import IF_MATCH_PATTERN, InputSerializer, RowReference
from inspection.api.serializers import PhotoStateSerializer


class ErrorSerializer(serializers.Serializer):
    """Every error body: a sentence a person can act on, and a machine-readable code."""

    detail = serializers.CharField(help_text="What went wrong, and what to do about it.")
    code = serializers.CharField(
        help_text="e.g. invalid, not_found, not_authenticated, permission_denied, conflict."
    )
    errors = serializers.JSONField(
        required=False,
        help_text="Validation errors: DRF's messages per field (code `invalid`).",
    )
    field = serializers.CharField(required=False, help_text="The field a domain error is about.")
    index = serializers.IntegerField(required=False, help_text="Which item of a list (boxes).")
    limit = serializers.IntegerField(required=False, help_text="The limit exceeded (413).")


class StaleEditErrorSerializer(ErrorSerializer):
    """412: the client edited an old version; `current` is what is saved now."""

    current = PhotoStateSerializer()


STALE_ERROR = StaleEditErrorSerializer

IF_MATCH_DESCRIPTION = (
    'The photo version the client edited, from `version` or the ETag: `"3"`, `W/"3"` '
    "or `3`. A stale version is a 412 with the current state."
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    pattern=IF_MATCH_PATTERN,
    description=IF_MATCH_DESCRIPTION + " Missing: 428.",
)


def _references_rows(serializer: Any) -> bool:
    """Whether a request body (or any of its media types) has a base.RowReference field."""
    if isinstance(serializer, dict):
        return any(_references_rows(s) for s in serializer.values())
    fields = getattr(force_instance(serializer), "fields", None)
    return bool(fields) and any(isinstance(f, RowReference) for f in fields.values())


def errors(*codes: int) -> dict[int, type[serializers.Serializer]]:
    """`responses` entries for extra error statuses, all with the common error body."""
    return dict.fromkeys(codes, ErrorSerializer)


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error statuses every operation can answer."""

    def default_error_statuses(self) -> set[int]:
        view = self.view
        codes: set[int] = set()
        if not all(isinstance(p, AllowAny) for p in view.get_permissions()):
            codes |= {401, 403}
        if "{" in self.path or (self.method == "GET" and self._get_paginator() is not None):
            codes.add(404)  # no such row, or a page past the last
        has_body = (
            self.method in {"POST", "PUT", "PATCH"} and self.get_request_serializer() is not None
        )
        if has_body or self._query_parameters():
            codes.add(400)
        if has_body:
            codes.add(415)
            if _references_rows(self.get_request_serializer()):
                codes.add(404)  # an id in the body that names no row (base.ObjectId)
        codes.add(406)
        if view.get_throttles():
            codes.add(429)
        return codes

    def _query_parameters(self) -> bool:
        overrides = self.get_override_parameters()
        return bool(
            self._get_filter_parameters()
            or self._get_pagination_parameters()
            or any(
                not isinstance(p, OpenApiParameter) or p.location == OpenApiParameter.QUERY
                for p in overrides
            )
        )

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in sorted(self.default_error_statuses()):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    ErrorSerializer, str(code), direction=direction
                )
        return responses

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body = super()._get_request_body(direction)
        if body is None:
            return None
        serializer = self.get_request_serializer()
        cls = serializer if isinstance(serializer, type) else type(serializer)
        if issubclass(cls, InputSerializer):
            fields = force_instance(serializer).fields.values()
            if getattr(cls, "min_fields", 0) or any(f.required for f in fields):
                body["required"] = True  # a PATCH with no body is a 400, not a no-op
        return body

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        if direction == "request" and issubclass(cls, InputSerializer):
            schema["additionalProperties"] = False
            if getattr(cls, "min_fields", 0):
                schema["minProperties"] = cls.min_fields
        return schema

    def _map_serializer_field(self, field: Any, direction: str, *args: Any, **kw: Any) -> Any:
        schema = super()._map_serializer_field(field, direction, *args, **kw)
        text = isinstance(field, serializers.CharField) and not isinstance(
            field, serializers.ChoiceField
        )
        has_pattern = any(isinstance(v, RegexValidator) for v in getattr(field, "validators", []))
        if (
            direction == "request"
            and text
            and not field.allow_blank
            and not has_pattern
            and isinstance(schema, dict)
        ):
            # DRF refuses "" and, trimming, "  ": say so, or clients send them
            schema.setdefault("minLength", 1)
            schema.setdefault("pattern", r"\S")
        return schema
