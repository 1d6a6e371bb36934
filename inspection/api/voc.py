"""Dataset import and export: /api/v1/import/ and /api/v1/export/ (also under /jobs/).

Long work is a job: both answer 202 with the job, a worker does the work
(services.job_files), and an export's zip downloads from /api/v1/jobs/{id}/file/.
Inspectors import a zip into an inspection; supervisors export a zip of an
inspection, an asset or everything; `format` is voc (default), coco or yolo.
Options are fields of the input serializers (`ImportInputSerializer`,
`ExportInputSerializer`): add one there and pass it to the service; the schema
follows.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import MAX_ID, InputSerializer, Text, validated
from inspection.api.jobs import JobSerializer
from inspection.api.permissions import IsInspector, IsSupervisor
from inspection.api.schema import errors
from inspection.errors import TooLarge
from inspection.models import Asset, Inspection
from inspection.services.dataset_io import FORMATS
from inspection.services.job_files import start_export, start_import

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


class ExportInputSerializer(InputSerializer):
    """What an export takes (JSON body)."""

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


def import_request(data: dict) -> tuple[Any, Inspection | None]:
    """The checked archive and target inspection of an import.

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
    """
    if "inspection" in query:
        same_asset = {"asset_id": query["asset"]} if "asset" in query else {}
        return get_object_or_404(Inspection, pk=query["inspection"], **same_asset), None
    if "asset" in query:
        return None, get_object_or_404(Asset, pk=query["asset"])
    return None, None


class ImportView(APIView):
    permission_classes = [IsInspector]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Import a zip of annotated photos (VOC, COCO or YOLO) as a job (202)",
        description=(
            "Inspectors. `format=voc` (default): images with labelImg XML beside them "
            "(same stem) or a VOC tree / CVAT Pascal VOC 1.1 zip; folders named `rust/` and "
            "`norust/` give verdicts. `coco`: a COCO JSON with its images; `yolo`: "
            "images/, labels/ and data.yaml. Into `inspection` (id), or `inspection_name` "
            "(created under an asset of the same name if new; a new asset only for "
            "supervisors, 403 otherwise). The zip is kept in storage and imported by a "
            "worker: the answer is 202 with the job (progress per photo; the report in "
            "`result` when it succeeds). Refused at once: unsafe zips (`..`, absolute "
            "paths, links, absurd sizes) and non-zips (400), over the size limit (413)."
        ),
        request={"multipart/form-data": ImportInputSerializer},
        responses={202: JobSerializer, **errors(404, 413)},
    )
    def post(self, request: Request) -> Response:
        data = validated(ImportInputSerializer, request.data)
        upload, inspection = import_request(data)
        job = start_import(
            upload=upload,
            user=request.user,
            inspection=inspection,
            inspection_name=data.get("inspection_name"),
            asset_name=data.get("asset_name"),
            format=data["format"],
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Export a zip of annotated photos (VOC, COCO or YOLO) as a job (202)",
        description=(
            "Supervisors. One inspection, one asset, or everything (no field), with the "
            "human and accepted boxes; with both, the inspection must be of the asset (404). "
            "`format=voc` (default): CVAT's Pascal VOC 1.1 layout (JPEGImages/, "
            "Annotations/, ImageSets/Main/, labelmap.txt); `coco`: "
            "annotations/instances_default.json + images/default/; `yolo`: images/, "
            "labels/, data.yaml. A worker writes the zip into storage; the job's "
            "`file_url` downloads it once it succeeded."
        ),
        request=ExportInputSerializer,
        responses={202: JobSerializer, **errors(404)},
    )
    def post(self, request: Request) -> Response:
        data = validated(ExportInputSerializer, request.data)
        inspection, asset = export_selection(data)
        job = start_export(
            user=request.user, inspection=inspection, asset=asset, format=data["format"]
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
