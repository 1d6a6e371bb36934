"""Routes of the REST API, included by inspection/urls.py under /api/v1/.

One module per resource (catalog, photos, voc, tokens): a new resource adds
its module and its lines here. Also the OpenAPI schema and its docs pages
(assets served locally by drf-spectacular-sidecar), and a JSON 404 for any
other path under /api/v1/.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from inspection.api import (
    catalog,
    fallback,
    jobs,
    model_versions,
    photos,
    predict,
    queue,
    runs,
    tokens,
    voc,
)

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("assets", catalog.AssetViewSet, basename="asset")
router.register("inspections", catalog.InspectionViewSet, basename="inspection")
router.register("photos", photos.PhotoViewSet, basename="photo")

urlpatterns = [
    path("import/", voc.ImportView.as_view(), name="import"),
    path("export/", voc.ExportView.as_view(), name="export"),
    path("tokens/", tokens.TokenListView.as_view(), name="token-list"),
    path("tokens/me/", tokens.OwnTokenListView.as_view(), name="token-me"),
    path("tokens/me/<int:token_id>/", tokens.OwnTokenDetailView.as_view(), name="token-me-detail"),
    path("tokens/<int:token_id>/", tokens.TokenDetailView.as_view(), name="token-detail"),
    path("jobs/", jobs.JobListView.as_view(), name="job-list"),
    # the same two views: import and export are jobs, wherever a client looks for them
    path("jobs/import/", voc.ImportView.as_view(), name="job-import"),
    path("jobs/export/", voc.ExportView.as_view(), name="job-export"),
    path("jobs/<int:pk>/", jobs.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:pk>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:pk>/file/", jobs.JobFileView.as_view(), name="job-file"),
    path("runs/", runs.RunListView.as_view(), name="run-list"),
    path("runs/<int:pk>/", runs.RunDetailView.as_view(), name="run-detail"),
    path("models/", model_versions.ModelListView.as_view(), name="model-list"),
    path("models/<int:pk>/", model_versions.ModelDetailView.as_view(), name="model-detail"),
    path("models/<int:pk>/deploy/", model_versions.ModelDeployView.as_view(), name="model-deploy"),
    path(
        "models/<int:pk>/plots/<str:name>",
        model_versions.ModelPlotView.as_view(),
        name="model-plot",
    ),
    path(
        "models/<str:kind>/rollback/",
        model_versions.ModelRollbackView.as_view(),
        name="model-rollback",
    ),
    path("queue/", queue.QueueListView.as_view(), name="queue"),
    path("queue/next/", queue.QueueNextView.as_view(), name="queue-next"),
    path("queue/<int:photo_id>/skip/", queue.QueueSkipView.as_view(), name="queue-skip"),
    re_path(r"^predict/?$", predict.PredictView.as_view(), name="predict"),
    path("predict/batch/", predict.PredictBatchView.as_view(), name="predict-batch"),
    path("predict/jobs/<int:job_id>/", predict.PredictJobView.as_view(), name="predict-job"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *router.urls,
    re_path(r"^.*$", fallback.NotFoundView.as_view(), name="not-found"),
]
