"""Dataset import and export: /api/v1/import/ and /api/v1/export/.

Inspectors import a zip into an inspection; supervisors export a zip of an
inspection, an asset or everything; `format` is voc (default), coco or yolo.
Options are fields of the input serializers (`ImportInputSerializer`,
`ExportQuerySerializer`): add one there and pass it to the service; the schema
follows.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import MAX_ID, InputSerializer, QuerySerializer, Text, validated
from inspection.api.permissions import IsInspector, IsSupervisor
from inspection.api.schema import errors
from inspection.errors import TooLarge
from inspection.models import Asset, Inspection
from inspection.services.dataset_io import FORMATS, export_dataset, import_dataset

# --- Serializers -------------------------------------------------------------


FORMAT_HELP = (
    "`voc`: Pascal VOC (labelImg folders, CVAT's Pascal VOC 1.1); `coco`: COCO JSON; "
    "`yolo`: Ultralytics YOLO (images/, labels/, data.yaml)."
)


class ImportInputSerializer(InputSerializer):
    """A dataset zip and where its photos go (multipart)."""

    file = serializers.FileField(help_text="A zip of images and their annotations.")
    format = serializers.ChoiceField(choices=FORMATS, default="voc", help_text=FORMAT_HELP)
    inspection = serializers.IntegerField(
        max_value=MAX_ID, required=False, min_value=1, help_text="Import into this inspection"
    )
    inspection_name = Text(
        required=False, max_length=200, help_text="Or into this inspection (created if new)."
    )
    asset_name = Text(
        required=False,
        max_length=200,
        help_text="The asset of `inspection_name` (created if new; default: the same name).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "inspection" in attrs and ("inspection_name" in attrs or "asset_name" in attrs):
            raise serializers.ValidationError(
                "Give `inspection`, or `inspection_name` (and `asset_name`), not both."
            )
        return attrs


class ImportReportSerializer(serializers.Serializer):
    """What an import did (services.dataset_io.ImportReport)."""

    format = serializers.ChoiceField(choices=FORMATS)
    photos_created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    near_duplicates = serializers.IntegerField()
    boxes = serializers.IntegerField()
    verdicts = serializers.IntegerField()
    errors = serializers.ListField(
        child=serializers.CharField(), help_text="Each file that was skipped, and why."
    )
    duplicate_files = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField())
    inspection_id = serializers.IntegerField(allow_null=True)


class ExportQuerySerializer(QuerySerializer):
    """Query parameters of an export."""

    inspection = serializers.IntegerField(
        max_value=MAX_ID, required=False, min_value=1, help_text="Only this inspection."
    )
    asset = serializers.IntegerField(
        max_value=MAX_ID,
        required=False,
        min_value=1,
        help_text="Only this asset's inspections (with `inspection`: 404 unless it is of it).",
    )
    format = serializers.ChoiceField(choices=FORMATS, default="voc", help_text=FORMAT_HELP)


# --- Views -------------------------------------------------------------------


class ImportView(APIView):
    permission_classes = [IsInspector]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Import a zip of annotated photos (VOC, COCO or YOLO)",
        description=(
            "Inspectors. `format=voc` (default): images with labelImg XML beside them "
            "(same stem) or a VOC tree / CVAT Pascal VOC 1.1 zip; folders named `rust/` and "
            "`norust/` give verdicts. `coco`: a COCO JSON with its images; `yolo`: "
            "images/, labels/ and data.yaml. Into `inspection` (id), or `inspection_name` "
            "(created under an asset of the same name if new; a new asset only for "
            "supervisors, 403 otherwise). Unsafe zips (`..`, absolute paths, links, absurd "
            "sizes) are refused (400)."
        ),
        request={"multipart/form-data": ImportInputSerializer},
        responses={201: ImportReportSerializer, **errors(404, 413)},
    )
    def post(self, request: Request) -> Response:
        data = validated(ImportInputSerializer, request.data)
        upload, inspection = import_request(data)
        report = import_dataset(
            upload,
            format=data["format"],
            inspection=inspection,
            inspection_name=data.get("inspection_name"),
            asset_name=data.get("asset_name"),
            user=request.user,
        )
        return Response(ImportReportSerializer(report).data, status=status.HTTP_201_CREATED)


def import_request(data: dict) -> tuple[Any, Inspection | None]:
    """The checked archive and target inspection of an import (the direct one and the job).

    An archive over RUSTWATCH_MAX_IMPORT_BYTES is 413; an `inspection` id of no row, 404.
    """
    upload = data["file"]
    limit = settings.RUSTWATCH_MAX_IMPORT_BYTES
    if upload.size > limit:
        raise TooLarge(
            f"The archive is {upload.size:,} bytes; the limit is {limit:,} bytes.", limit=limit
        )
    inspection = None
    if "inspection" in data:
        inspection = Inspection.objects.filter(pk=data["inspection"]).first()
        if inspection is None:
            raise NotFound(f"No inspection with id {data['inspection']}.")
    upload.seek(0)
    return upload, inspection


def export_selection(query: dict) -> tuple[Inspection | None, Asset | None]:
    """What an export takes: one inspection, one asset or everything (both None).

    With `asset` too, the filters combine: the inspection must be of that asset (404).
    The zip download and the export job both choose through here.
    """
    if "inspection" in query:
        same_asset = {"asset_id": query["asset"]} if "asset" in query else {}
        return get_object_or_404(Inspection, pk=query["inspection"], **same_asset), None
    if "asset" in query:
        return None, get_object_or_404(Asset, pk=query["asset"])
    return None, None


class ExportView(APIView):
    permission_classes = [IsSupervisor]

    def perform_content_negotiation(self, request: Request, force: bool = False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Export a zip of annotated photos (VOC, COCO or YOLO)",
        description=(
            "Supervisors. One inspection, one asset, or everything (no parameter), with the "
            "human and accepted boxes. `format=voc` (default): CVAT's Pascal VOC 1.1 layout "
            "(JPEGImages/, Annotations/, ImageSets/Main/, labelmap.txt); `coco`: "
            "annotations/instances_default.json + images/default/; `yolo`: images/, "
            "labels/, data.yaml."
        ),
        parameters=[ExportQuerySerializer],
        responses={(200, "application/zip"): OpenApiTypes.BINARY, **errors(404)},
    )
    def get(self, request: Request) -> FileResponse:
        query = validated(ExportQuerySerializer, request.query_params)
        inspection, asset = export_selection(query)
        stem = (
            f"{inspection.asset.name}-{inspection.name}"
            if inspection
            else asset.name
            if asset
            else "all"
        )
        out = tempfile.TemporaryFile(suffix=".zip")  # deleted when the response closes it
        try:
            export_dataset(out, format=query["format"], inspection=inspection, asset=asset)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        when = f"{timezone.now():%Y%m%d-%H%M%S}"
        name = f"rustwatch-{slugify(stem) or 'export'}-{query['format']}-{when}.zip"
        return FileResponse(out, as_attachment=True, filename=name, content_type="application/zip")
