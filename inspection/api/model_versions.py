"""Model versions: /api/v1/models/ — metrics beside the deployed one, deploy, rollback, plots.

Inspectors and supervisors read; supervisors deploy (a version the gate held
needs a `reason`) and roll back (the pointer moves to the version deployed
before). Every move is audited (who, when, why) and listed in `deployments`.
"""

from __future__ import annotations

import re

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import InputSerializer, validated
from inspection.api.permissions import IsInspector, IsSupervisor
from inspection.api.schema import errors
from inspection.models import Deployment, ModelKind, ModelVersion
from inspection.services.registry import deploy_version, deployed_versions, rollback
from inspection.services.suggestions import suggestion_stats

PLOT_NAME = re.compile(r"^[a-z_]+\.png$")


class SuggestionStatsSerializer(serializers.Serializer):
    """What people did with the version's suggestions (`services.suggestions.suggestion_stats`)."""

    open = serializers.IntegerField()
    accepted = serializers.IntegerField()
    edited = serializers.IntegerField()
    rejected = serializers.IntegerField()
    reviewed = serializers.IntegerField()
    accepted_share = serializers.FloatField(allow_null=True)
    edited_share = serializers.FloatField(allow_null=True)
    rejected_share = serializers.FloatField(allow_null=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    deployed = serializers.SerializerMethodField()
    suggestions = serializers.SerializerMethodField()
    run_id = serializers.IntegerField(source="run.id", default=None)
    snapshot_id = serializers.IntegerField(source="snapshot.id", default=None)
    plots = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "kind",
            "name",
            "artifact",
            "run_id",
            "snapshot_id",
            "metrics",
            "gate",
            "gate_report",
            "deployed",
            "plots",
            "suggestions",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(SuggestionStatsSerializer)
    def get_suggestions(self, version: ModelVersion) -> dict:
        """The model's precision in real use, beside its validation metrics."""
        return SuggestionStatsSerializer(suggestion_stats(version)).data

    def get_deployed(self, version: ModelVersion) -> bool:
        deployed = self.context.get("deployed", {})
        current = deployed.get(version.kind)
        return current is not None and current.pk == version.pk

    def get_plots(self, version: ModelVersion) -> list[str]:
        try:
            _dirs, files = default_storage.listdir(f"{version.artifact}/plots")
        except (FileNotFoundError, NotADirectoryError, OSError):
            return []
        return [f"/api/v1/models/{version.pk}/plots/{f}" for f in sorted(files)]


class DeploymentSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="version.name")
    previous = serializers.CharField(source="previous.name", default=None)
    actor = serializers.CharField(source="actor.username", default=None)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "kind",
            "action",
            "version",
            "previous",
            "automatic",
            "actor",
            "reason",
            "at",
        ]
        read_only_fields = fields


class ReasonSerializer(InputSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


def _reason(request: Request) -> str:
    return validated(ReasonSerializer, request.data)["reason"]


def _versions_page(request: Request) -> dict:
    deployed = deployed_versions()
    qs = ModelVersion.objects.select_related("run", "snapshot").order_by("-created_at", "-id")
    kind = request.query_params.get("kind")
    if kind:
        if kind not in ModelKind.values:
            raise ParseError(f"kind must be one of {', '.join(ModelKind.values)}.")
        qs = qs.filter(kind=kind)
    ctx = {"deployed": deployed}
    return {
        "deployed": {
            k: ModelVersionSerializer(v, context=ctx).data for k, v in sorted(deployed.items())
        },
        "versions": ModelVersionSerializer(qs[:200], many=True, context=ctx).data,
        "deployments": DeploymentSerializer(
            Deployment.objects.select_related("version", "previous", "actor")[:50], many=True
        ).data,
    }


class ModelListView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="Model versions, the deployed ones, and the deployment history",
        operation_id="models_list",
        description="Inspectors and supervisors. Filter by `kind` (classifier, detector).",
        responses={200: OpenApiTypes.OBJECT, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        return Response(_versions_page(request))


def _version(pk: int) -> ModelVersion:
    version = ModelVersion.objects.select_related("run", "snapshot").filter(pk=pk).first()
    if version is None:
        raise NotFound(f"No model version {pk}.")
    return version


class ModelDetailView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="One model version", responses={200: ModelVersionSerializer, **errors(404)}
    )
    def get(self, request: Request, pk: int) -> Response:
        ctx = {"deployed": deployed_versions()}
        return Response(ModelVersionSerializer(_version(pk), context=ctx).data)


class ModelDeployView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Deploy a model version",
        description=(
            "Supervisors. One pointer move, audited. A version the gate held (worse than "
            "the deployed one on the validation photos) needs a `reason` (400 without)."
        ),
        request=ReasonSerializer,
        responses={200: DeploymentSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        deployment = deploy_version(
            version=_version(pk), user=request.user, reason=_reason(request)
        )
        return Response(DeploymentSerializer(deployment).data)


class ModelRollbackView(APIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        summary="Roll a model kind back to the version deployed before",
        description="Supervisors. 409 when nothing earlier was deployed.",
        request=ReasonSerializer,
        responses={200: DeploymentSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, kind: str) -> Response:
        deployment = rollback(kind=kind, user=request.user, reason=_reason(request))
        return Response(DeploymentSerializer(deployment).data)


class ModelPlotView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(
        summary="A plot of a model version (PNG)",
        responses={(200, "image/png"): OpenApiTypes.BINARY, **errors(404)},
    )
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        version = _version(pk)
        if not PLOT_NAME.match(name):
            raise NotFound(f"No plot named {name!r}.")
        try:
            handle = default_storage.open(f"{version.artifact}/plots/{name}", "rb")
        except (FileNotFoundError, OSError) as exc:
            raise NotFound(f"{version.name} has no plot {name}.") from exc
        return FileResponse(handle, content_type="image/png")
