"""The REST API (/api/v1/): thin views that parse, authorise, call a service, render.

Who may do what (inspection/roles.py; a higher role may do all a lower may):
- any role (integration, inspector, supervisor): read assets, inspections,
  photos, boxes, history; upload photos; see and rotate their own API token
- inspector: create and edit inspections, save boxes, set verdicts, import VOC zips,
  accept or reject model suggestions on photos they uploaded themselves
- supervisor: create, edit and delete assets, delete inspections (only when
  empty: never a photo lost), review any photo's suggestions, export VOC zips,
  issue and revoke tokens for others
Anonymous requests get 401; a user without a role gets 403 everywhere.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection import selectors
from inspection.api import serializers as s
from inspection.api.errors import PreconditionRequired
from inspection.api.permissions import IsInspector, IsIntegration, IsSupervisor
from inspection.errors import DomainError, TooLarge
from inspection.models import Asset, Inspection, Photo, Role
from inspection.roles import has_role, user_role
from inspection.services.boxes import review_suggestion, save_boxes
from inspection.services.catalog import (
    create_asset,
    create_inspection,
    delete_asset,
    delete_inspection,
    update_asset,
    update_inspection,
)
from inspection.services.photos import ingest_photos, photo_state, set_verdict
from inspection.services.tokens import issue_token, revoke_token, rotate_token
from inspection.services.voc_io import export_voc, import_voc

log = logging.getLogger(__name__)

ERROR = inline_serializer(
    "Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
    },
)
STALE = inline_serializer(
    "StaleEditError",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "current": s.PhotoStateSerializer(),
    },
)
DUPLICATE = inline_serializer(
    "DuplicateError",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "photo_id": serializers.IntegerField(),
    },
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description='The photo version the client edited, e.g. "3" (from ETag or `version`).',
)

IF_MATCH_OPTIONAL = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="The photo version the client saw; or send `version` in the body.",
)


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def positive_id(value: Any) -> int | None:
    """`value` as an id (ASCII digits, 1..2**63-1), or None: never an int() error."""
    text = str(value if value is not None else "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= s.MAX_ID else None


def parse_version(request: Request, body_version: int | None = None) -> int:
    """The version the client edited: If-Match header, else `version` in the body.

    Missing -> 428 (never overwrite blindly); malformed -> 400.
    """
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        if body_version is not None:
            return body_version
        raise PreconditionRequired()
    value = header.strip().removeprefix("W/").strip().strip('"').strip()
    version = positive_id(value)
    if version is None:
        raise ParseError(
            f"If-Match must be the photo version, a positive whole number; got {header!r}."
        )
    if body_version is not None and body_version != version:
        raise ParseError(f"If-Match ({version}) and the body's version ({body_version}) disagree.")
    return version


def _etag(response: Response, version: int) -> Response:
    response["ETag"] = f'"{version}"'
    return response


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
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


# --- Assets and inspections --------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="List assets", description="Any role."),
    retrieve=extend_schema(summary="One asset", description="Any role."),
    create=extend_schema(
        summary="Create an asset",
        description="Supervisors. A name in use is a 409.",
        responses={201: s.AssetSerializer, 400: ERROR, 409: ERROR},
    ),
    partial_update=extend_schema(
        summary="Edit an asset",
        description="Supervisors. Any of name, kind, description. A name in use is a 409.",
        request=s.AssetUpdateSerializer,
        responses={200: s.AssetSerializer, 400: ERROR, 404: ERROR, 409: ERROR},
    ),
    destroy=extend_schema(
        summary="Delete an asset",
        description=(
            "Supervisors. Only an asset without inspections: otherwise a 409 saying "
            "how many inspections and photos it still has (nothing is deleted)."
        ),
        responses={204: None, 404: ERROR, 409: ERROR},
    ),
)
class AssetViewSet(
    RolePermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.AssetSerializer
    pagination_class = Pagination
    action_permissions = {
        "create": IsSupervisor,
        "partial_update": IsSupervisor,
        "destroy": IsSupervisor,
    }

    def get_queryset(self):
        return selectors.asset_list()

    def create(self, request: Request) -> Response:
        data = _valid(s.AssetSerializer, request.data)
        asset = create_asset(
            name=data["name"],
            kind=data.get("kind", "other"),
            description=data.get("description", ""),
        )
        out = selectors.asset_list().get(pk=asset.pk)
        return Response(self.get_serializer(out).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        data = _valid(s.AssetUpdateSerializer, request.data)
        asset = update_asset(asset=asset, **data)
        return Response(self.get_serializer(selectors.asset_list().get(pk=asset.pk)).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        delete_asset(asset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List inspections",
        description="Any role. Newest first.",
        parameters=[OpenApiParameter("asset", int, description="Only this asset's inspections")],
    ),
    retrieve=extend_schema(summary="One inspection", description="Any role."),
    create=extend_schema(
        summary="Create an inspection",
        description="Inspectors. The name is unique per asset (409 otherwise).",
        responses={201: s.InspectionSerializer, 400: ERROR, 409: ERROR},
    ),
    partial_update=extend_schema(
        summary="Edit an inspection",
        description=(
            "Inspectors. Any of name, date, notes; it stays with its asset. "
            "A name the asset already uses is a 409."
        ),
        request=s.InspectionUpdateSerializer,
        responses={200: s.InspectionSerializer, 400: ERROR, 404: ERROR, 409: ERROR},
    ),
    destroy=extend_schema(
        summary="Delete an inspection",
        description=(
            "Supervisors. Only an inspection without photos: otherwise a 409 saying "
            "how many photos it still has (nothing is deleted)."
        ),
        responses={204: None, 404: ERROR, 409: ERROR},
    ),
)
class InspectionViewSet(
    RolePermissionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = s.InspectionSerializer
    pagination_class = Pagination
    action_permissions = {
        "create": IsInspector,
        "partial_update": IsInspector,
        "destroy": IsSupervisor,
    }

    def get_queryset(self):
        asset = self.request.query_params.get("asset") if self.action == "list" else None
        asset_id = positive_id(asset) if asset is not None else None
        if asset is not None and asset_id is None:
            raise ParseError(f"asset must be an asset id; got {asset!r}.")
        return selectors.inspection_list(asset_id=asset_id)

    def create(self, request: Request) -> Response:
        data = _valid(s.InspectionSerializer, request.data)
        inspection = create_inspection(
            asset=data["asset"],
            name=data["name"],
            date=data.get("date"),
            notes=data.get("notes", ""),
            user=request.user,
        )
        out = selectors.inspection_list().get(pk=inspection.pk)
        return Response(self.get_serializer(out).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        inspection = self.get_object()
        data = _valid(s.InspectionUpdateSerializer, request.data)
        inspection = update_inspection(inspection=inspection, **data)
        out = selectors.inspection_list().get(pk=inspection.pk)
        return Response(self.get_serializer(out).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        delete_inspection(inspection=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Photos ------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List photos",
        description="Any role. Newest first, paginated; filters combine.",
        parameters=[s.PhotoFilterSerializer],
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
        return s.PhotoSerializer if self.action == "list" else s.PhotoDetailSerializer

    def get_queryset(self):
        if self.action == "list":
            f = _valid(s.PhotoFilterSerializer, self.request.query_params)
            return selectors.photo_list(
                selectors.PhotoFilters(
                    inspection_id=f.get("inspection"),
                    asset_id=f.get("asset"),
                    verdict=f.get("verdict"),
                    has_boxes=f.get("has_boxes"),
                    has_suggestions=f.get("has_suggestions"),
                )
            )
        return selectors.photo_detail_queryset()

    def perform_content_negotiation(self, request: Request, force: bool = False):
        return super().perform_content_negotiation(
            request, force=force or self.action in self.binary_actions
        )

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        return _etag(Response(self.get_serializer(photo).data), photo.version)

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
        request={"multipart/form-data": s.UploadInputSerializer},
        responses={
            201: s.UploadResponseSerializer,
            207: s.UploadResponseSerializer,
            400: s.UploadResponseSerializer,
            409: s.UploadResponseSerializer,
            413: s.UploadResponseSerializer,
            415: s.UploadResponseSerializer,
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
        files = request.FILES.getlist("files") or request.FILES.getlist("file")
        if not files:
            raise ValidationError({"files": ["Attach one or more photos as `files`."]})
        inspection_id = positive_id(request.data.get("inspection"))
        if inspection_id is None:
            raise ValidationError({"inspection": ["Give the inspection id as `inspection`."]})
        inspection = Inspection.objects.filter(pk=inspection_id).first()
        if inspection is None:
            raise ValidationError({"inspection": [f"No inspection with id {inspection_id}."]})

        outcomes = ingest_photos(
            inspection=inspection, files=[(f, f.name) for f in files], user=request.user
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
                data = s.PhotoSerializer(photo, context=self.get_serializer_context()).data
                results.append({"filename": f.name, "status": 201, "photo": data})
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
        return Response(body, status=code)

    # -- boxes --

    @extend_schema(
        summary="A photo's boxes",
        description="Any role. The annotation state; its version is also the ETag.",
        responses={200: s.PhotoStateSerializer, 404: ERROR},
    )
    @action(detail=True, methods=["get"], url_path="boxes", url_name="boxes")
    def boxes(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        return _etag(Response(photo_state(photo)), photo.version)

    @extend_schema(
        summary="Save a photo's boxes",
        description=(
            "Inspectors. Replaces the photo's human and accepted boxes with `boxes`, "
            "writes the labelImg XML beside the image, and records the change in the "
            "history; `rejected` lists suggestions refused in the same edit. `If-Match` "
            "must carry the version the client edited: missing "
            "-> 428, stale -> 412 with the `current` state (nothing is overwritten)."
        ),
        parameters=[IF_MATCH],
        request=s.BoxesInputSerializer,
        responses={
            200: s.PhotoStateSerializer,
            400: ERROR,
            404: ERROR,
            412: STALE,
            428: ERROR,
        },
    )
    @boxes.mapping.put
    def put_boxes(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        data = _valid(s.BoxesInputSerializer, request.data)
        version = parse_version(request)
        photo = save_boxes(
            photo=photo,
            boxes=[dict(b) for b in data["boxes"]],
            user=request.user,
            expected_version=version,
            verified=data.get("verified"),
            rejected=data.get("rejected") or None,
        )
        return _etag(Response(photo_state(photo)), photo.version)

    # -- verdict --

    @extend_schema(
        summary="Set a photo's verdict",
        description=(
            "Inspectors. rust / norust / unknown, with the version the client saw "
            "(`If-Match` or `version`): missing -> 428, stale -> 412."
        ),
        parameters=[IF_MATCH_OPTIONAL],
        request=s.VerdictInputSerializer,
        responses={200: s.PhotoStateSerializer, 400: ERROR, 412: STALE, 428: ERROR},
    )
    @action(detail=True, methods=["put", "post"], url_path="verdict", url_name="verdict")
    def verdict(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        data = _valid(s.VerdictInputSerializer, request.data)
        version = parse_version(request, data.get("version"))
        photo = set_verdict(
            photo=photo, verdict=data["verdict"], user=request.user, expected_version=version
        )
        return _etag(Response(photo_state(photo)), photo.version)

    # -- suggestions --

    @extend_schema(
        summary="Accept or reject a model suggestion",
        description=(
            "Supervisors on any photo; inspectors on photos they uploaded themselves "
            "(reviewing the model's work on others' photos is a supervisor's job). "
            "`box` must be a model box of this photo. Versioned like boxes "
            "(`If-Match` or `version`): missing -> 428, stale -> 412."
        ),
        parameters=[IF_MATCH_OPTIONAL],
        request=s.SuggestionReviewSerializer,
        responses={200: s.PhotoStateSerializer, 400: ERROR, 403: ERROR, 412: STALE, 428: ERROR},
    )
    @action(detail=True, methods=["post"], url_path="suggestions", url_name="suggestions")
    def suggestions(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        if not has_role(request.user, Role.SUPERVISOR) and photo.uploaded_by_id != request.user.pk:
            raise PermissionDenied(
                "Inspectors review suggestions on photos they uploaded; ask a supervisor."
            )
        data = _valid(s.SuggestionReviewSerializer, request.data)
        version = parse_version(request, data.get("version"))
        box = photo.boxes.filter(pk=data["box"]).first()
        if box is None:
            raise ValidationError({"box": [f"Box {data['box']} is not a box of photo {photo.pk}."]})
        photo = review_suggestion(
            box=box, action=data["action"], user=request.user, expected_version=version
        )
        return _etag(Response(photo_state(photo)), photo.version)

    # -- history --

    @extend_schema(
        summary="A photo's history",
        description="Any role. Every upload, import, box and verdict change: who, when, "
        "before and after. Newest first, paginated.",
        responses={200: s.PhotoEventSerializer(many=True), 404: ERROR},
    )
    @action(detail=True, methods=["get"], url_path="history", url_name="history")
    def history(self, request: Request, pk: str | None = None) -> Response:
        photo = self.get_object()
        page = self.paginate_queryset(selectors.photo_history(photo))
        return self.get_paginated_response(s.PhotoEventSerializer(page, many=True).data)

    # -- files --

    @extend_schema(
        summary="The photo's image file",
        description="Any role. The stored (upright) image.",
        responses={(200, "image/*"): OpenApiTypes.BINARY, 404: ERROR},
    )
    @action(detail=True, methods=["get"], url_path="image", url_name="image")
    def image(self, request: Request, pk: str | None = None) -> FileResponse:
        return photo_file_response(self.get_object(), thumbnail=False)

    @extend_schema(
        summary="The photo's thumbnail",
        description="Any role. 404 until the worker has made it.",
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY, 404: ERROR},
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


# --- Import and export -------------------------------------------------------


class ImportView(APIView):
    permission_classes = [IsInspector]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Import a Pascal VOC zip",
        description=(
            "Inspectors. A zip of images with labelImg XML beside them (same stem); "
            "folders named `rust/` and `norust/` give verdicts. Into `inspection` (id), "
            "or `inspection_name` (created under an asset of the same name if new). "
            "Unsafe zips (`..`, absolute paths, links, absurd sizes) are refused (400)."
        ),
        request={"multipart/form-data": s.ImportInputSerializer},
        responses={201: s.ImportReportSerializer, 400: ERROR, 404: ERROR, 413: ERROR},
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.ImportInputSerializer, request.data)
        upload = data["file"]
        limit = settings.RUSTWATCH_MAX_IMPORT_BYTES
        if upload.size > limit:
            raise TooLarge(
                f"The archive is {upload.size:,} bytes; the limit is {limit:,} bytes.",
                limit=limit,
            )
        inspection = None
        if "inspection" in data:
            inspection = Inspection.objects.filter(pk=data["inspection"]).first()
            if inspection is None:
                raise NotFound(f"No inspection with id {data['inspection']}.")
        upload.seek(0)
        report = import_voc(
            upload,
            inspection=inspection,
            inspection_name=data.get("inspection_name"),
            asset_name=data.get("asset_name"),
            user=request.user,
        )
        body = s.ImportReportSerializer(report.as_dict()).data
        return Response(body, status=status.HTTP_201_CREATED)


class ExportView(APIView):
    permission_classes = [IsSupervisor]

    def perform_content_negotiation(self, request: Request, force: bool = False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Export a Pascal VOC zip",
        description=(
            "Supervisors. JPEGImages/, Annotations/ (labelImg XML), ImageSets/Main/ of "
            "one inspection, one asset, or everything (no parameter)."
        ),
        parameters=[s.ExportQuerySerializer],
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 400: ERROR, 404: ERROR},
    )
    def get(self, request: Request) -> FileResponse:
        query = _valid(s.ExportQuerySerializer, request.query_params)
        inspection = asset = None
        if "inspection" in query:
            inspection = get_object_or_404(Inspection, pk=query["inspection"])
            stem = f"{inspection.asset.name}-{inspection.name}"
        elif "asset" in query:
            asset = get_object_or_404(Asset, pk=query["asset"])
            stem = asset.name
        else:
            stem = "all"
        out = tempfile.TemporaryFile(suffix=".zip")  # deleted when the response closes it
        try:
            export_voc(out, inspection=inspection, asset=asset)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        name = f"rustwatch-{slugify(stem) or 'export'}-{timezone.now():%Y%m%d-%H%M%S}.zip"
        return FileResponse(out, as_attachment=True, filename=name, content_type="application/zip")


# --- Tokens ------------------------------------------------------------------


def _token_data(token: Token, *, with_key: bool) -> dict[str, Any]:
    role = user_role(token.user)
    data = {
        "user": token.user.get_username(),
        "role": role.value if role else None,
        "created": token.created,
        "key_prefix": token.key[:6],
    }
    if with_key:
        data["key"] = token.key
    return data


class TokenListView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="List API tokens",
        description="Supervisors. Keys are not shown, only their first characters.",
        responses={200: s.TokenSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        tokens = Token.objects.select_related("user").order_by("user__username")
        return Response([_token_data(t, with_key=False) for t in tokens])

    @extend_schema(
        summary="Issue a token for a user",
        description=(
            "Supervisors, typically for an integration user (a drone, a robot). The key "
            "is shown once here; issuing again replaces the old key."
        ),
        request=s.TokenCreateSerializer,
        responses={201: s.TokenSerializer, 400: ERROR},
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.TokenCreateSerializer, request.data)
        user = get_user_model().objects.get(username=data["username"])
        if user_role(user) is None:
            raise ValidationError(
                {"username": [f"{user.get_username()} has no role; add them to a group first."]}
            )
        if not user.is_active:
            raise ValidationError({"username": [f"{user.get_username()} is not active."]})
        token = issue_token(user=user, issued_by=request.user)
        return Response(_token_data(token, with_key=True), status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Revoke a user's token",
        description="Supervisors. By user id.",
        responses={204: None, 404: ERROR},
    )
    def delete(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(get_user_model(), pk=user_id)
        if not revoke_token(user=user, revoked_by=request.user):
            raise NotFound(f"{user.get_username()} has no token.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class OwnTokenView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="My API token",
        description="Any role. 404 if you have none yet (POST makes one).",
        responses={200: s.TokenSerializer, 404: ERROR},
    )
    def get(self, request: Request) -> Response:
        token = Token.objects.filter(user=request.user).select_related("user").first()
        if token is None:
            raise NotFound("You have no API token yet; POST here to create one.")
        return Response(_token_data(token, with_key=True))

    @extend_schema(
        summary="Create or rotate my API token",
        description="Any role. The old key stops working at once.",
        request=None,
        responses={201: s.TokenSerializer},
    )
    def post(self, request: Request) -> Response:
        token = rotate_token(user=request.user)
        return Response(_token_data(token, with_key=True), status=status.HTTP_201_CREATED)


# --- Fallback ----------------------------------------------------------------


class NotFoundView(APIView):
    """Any other path under /api/v1/: a JSON 404 instead of an HTML page."""

    permission_classes: list[type[BasePermission]] = []
    authentication_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound(f"There is no API endpoint at {request.path}.")

    post = put = patch = delete = get


__all__ = [
    "AssetViewSet",
    "ExportView",
    "ImportView",
    "InspectionViewSet",
    "NotFoundView",
    "OwnTokenView",
    "PhotoViewSet",
    "TokenDetailView",
    "TokenListView",
    "parse_version",
    "positive_id",
    "photo_file_response",
]
