"""Any other path under /api/v1/: a JSON 404 instead of an HTML page."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class NotFoundView(APIView):
    """The last route of the API: every method, every path, a 404 with `detail` and `code`."""

    permission_classes: list[type[BasePermission]] = []
    authentication_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound(f"There is no API endpoint at {request.path}.")

    post = put = patch = delete = get
