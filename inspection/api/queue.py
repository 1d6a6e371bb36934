"""The inspectors' queue: GET /api/v1/queue/next/, POST /queue/{photo}/skip/, GET /queue/.

Inspectors and supervisors. `next` leases the photo to the caller (see
inspection/services/queue.py): never the same photo to two people at once; a
save of its boxes or verdict, a skip, or the lease's expiry ends the lease.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection import selectors
from inspection.api.base import query_int
from inspection.api.permissions import IsInspector
from inspection.api.schema import errors
from inspection.api.serializers import PhotoSerializer
from inspection.models import Photo
from inspection.services.queue import QueueItem, queue_candidates, queue_next, queue_skip


class QueueNextOutputSerializer(serializers.Serializer):
    """The photo to label next (null when every photo is labelled or taken), and its lease."""

    photo = PhotoSerializer(allow_null=True)
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    queue_score = serializers.FloatField(allow_null=True)
    remaining = serializers.IntegerField(help_text="Unlabelled photos nobody holds.")
    detail = serializers.CharField()


class QueueEntryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue_score = serializers.FloatField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    suggestion_state = serializers.CharField()


class QueueListOutputSerializer(serializers.Serializer):
    results = QueueEntryOutputSerializer(many=True)


class QueueSkipInputSerializer(serializers.Serializer):
    """Nothing to send: the photo is in the path."""


def _next_response(request: Request, item: QueueItem | None) -> Response:
    if item is None:
        data = {
            "photo": None,
            "lease_expires_at": None,
            "queue_score": None,
            "remaining": 0,
            "detail": "Every photo is labelled or held by another inspector.",
        }
    else:
        photo = selectors.photo_list().get(pk=item.photo.pk)
        data = {
            "photo": photo,
            "lease_expires_at": item.lease.expires_at,
            "queue_score": photo.queue_score,
            "remaining": item.remaining,
            "detail": f"Photo {photo.pk} is yours until {item.lease.expires_at:%H:%M:%S} UTC.",
        }
    out = QueueNextOutputSerializer(data, context={"request": request})
    return Response(out.data)


class QueueNextView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="Take the next photo to label",
        description=(
            "Inspectors. The unlabelled photo the models are least sure about, spread away "
            "from what others hold, leased to you for `RUSTWATCH_QUEUE_LEASE_S` seconds. "
            "Asking again while you hold one gives the same photo (safe to retry); saving "
            "its boxes or verdict ends the lease."
        ),
        responses={200: QueueNextOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        return _next_response(request, queue_next(user=request.user))


class QueueSkipView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="Skip a photo and take the next",
        description=(
            "Inspectors. Gives the photo back (others may take it; you are not offered it "
            "again for `RUSTWATCH_QUEUE_SKIP_S` seconds) and answers like `next`."
        ),
        request=None,
        responses={200: QueueNextOutputSerializer, **errors(404)},
    )
    def post(self, request: Request, photo_id: int) -> Response:
        photo = get_object_or_404(Photo, pk=photo_id)
        queue_skip(photo=photo, user=request.user)
        return _next_response(request, queue_next(user=request.user))


class QueueListView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="The queue's order",
        description="Inspectors. The next unlabelled photos you could be given, best first "
        "(priority only; `next` adds diversity). `limit`: 1-500, default 50.",
        parameters=[
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 500}, required=False
            )
        ],
        responses={200: QueueListOutputSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        limit = query_int(request, "limit", minimum=1, maximum=500) or 50
        rows = queue_candidates(request.user).values(
            "id", "queue_score", "score", "suggestion_state"
        )[:limit]
        return Response(QueueListOutputSerializer({"results": list(rows)}).data)
