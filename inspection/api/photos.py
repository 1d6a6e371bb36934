"""Photos: /api/v1/photos/ — list, detail, upload, boxes, verdict, suggestions, history, files.

Any role reads and uploads; inspectors save boxes and verdicts; suggestions
are reviewed by supervisors, or by inspectors on photos they uploaded (the
rule is in the view until the service holds it). Every edit carries the
photo version (If-Match, see schema.IF_MATCH): missing 428, stale 412.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from inspection import selectors
from inspection.api.base import (
    MAX_ID,
    InputSerializer,
    ObjectId,
    Pagination,
    QuerySerializer,
    RolePermissionsMixin,
    Text,
    parse_version,
    validated,
    with_etag,
)
from inspection.api.permissions import IsInspector
from inspection.api.schema import IF_MATCH, STALE_ERROR, errors
from inspection.api.serializers import (
    PhotoDetailSerializer,
    PhotoEventSerializer,
    PhotoSerializer,
    PhotoStateSerializer,
)
from inspection.errors import DomainError
from inspection.models import Inspection, Photo, Verdict
from inspection.services.boxes import review_suggestion, save_boxes
from inspection.services.photos import ingest_photos, set_verdict

log = logging.getLogger(__name__)

# --- Serializers -------------------------------------------------------------


class PhotoFilterSerializer(QuerySerializer):
    """Query parameters of the photo list; a bad value is a 400 naming it."""

    inspection = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
    asset = serializers.IntegerField(max_value=MAX_ID, required=False, min_value=1)
    verdict = serializers.ChoiceField(choices=Verdict.choices, required=False)
    has_boxes = serializers.BooleanField(required=False, allow_null=True, default=None)
    has_suggestions = serializers.BooleanField(required=False, allow_null=True, default=None)
    labelled = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: a human verdict or verified; false: neither yet.",
    )


@extend_schema_field(
    {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
)
class _Files(serializers.ListField):
    """One or more files of one multipart field."""

    child = serializers.FileField(allow_empty_file=True, use_url=False)


class UploadInputSerializer(InputSerializer):
    """Photos to store in an inspection (multipart)."""

    inspection = ObjectId(Inspection.objects.all(), help_text="The inspection's id.")
    files = _Files(
        allow_empty=False,
        help_text="One or more JPEG, PNG or WebP photos (multipart field `files`).",
    )


class UploadResultSerializer(serializers.Serializer):
    """What happened to one uploaded file."""

    filename = serializers.CharField()
    status = serializers.IntegerField(help_text="HTTP status of this file alone.")
    photo = PhotoSerializer(required=False)
    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    photo_id = serializers.IntegerField(required=False, help_text="The existing photo (409).")
    limit = serializers.IntegerField(required=False, help_text="The limit exceeded (413).")


class UploadResponseSerializer(serializers.Serializer):
    """Counts and one result per file; when the request failed, also its `detail` and `code`."""

    created = serializers.IntegerField()
    failed = serializers.IntegerField()
    results = UploadResultSerializer(many=True)
    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False)
    photo_id = serializers.IntegerField(required=False)
    limit = serializers.IntegerField(required=False)


def _coordinate() -> serializers.IntegerField:
    """A pixel coordinate as a 64-bit number (beyond: 400 here, before any database)."""
    return serializers.IntegerField(min_value=-MAX_ID - 1, max_value=MAX_ID)


class BoxInputSerializer(InputSerializer):
    """One box a client saves, in original-image pixels.

    Inside the image with xmin < xmax, ymin < ymax: the service checks that and
    names the box in its 400.
    """

    id = serializers.IntegerField(
        max_value=MAX_ID,
        min_value=1,
        required=False,
        help_text="Id of a model suggestion being accepted or edited.",
    )
    xmin = _coordinate()
    ymin = _coordinate()
    xmax = _coordinate()
    ymax = _coordinate()
    label = Text(max_length=64, default="rust")
    difficult = serializers.BooleanField(default=False)
    derived_from = serializers.IntegerField(
        max_value=MAX_ID,
        min_value=1,
        required=False,
        help_text="Id of the model suggestion this new box corrects (the suggestion is rejected).",
    )


class BoxesInputSerializer(InputSerializer):
    """The whole set of a photo's boxes (replaces human and accepted boxes)."""

    boxes = BoxInputSerializer(many=True, allow_empty=True)
    verified = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="True once a person confirmed the photo (VOC verified=yes).",
    )
    rejected = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        default=list,
        help_text="Ids of model suggestions the person refused in this edit.",
    )


class VerdictInputSerializer(InputSerializer):
    """A photo's verdict (the version the client saw goes in If-Match)."""

    verdict = serializers.ChoiceField(choices=Verdict.choices)


class SuggestionReviewSerializer(InputSerializer):
    """Accept or reject one of a photo's model suggestions."""

    box = serializers.IntegerField(max_value=MAX_ID, min_value=1, help_text="Id of the model box.")
    action = serializers.ChoiceField(choices=["accept", "reject"])


# --- Views -------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List photos",
        description="Any role. Newest first, paginated; filters combine.",
        parameters=[PhotoFilterSerializer],
    ),
    retrieve=extend_schema(
        summary="One photo",
        description="Any role. With its boxes, near-duplicates and version (also as ETag).",
    ),
)
class PhotoViewSet(
    RolePermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    pagination_class = Pagination
    action_permissions = {
        "put_boxes": IsInspector,
        "verdict": IsInspector,
        "suggestions": IsInspector,  # plus: own photos only, unless supervisor
    }
    # Image bytes are served whatever the client says it accepts.
    binary_actions = {"image", "thumbnail"}

    def get_serializer_class(self):
        return PhotoSerializer if self.action == "list" else PhotoDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            f = validated(PhotoFilterSerializer, self.request.query_params)
            return selectors.photo_list(
                selectors.PhotoFilters(
                    inspection_id=f.get("inspection"),
                    asset_id=f.get("asset"),
                    verdict=f.get("verdict"),
                    has_boxes=f.get("has_boxes"),
                    has_suggestions=f.get("has_suggestions"),
                    labelled=f.get("labelled"),
                )
            )
        return selectors.photo_detail_queryset()

    def perform_content_negotiation(self, request: Request, force: bool = False):
        return super().perform_content_negotiation(
            request, force=force or self.action in self.binary_actions
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        return with_etag(Response(self.get_serializer(photo).data), photo.version)

    def _state(self, photo: Photo) -> Response:
        """The annotation state after an edit, with its version as the ETag."""
        return with_etag(Response(PhotoStateSerializer(photo).data), photo.version)

    # -- upload --

    @extend_schema(
        summary="Upload photos",
        description=(
            "Any role. Multipart with `inspection` (id) and one or more `files`. "
            "Each file is validated on its own (JPEG, PNG or WebP; size and pixel "
            "limits; a full decode); `results` says what happened to each. Status: "
            "201 when all were stored; with one file, that file's error status "
            "(400, 409 naming the existing photo, 413, 415); with several, 207 when "
            "some failed, or their common error status when all failed."
        ),
        request={"multipart/form-data": UploadInputSerializer},
        responses={
            201: UploadResponseSerializer,
            207: UploadResponseSerializer,
            409: UploadResponseSerializer,
            413: UploadResponseSerializer,
        },
    )
    @action(
        detail=False,
        methods=["post"],
        parser_classes=[MultiPartParser, FormParser],
        url_path="upload",
        url_name="upload",
    )
    def upload(self, request: Request) -> Response:
        data = validated(UploadInputSerializer, request.data)
        files = data["files"]
        outcomes = ingest_photos(
            inspection=data["inspection"], files=[(f, f.name) for f in files], user=request.user
        )
        results: list[dict[str, Any]] = []
        for f, outcome in zip(files, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results.append(
                    {
                        "filename": f.name,
                        "status": outcome.status,
                        "detail": outcome.message,
                        "code": outcome.code,
                        **outcome.extra,
                    }
                )
            else:
                photo = selectors.photo_list().get(pk=outcome.pk)
                results.append({"filename": f.name, "status": 201, "photo": photo})
        failed = [r for r in results if r["status"] != 201]
        body: dict[str, Any] = {
            "created": len(results) - len(failed),
            "failed": len(failed),
            "results": results,
        }
        if not failed:
            code = status.HTTP_201_CREATED
        elif len(results) == 1:
            code = failed[0]["status"]
            body.update({k: v for k, v in failed[0].items() if k not in {"filename", "status"}})
        elif len(failed) < len(results):
            code = status.HTTP_207_MULTI_STATUS
            body["detail"] = f"{len(failed)} of {len(results)} files were not stored."
        else:
            codes = {r["status"] for r in failed}
            code = codes.pop() if len(codes) == 1 else status.HTTP_400_BAD_REQUEST
            body["detail"] = "None of the files were stored."
            body["code"] = "invalid" if code == status.HTTP_400_BAD_REQUEST else failed[0]["code"]
        out = UploadResponseSerializer(body, context=self.get_serializer_context())
        return Response(out.data, status=code)

    # -- boxes --

    @extend_schema(
        summary="A photo's boxes",
        description="Any role. The annotation state; its version is also the ETag.",
        responses={200: PhotoStateSerializer},
    )
    @action(detail=True, methods=["get"], url_path="boxes", url_name="boxes")
    def boxes(self, request: Request, pk: str | None = None) -> Response:
        return self._state(self.get_object())

    @extend_schema(
        summary="Save a photo's boxes",
        description=(
            "Inspectors. Replaces the photo's human and accepted boxes with `boxes`, "
            "writes the labelImg XML beside the image, and records the change in the "
            "history; `rejected` lists suggestions refused in the same edit. Accepting, "
            "rejecting or leaving out a model box is a review: supervisors, or inspectors "
            "on photos they uploaded (403 otherwise). `If-Match` "
            "must carry the version the client edited: missing "
            "-> 428, stale -> 412 with the `current` state (nothing is overwritten)."
        ),
        parameters=[IF_MATCH],
        request=BoxesInputSerializer,
        responses={200: PhotoStateSerializer, 412: STALE_ERROR, **errors(428)},
    )
    @boxes.mapping.put
    def put_boxes(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        data = validated(BoxesInputSerializer, request.data)
        version = parse_version(request)
        photo = save_boxes(
            photo=photo,
            boxes=[dict(b) for b in data["boxes"]],
            user=request.user,
            expected_version=version,
            verified=data.get("verified"),
            rejected=data.get("rejected") or None,
        )
        return self._state(photo)

    # -- verdict --

    @extend_schema(
        summary="Set a photo's verdict",
        description=(
            "Inspectors. rust / norust / unknown, with the version the client saw "
            "in `If-Match`: missing -> 428, stale -> 412."
        ),
        parameters=[IF_MATCH],
        request=VerdictInputSerializer,
        responses={200: PhotoStateSerializer, 412: STALE_ERROR, **errors(428)},
    )
    @action(detail=True, methods=["put", "post"], url_path="verdict", url_name="verdict")
    def verdict(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        data = validated(VerdictInputSerializer, request.data)
        version = parse_version(request)
        photo = set_verdict(
            photo=photo, verdict=data["verdict"], user=request.user, expected_version=version
        )
        return self._state(photo)

    # -- suggestions --

    @extend_schema(
        summary="Accept or reject a model suggestion",
        description=(
            "Supervisors on any photo; inspectors on photos they uploaded themselves "
            "(reviewing the model's work on others' photos is a supervisor's job). "
            "`box` must be a model box of this photo (404 otherwise). Versioned like "
            "boxes (`If-Match`): missing -> 428, stale -> 412."
        ),
        parameters=[IF_MATCH],
        request=SuggestionReviewSerializer,
        responses={200: PhotoStateSerializer, 412: STALE_ERROR, **errors(428)},
    )
    @action(detail=True, methods=["post"], url_path="suggestions", url_name="suggestions")
    def suggestions(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()  # who may review which photo: boxes.may_review_suggestions
        data = validated(SuggestionReviewSerializer, request.data)
        version = parse_version(request)
        box = photo.boxes.filter(pk=data["box"]).first()
        if box is None:
            raise NotFound(f"Box {data['box']} is not a box of photo {photo.pk}.")
        photo = review_suggestion(
            box=box, action=data["action"], user=request.user, expected_version=version
        )
        return self._state(photo)

    # -- history --

    @extend_schema(
        summary="A photo's history",
        description="Any role. Every upload, import, box and verdict change: who, when, "
        "before and after. Newest first, paginated.",
        responses={200: PhotoEventSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], url_path="history", url_name="history")
    def history(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        page = self.paginate_queryset(selectors.photo_history(photo))
        return self.get_paginated_response(PhotoEventSerializer(page, many=True).data)

    # -- files --

    @extend_schema(
        summary="The photo's image file",
        description="Any role. The stored (upright) image.",
        responses={(200, "image/*"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], url_path="image", url_name="image")
    def image(self, request: Request, pk: str | None = None) -> FileResponse:
        return photo_file_response(self.get_object(), thumbnail=False)

    @extend_schema(
        summary="The photo's thumbnail",
        description="Any role. 404 until the worker has made it.",
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"], url_path="thumbnail", url_name="thumbnail")
    def thumbnail(self, request: Request, pk: str | None = None) -> FileResponse:
        return photo_file_response(self.get_object(), thumbnail=True)


def photo_file_response(photo: Photo, *, thumbnail: bool) -> FileResponse:
    """The photo's image or thumbnail as a file response (after the caller's auth check)."""
    field = photo.thumbnail if thumbnail else photo.image
    if not field:
        raise Http404("The thumbnail is not made yet." if thumbnail else "The photo has no file.")
    try:
        handle = field.open("rb")
    except (FileNotFoundError, OSError) as exc:
        log.warning("photo %s: file %s missing from storage", photo.pk, field.name)
        raise Http404("The photo's file is missing from storage.") from exc
    content_type = "image/jpeg" if thumbnail else (photo.content_type or None)
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response
