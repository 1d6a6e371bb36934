"""What every API module shares: input checking, versions, pagination, role permissions.

A resource module (catalog.py, photos.py, voc.py, tokens.py, ...) holds its
serializers and views; views parse with an `InputSerializer` subclass via
`validated()`, call a service, and answer with an output serializer.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import html

from inspection.api.errors import PreconditionRequired
from inspection.api.permissions import IsIntegration
from inspection.models import NAME_PATTERN

# Ids and versions beyond a 64-bit integer are refused here (400), before a
# database driver overflows on them (500).
MAX_ID = 2**63 - 1

# If-Match: the photo version as an entity tag ("3", W/"3") or a bare number (3).
IF_MATCH_PATTERN = r'^\s*(W/)?"?[1-9][0-9]{0,17}"?\s*$'


def query_int(request: Request, name: str, *, minimum: int, maximum: int) -> int | None:
    """A whole-number query parameter, or None when absent; malformed or out of range: 400."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ParseError(f"Give {name} once; it was given {len(values)} times.")
    text = values[0].strip()
    number = int(text) if re.fullmatch(r"-?[0-9]{1,19}", text) else None
    if number is None or not minimum <= number <= maximum:
        raise ParseError(
            f"{name} must be a whole number from {minimum} to {maximum}; got {text!r}."
        )
    return number


class Pagination(PageNumberPagination):
    """Pages of 50 by default; `page` and `page_size` are checked (400), not ignored."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        size = query_int(request, self.page_size_query_param, minimum=1, maximum=self.max_page_size)
        return self.page_size if size is None else size

    def get_page_number(self, request: Request, paginator: Any) -> int:
        number = query_int(request, self.page_query_param, minimum=1, maximum=MAX_ID)
        return 1 if number is None else number  # past the last page: DRF's 404

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        limits = {
            self.page_query_param: {"minimum": 1, "maximum": MAX_ID},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for param in params:
            param["schema"].update(limits.get(param["name"], {}))
        return params


class QuerySerializer(serializers.Serializer):
    """Query parameters: each at most once, not empty, numbers and booleans spelled strictly.

    DRF would read `?verdict=` as absent and `?asset=5.0` as 5; a client that sends
    them has a bug it should hear about (400 naming the parameter).
    """

    def to_internal_value(self, data: Any) -> Any:
        wrong: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
            values = [v for v in values if v is not None]
            if not values:
                continue
            text = str(values[-1])
            if len(values) > 1:
                wrong[name] = [f"Give it once; it was given {len(values)} times."]
            elif text == "":
                wrong[name] = ["Must not be empty."]
            elif isinstance(field, serializers.BooleanField) and text not in {"true", "false"}:
                wrong[name] = ["Must be true or false."]
            elif isinstance(field, serializers.IntegerField) and not re.fullmatch(
                r"-?[0-9]{1,19}", text
            ):
                wrong[name] = ["Must be a whole number."]
        if wrong:
            raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class InputSerializer(serializers.Serializer):
    """What a client sends: a field it does not know is a 400 naming it, never ignored.

    The schema says so too (`additionalProperties: false`, see schema.py).
    """

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                allowed = ", ".join(self.fields) or "none"
                raise serializers.ValidationError(
                    {name: [f"Unknown field; accepted fields: {allowed}."] for name in unknown}
                )
            if not html.is_html_input(data):
                _check_json_types(self, data)
        return super().to_internal_value(data)


def _check_json_types(serializer: serializers.Serializer, data: Any) -> None:
    """In JSON, a number is a number and a boolean a boolean: "3" or 1 are refused.

    DRF coerces them (right for form fields, where everything is text); a JSON
    client that sends the wrong type has a bug it should hear about.
    """
    wrong: dict[str, list[str]] = {}
    for name, field in serializer.fields.items():
        if name not in data or field.read_only or data[name] is None:
            continue
        value = data[name]
        if isinstance(field, serializers.BooleanField):
            ok, kind = isinstance(value, bool), "true or false"
        elif isinstance(field, serializers.IntegerField):
            ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
        elif isinstance(field, serializers.FloatField):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            kind = "a number"
        else:
            continue
        if not ok:
            wrong[name] = [f"Must be {kind} (JSON), not {type(value).__name__}."]
    if wrong:
        raise serializers.ValidationError(wrong)


class RowReference:
    """A body field that names a row (by id or name): none such is a 404, as in a path.

    schema.ApiSchema declares the 404 on every operation whose body has one.
    """


class ObjectId(RowReference, serializers.IntegerField):
    """The id of an existing row, given as a number; returns the row.

    Not a number or out of range (a 64-bit id): a 400 naming the field, never a
    database overflow; a well-formed id of no row: 404, as in a path.
    """

    def __init__(self, queryset: Any, **kwargs: Any) -> None:
        self.queryset = queryset
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Any:
        pk = super().run_validation(data)
        if pk is None:
            return None
        row = self.queryset.filter(pk=pk).first()
        if row is None:
            raise NotFound(f"No {self.queryset.model._meta.verbose_name} with id {pk}.")
        return row

    def to_representation(self, value: Any) -> int:
        return value.pk if hasattr(value, "pk") else int(value)


class Text(serializers.CharField):
    """A string, and only a string: a number or a list is a 400, not silently str()-ed."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Name(Text):
    """A name people read (asset, inspection): no control characters (models.check_name)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(
            RegexValidator(NAME_PATTERN, "Cannot hold tabs, line breaks or control characters.")
        )


def positive_id(value: Any) -> int | None:
    """`value` as an id (ASCII digits, 1..2**63-1), or None: never an int() error."""
    text = str(value if value is not None else "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def parse_version(request: Request) -> int:
    """The photo version the client edited, from If-Match: "3", W/"3" or 3.

    Missing -> 428 (never overwrite blindly); malformed -> 400.
    """
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        raise PreconditionRequired()
    value = header.strip().removeprefix("W/").strip().strip('"').strip()
    version = positive_id(value)
    if version is None:
        raise ParseError(
            f"If-Match must be the photo version, a positive whole number; got {header!r}."
        )
    return version


def with_etag(response: Response, version: int) -> Response:
    """Send the photo version as the ETag a client echoes in If-Match."""
    response["ETag"] = f'"{version}"'
    return response


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """`data` checked by `serializer_class`; a body that is not an object is a 400."""
    if not isinstance(data, dict) and not hasattr(data, "getlist"):
        raise ParseError("The request body must be a JSON object.")
    ser = serializer_class(data=data)
    ser.is_valid(raise_exception=True)
    return dict(ser.validated_data)


class RolePermissionsMixin:
    """Permissions by action: `action_permissions = {"create": IsSupervisor, ...}`."""

    action_permissions: dict[str, type[BasePermission]] = {}
    default_permission: type[BasePermission] = IsIntegration

    def get_permissions(self) -> list[BasePermission]:
        action_name = getattr(self, "action", None)
        return [self.action_permissions.get(action_name, self.default_permission)()]
