"""The prediction API for integrations: POST /api/v1/predict (one image), /predict/batch/ (several),
GET /api/v1/predict/jobs/{id}/ (an answer that took longer than the request waited).

Any role, with a token. The image is validated as an upload is (the same 4xx),
handed to a `predict` worker by storage name, and the request waits
`RUSTWATCH_PREDICT_WAIT_S` seconds: 200 with the answer, else 202 with the job's
URL (`Location`). Throttled per user/token (`RUSTWATCH_PREDICT_RATE`): 429 with
Retry-After. No model deployed: 503.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from inspection.api.permissions import IsIntegration
from inspection.api.schema import ErrorSerializer, errors
from inspection.models import Inspection, Job, Role
from inspection.roles import has_role
from inspection.services.photos import read_upload
from inspection.services.prediction import prediction_result, request_prediction, wait_for_job


class PredictThrottle(UserRateThrottle):
    """Requests per user (a token is a user's), counted in the cache all web processes share."""

    scope = "predict"
    cache = caches["shared"]

    def get_rate(self) -> str:
        return settings.RUSTWATCH_PREDICT_RATE


class ImageBodyParser(BaseParser):
    """A raw image body (`Content-Type: image/jpeg`, `image/png`, `image/webp`)."""

    media_type = "image/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None):
        from django.core.files.base import ContentFile

        data = read_upload(stream) if stream is not None else b""
        request = (parser_context or {}).get("request")
        name = request.query_params.get("filename", "") if request is not None else ""
        return {"image": ContentFile(data, name=name or "image")}


class PredictQuerySerializer(serializers.Serializer):
    """Options, as form fields or query parameters."""

    store = serializers.BooleanField(
        default=False, help_text="Keep the photo in `inspection` (through the normal upload)."
    )
    inspection = serializers.IntegerField(required=False, min_value=1)
    filename = serializers.CharField(required=False, max_length=255)


class BoxOutputSerializer(serializers.Serializer):
    xmin = serializers.FloatField()
    ymin = serializers.FloatField()
    xmax = serializers.FloatField()
    ymax = serializers.FloatField()
    score = serializers.FloatField()


class PredictionOutputSerializer(serializers.Serializer):
    filename = serializers.CharField()
    photo = serializers.IntegerField(allow_null=True, help_text="The stored photo, with `store`.")
    stored = serializers.BooleanField(help_text="False when the photo was there already.")
    rust_probability = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField(
        allow_null=True, help_text="rust or norust (the probability against the threshold)."
    )
    boxes = BoxOutputSerializer(many=True)


class PredictJobOutputSerializer(serializers.Serializer):
    job = serializers.IntegerField()
    url = serializers.URLField()
    state = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled.")
    error = serializers.CharField(allow_blank=True)
    predictions = PredictionOutputSerializer(many=True)
    model_versions = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def _options(request: Request) -> tuple[Inspection | None, dict[str, Any]]:
    raw = {**request.query_params.dict(), **_form(request)}
    ser = PredictQuerySerializer(
        data={k: raw[k] for k in PredictQuerySerializer().fields if k in raw}
    )
    ser.is_valid(raise_exception=True)
    opts = dict(ser.validated_data)
    inspection = None
    if opts["store"]:
        if "inspection" not in opts:
            raise ValidationError({"inspection": ["With store, give the inspection id."]})
        inspection = Inspection.objects.filter(pk=opts["inspection"]).first()
        if inspection is None:
            raise ValidationError({"inspection": [f"No inspection with id {opts['inspection']}."]})
    return inspection, opts


def _form(request: Request) -> dict[str, Any]:
    data = request.data
    if hasattr(data, "dict"):
        return {k: v for k, v in data.dict().items() if not hasattr(v, "read")}
    return {}


def _answer(request: Request, job: Job) -> Response:
    job = wait_for_job(job)
    return _job_response(request, job, waited=True)


def _job_response(request: Request, job: Job, *, waited: bool) -> Response:
    url = request.build_absolute_uri(reverse("api:predict-job", args=[job.pk]))
    body = PredictJobOutputSerializer({**prediction_result(job), "url": url}).data
    if job.state == Job.State.SUCCEEDED or not waited:
        return Response(body, status=status.HTTP_200_OK)
    if job.state == Job.State.FAILED:
        body = {"detail": f"Prediction failed: {job.error}", "code": "prediction_failed", **body}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response = Response(body, status=status.HTTP_202_ACCEPTED)
    response["Location"] = url
    response["Retry-After"] = "1"
    return response


UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "store": {"type": "boolean"},
            "inspection": {"type": "integer"},
        },
        "required": ["image"],
    },
    "image/*": {"type": "string", "format": "binary"},
}
RESPONSES = {
    200: PredictJobOutputSerializer,
    202: OpenApiResponse(PredictJobOutputSerializer, description="Still running: poll `url`."),
    400: OpenApiResponse(ErrorSerializer, description="Not a readable image, or bad options."),
    413: OpenApiResponse(ErrorSerializer, description="Too many bytes or pixels."),
    415: OpenApiResponse(ErrorSerializer, description="Not a JPEG, PNG or WebP image."),
    429: OpenApiResponse(ErrorSerializer, description="Too many requests: see Retry-After."),
    503: OpenApiResponse(ErrorSerializer, description="No model deployed, or it failed."),
}
OPTIONS = [
    OpenApiParameter("store", OpenApiTypes.BOOL, required=False),
    OpenApiParameter("inspection", OpenApiTypes.INT, required=False),
    OpenApiParameter("filename", OpenApiTypes.STR, required=False),
]


class PredictView(APIView):
    permission_classes = [IsIntegration]
    throttle_classes = [PredictThrottle]
    parser_classes = [MultiPartParser, FormParser, ImageBodyParser]

    @extend_schema(
        summary="Rust probability and boxes of one image",
        description=__doc__,
        request=UPLOAD_SCHEMA,
        parameters=OPTIONS,
        responses=RESPONSES,
    )
    def post(self, request: Request) -> Response:
        image = request.data.get("image") if hasattr(request.data, "get") else None
        if image is None or not hasattr(image, "read"):
            raise ValidationError(
                {"image": ["Send the image as multipart field `image`, or as the raw body."]}
            )
        inspection, opts = _options(request)
        name = opts.get("filename") or getattr(image, "name", "") or "image"
        job = request_prediction(files=[(image, name)], user=request.user, inspection=inspection)
        return _answer(request, job)


class PredictBatchView(APIView):
    permission_classes = [IsIntegration]
    throttle_classes = [PredictThrottle]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Rust probability and boxes of several images",
        description="Like `POST /predict`, with the images as multipart fields `images`. "
        "One bad image refuses the whole batch (the upload's 4xx, naming the file).",
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "store": {"type": "boolean"},
                    "inspection": {"type": "integer"},
                },
                "required": ["images"],
            }
        },
        parameters=OPTIONS[:2],
        responses=RESPONSES,
    )
    def post(self, request: Request) -> Response:
        files = request.FILES.getlist("images") or request.FILES.getlist("image")
        if not files:
            raise ValidationError({"images": ["Attach the images as multipart fields `images`."]})
        if len(files) > settings.RUSTWATCH_PREDICT_MAX_BATCH:
            raise ValidationError(
                {"images": [f"At most {settings.RUSTWATCH_PREDICT_MAX_BATCH} images a request."]}
            )
        inspection, _ = _options(request)
        job = request_prediction(
            files=[(f, f.name) for f in files], user=request.user, inspection=inspection
        )
        return _answer(request, job)


class PredictJobView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="A prediction's answer",
        description="The one who asked, or a supervisor. `state` says whether it is done.",
        responses={200: PredictJobOutputSerializer, **errors(404)},
    )
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(Job, pk=job_id, kind=Job.Kind.PREDICT)
        if job.created_by_id != request.user.pk and not has_role(request.user, Role.SUPERVISOR):
            raise PermissionDenied("This prediction was asked for by someone else.")
        return _job_response(request, job, waited=False)
