"""Jobs: /api/v1/jobs/ — long work on a worker, seen live, cancellable.

Supervisors see every job; others the jobs they started. Cancel: who started
it, or a supervisor (a queued job is cancelled at once, a running one stops at
its next step). Import and export (inspection/api/voc.py: POST /api/v1/import/ and
/api/v1/export/, also at /api/v1/jobs/import/ and /jobs/export/) answer 202 with the
job; an export job's zip downloads from /api/v1/jobs/{id}/file/.
"""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inspection.api.base import Pagination
from inspection.api.permissions import IsIntegration
from inspection.api.schema import errors
from inspection.models import Job, Role
from inspection.roles import has_role
from inspection.services.jobs import cancel_job


class JobSerializer(serializers.ModelSerializer):
    """A job as the API shows it: state, progress (step of total + live details), error."""

    created_by = serializers.CharField(source="created_by.username", default=None)
    run_id = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "state",
            "params",
            "result",
            "progress_step",
            "progress_total",
            "progress",
            "log_tail",
            "error",
            "cancel_requested",
            "attempts",
            "worker",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "run_id",
            "file_url",
        ]
        read_only_fields = fields

    def get_run_id(self, job: Job) -> int | None:
        return job.params.get("run_id") if job.kind == Job.Kind.TRAIN else None

    def get_file_url(self, job: Job) -> str | None:
        if job.kind == Job.Kind.EXPORT and job.state == Job.State.SUCCEEDED:
            return f"/api/v1/jobs/{job.pk}/file/"
        return None


def visible_jobs(request: Request) -> QuerySet[Job]:
    qs = Job.objects.select_related("created_by").order_by("-created_at", "-id")
    if has_role(request.user, Role.SUPERVISOR):
        return qs
    return qs.filter(created_by=request.user)


def _job(request: Request, pk: int) -> Job:
    job = visible_jobs(request).filter(pk=pk).first()
    if job is None:
        raise NotFound(f"No job {pk} that you may see.")
    return job


class JobListView(ListAPIView):
    permission_classes = [IsIntegration]
    serializer_class = JobSerializer
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[Job]:
        qs = visible_jobs(self.request)
        for name in ("kind", "state"):
            value = self.request.query_params.get(name)
            if value:
                qs = qs.filter(**{name: value})
        return qs

    @extend_schema(
        summary="List jobs",
        description="Supervisors see all jobs, others their own. Filter by `kind`, `state`.",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class JobDetailView(RetrieveAPIView):
    permission_classes = [IsIntegration]
    serializer_class = JobSerializer

    @extend_schema(summary="One job", responses={200: JobSerializer, **errors(404)})
    def get(self, request: Request, pk: int) -> Response:
        return Response(JobSerializer(_job(request, pk)).data)


class JobCancelView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="Cancel a job",
        description=(
            "Who started it, or a supervisor. Queued: cancelled at once. Running: asked to "
            "stop, it stops at its next step (the state says when). Finished: 409."
        ),
        request=None,
        responses={202: JobSerializer, **errors(403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = Job.objects.filter(pk=pk).first()
        if job is None:
            raise NotFound(f"No job {pk}.")
        job = cancel_job(job=job, user=request.user)
        return Response(JobSerializer(job).data, status=202)


class JobFileView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="Download a job's file (an export's zip)",
        responses={(200, "application/zip"): OpenApiTypes.BINARY, **errors(404)},
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        job = _job(request, pk)
        name = (job.result or {}).get("file")
        if job.state != Job.State.SUCCEEDED or not name:
            raise NotFound("This job has no file (not an export, or not finished).")
        try:
            handle = default_storage.open(name, "rb")
        except (FileNotFoundError, OSError) as exc:
            raise NotFound("The job's file is no longer in storage.") from exc
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"rustwatch-export-{job.pk}-{job.params.get('format', 'voc')}.zip",
            content_type="application/zip",
        )
