"""Training runs: /api/v1/runs/ — list (inspectors and up), start (supervisors, 202)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import InputSerializer, Pagination, validated
from inspection.api.jobs import JobSerializer
from inspection.api.permissions import IsInspector, IsSupervisor
from inspection.api.schema import errors
from inspection.models import TrainingRun
from inspection.services.training import start_run


class RunSerializer(serializers.ModelSerializer):
    job = JobSerializer(read_only=True)
    snapshot = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "trigger",
            "job",
            "snapshot",
            "config",
            "labels_at_start",
            "metrics",
            "versions",
            "created_at",
        ]
        read_only_fields = fields

    def get_snapshot(self, run: TrainingRun) -> dict | None:
        s = run.snapshot
        if s is None:
            return None
        return {
            "id": s.pk,
            "photo_count": s.photo_count,
            "box_count": s.box_count,
            "rust_count": s.rust_count,
            "splits": s.splits,
            "dataset_hash": s.dataset_hash,
        }

    def get_versions(self, run: TrainingRun) -> list[dict]:
        return [
            {"id": v.pk, "kind": v.kind, "name": v.name, "gate": v.gate}
            for v in run.versions.order_by("kind")
        ]


class RunStartSerializer(InputSerializer):
    skip_detector = serializers.BooleanField(
        default=False, help_text="Train the classifier only (minutes less)."
    )
    warm_start = serializers.BooleanField(
        default=None,
        allow_null=True,
        help_text=(
            "Start the detector from the deployed detector's weights (fewer epochs) when it "
            "has the same architecture; null: the server's default (RUSTWATCH_WARM_START)."
        ),
    )


class RunListView(ListAPIView):
    serializer_class = RunSerializer
    pagination_class = Pagination

    def get_permissions(self):
        return [IsSupervisor() if self.request.method == "POST" else IsInspector()]

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return TrainingRun.objects.select_related("job__created_by", "snapshot").order_by(
            "-created_at", "-id"
        )

    @extend_schema(summary="List training runs", description="Inspectors and supervisors.")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Start a training run",
        description=(
            "Supervisors. Queued on the `train` queue; while another run is running it "
            "waits. Answers 202 with the run and its job (poll /api/v1/jobs/{id}/)."
        ),
        request=RunStartSerializer,
        responses={202: RunSerializer, **errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        data = validated(RunStartSerializer, request.data)
        run = start_run(
            user=request.user, skip_detector=data["skip_detector"], warm_start=data["warm_start"]
        )
        run.refresh_from_db()
        return Response(RunSerializer(run).data, status=202)


class RunDetailView(APIView):
    permission_classes = [IsInspector]

    @extend_schema(summary="One training run", responses={200: RunSerializer, **errors(404)})
    def get(self, request: Request, pk: int) -> Response:
        run = TrainingRun.objects.select_related("job", "snapshot").filter(pk=pk).first()
        if run is None:
            raise NotFound(f"No training run {pk}.")
        return Response(RunSerializer(run).data)
