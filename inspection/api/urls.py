"""Routes of the REST API, included by inspection/urls.py under /api/v1/.

Also the OpenAPI schema and its docs pages (assets served locally by
drf-spectacular-sidecar), and a JSON 404 for any other path under /api/v1/.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from inspection.api import views

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("assets", views.AssetViewSet, basename="asset")
router.register("inspections", views.InspectionViewSet, basename="inspection")
router.register("photos", views.PhotoViewSet, basename="photo")

urlpatterns = [
    path("import/", views.ImportView.as_view(), name="import"),
    path("export/", views.ExportView.as_view(), name="export"),
    path("tokens/", views.TokenListView.as_view(), name="token-list"),
    path("tokens/me/", views.OwnTokenView.as_view(), name="token-me"),
    path("tokens/<int:user_id>/", views.TokenDetailView.as_view(), name="token-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *router.urls,
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
